"""The transactional outbox: messages are rows written in the same database
transaction as the business change; the relay (messaging.relay) publishes them."""
