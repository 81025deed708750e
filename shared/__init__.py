"""Code every Switchyard service uses: models, broker topology and helpers, Mongo, settings, logging, HTTP plumbing."""
