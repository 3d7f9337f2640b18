"""Fault injection: the switch under store, network and worker failures, checked
against a recording network (money moves exactly once; the network's view equals
the journal's). See tests/faults/harness.py for the world and checker.py for the
properties."""
