"""The fraud model: its features, its scoring (compiled, with a pure-Python twin), its drift
watch, and, for development only, a synthetic traffic generator and the trainer."""
