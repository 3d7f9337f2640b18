"""An example adapter process: an issuer served over `switch.v1.Adapter` (gRPC).

It shows what an adapter in its own process does, in any language: serve the two
calls of protos/switch/v1/adapter.proto and keep the contract's promises. It
needs nothing from the switch but the generated messages, as a Go or Java
adapter would. The switch reaches it through its bridge (`adapter = "remote"`).

    switch sim remote --port 7070        # or: python -m switch_adapters.remote_issuer

It decides like the in-process simulated issuer: it approves every card and
account except the test instruments below, and acknowledges captures, voids,
refunds and reversals. Each operation of a batch goes to its (simulated) network
on its own; whatever has no answer shortly before the call's deadline comes back
`unknown`, while the rest of the batch keeps its answers.

Test instruments:
    4000000000000002             declined "05" do not honor
    4000000000009995             declined "51" insufficient funds
    4000000000000119             answered too late (an unknown outcome)
    expired card                 declined "54"
    account id "...-insufficient"  declined "51"
    account id "...-timeout"       answered too late
"""

from __future__ import annotations

from .issuer import RemoteIssuer, start_simulator

__all__ = ["RemoteIssuer", "start_simulator"]
