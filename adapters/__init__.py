"""Reference adapters, installed as the switch_adapters package.

Each folder is one adapter, registered under the entry-point group
"switch.adapters" in pyproject.toml; the core never imports them by name.
"""
