"""Exactly-once delivery: the STATE ledger, the commit queue, replay detection, stopping on signals."""
