"""The inbox: idempotent consumers. A consumer records (consumer, message id)
in the same transaction as the message's effect; a redelivered message finds
its id there and is skipped. Ids are forgotten after a window (retention.py)."""
