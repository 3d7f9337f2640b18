"""`switch demo`: start the switch in this process on the embedded default and drive it.

The demo forces the embedded stores (memory + a fresh SQLite file in a temporary
folder), listens on 127.0.0.1 with a free port, adds an instrument velocity limit
so that a "65" decline can be shown, uses its own fee schedule (switch.cli.demo.fees)
when none is configured (so fees and revenue shares show), and sends a fixed script
of calls followed by a deterministic mix of filler calls up to `calls` RPCs in all
(switch.cli.demo.script). Every call has an expected outcome; the summary table on
stdout (switch.cli.demo.report) lists, per RPC and outcome, the count and the median
latency, then a few example lines. Instruments are printed masked only, never in
clear (switch.cli.demo.cards).

With `--tls-dir DIR` (a folder made by `switch tls init`, switch.cli.demo.tls) the
private switch serves mutual TLS with DIR's server certificate, admits the identity of
DIR's client certificate with the roles the demo calls, and the demo's client connects
with that certificate; the output is the same. Without it the port is plaintext on
loopback and every caller may make the demo's calls, whatever the configuration says.

Returns 0 when every expectation held, 1 otherwise. The run itself is in
switch.cli.demo.run, loaded when the demo runs: switch.cli.demo.tls serves the load
tests too, and importing it loads none of the demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switch.config import Settings


def main(settings: Settings, calls: int = 300, tls_dir: Path | None = None) -> int:
    """Runs the demo on a private embedded switch; 0 when every expectation held."""
    from switch.cli.demo import run

    return run.main(settings, calls, tls_dir)
