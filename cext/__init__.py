"""Compiled hot paths (Cython), installed as switch._cext.

Each module here has a plain-Python twin in switch/ that is both the fallback
(SWITCH_NO_EXTENSIONS=1) and the oracle the tests compare the compiled one with.
"""
