"""Who may call the switch, and what they may do: transport security (tls), the
caller's identity (identity), roles and merchant scopes (policy), and the per-call
check the API's decorators run (access). Key custody and the audit trail come here
too."""
