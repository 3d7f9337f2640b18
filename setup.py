"""Builds the Cython hot paths; everything else is in pyproject.toml.

Each compiled module sits in the package beside its plain-Python twin, named with a
leading underscore (switch/cards/_luhn.pyx beside switch/cards/luhn.py), with its
.pxd and .pyi, so Cython finds the .pxd under the module's own name.
SWITCH_CYTHON_DEBUG=1 builds with annotation (an .html beside each .pyx) and line tracing.
Modules named in LIBRARIES link those C libraries (FF1 calls OpenSSL's AES).
"""

import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("SWITCH_CYTHON_DEBUG", "") not in ("", "0")
LIBRARIES = {"switch.cards._ff1": ["crypto"], "switch.stores.audit._merkle": ["crypto"]}


def module_name(path: Path) -> str:
    return ".".join(path.with_suffix("").parts)


extensions = [
    Extension(
        module_name(path),
        [str(path)],
        define_macros=[("CYTHON_TRACE_NOGIL", "1")] if DEBUG else [],
        libraries=LIBRARIES.get(module_name(path), []),
    )
    for path in sorted(Path("switch").rglob("_*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        annotate=DEBUG,
        compiler_directives={"language_level": "3", "linetrace": DEBUG, "embedsignature": True},
    )
)
