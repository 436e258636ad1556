"""The messaging framework and the runtime kit every process is built from.

The framework: the message envelope, the transactional outbox (writer, table,
migration), the inbox, the consumer policy and dead letters, the unit of
work, back-off. The kit: settings, connections, telemetry, serving, health,
database, migrations, start-up and provisioning helpers, AsyncAPI documents.

It knows no topic, queue, exchange or service: those are the catalogue's
(package `catalogue`), which builds on this package, never the other way
round. FastStream and SQLAlchemy come with the `service` extra; the modules
the outbox relay uses import neither.
"""
