"""The audit trail's security side: security events, signed checkpoints, verification.
The chain itself is the journal's (switch.stores.audit): it is written in each commit."""
