"""Surges and incidents: the detector's findings kept (store.py), fed by the router's customer
messages (watcher.py), and the supervisors' API over them (api.py). docs/incidents.md."""
