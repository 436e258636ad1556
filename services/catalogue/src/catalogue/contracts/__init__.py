"""The message contracts shared by producers and consumers: one pydantic model
per message type and schema version. Producers emit them, consumers validate
against them, and FastStream's AsyncAPI documents are generated from them."""
