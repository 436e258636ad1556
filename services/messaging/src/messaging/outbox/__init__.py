"""The transactional outbox: messages are rows written in the same database
transaction as the business change; the relay (outbox_relay) publishes them."""
