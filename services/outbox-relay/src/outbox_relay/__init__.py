"""The outbox relay: the sidecar process that drains one service's outbox table
to Kafka and RabbitMQ (outbox_relay.relay), with its SQL (store), publishers,
metrics, settings and CLI (`outbox-relay`). Generic: it knows no service,
topic or queue, and needs neither FastStream nor SQLAlchemy."""
