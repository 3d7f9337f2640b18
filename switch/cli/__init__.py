"""The command line: `switch serve | demo | migrate | keys | sim`."""

from switch.cli.main import main

__all__ = ["main"]
