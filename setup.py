"""Builds the Cython hot paths in cext/ as switch._cext.*; everything else is in pyproject.toml.

SWITCH_CYTHON_DEBUG=1 builds with annotation (cext/*.html) and line tracing.
"""

import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("SWITCH_CYTHON_DEBUG", "") not in ("", "0")

extensions = [
    Extension(
        f"switch._cext.{path.stem}",
        [str(path)],
        define_macros=[("CYTHON_TRACE_NOGIL", "1")] if DEBUG else [],
    )
    for path in sorted(Path("cext").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        annotate=DEBUG,
        compiler_directives={"language_level": "3", "linetrace": DEBUG, "embedsignature": True},
    )
)
