"""The router: a pure routing core (core.py) wrapped by a thin AMQP/MongoDB shell (service.py)."""
