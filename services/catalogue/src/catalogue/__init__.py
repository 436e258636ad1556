"""The system's catalogue: what exists between the services. The message
contracts (catalogue.contracts), every topic, exchange and queue
(catalogue.topology, `provision-topology`) and each service's accounts and
rights (catalogue.accounts, `provision-accounts`). Built on the messaging
framework, which in turn knows nothing of it."""
