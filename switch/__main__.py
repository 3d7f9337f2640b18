"""python -m switch: the same as the `switch` command."""

import sys

from switch.cli import main

sys.exit(main())
