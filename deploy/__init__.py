"""Local deployment helpers: start the embedded MongoDB, a local RabbitMQ, and the services."""
