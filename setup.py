"""Builds the Cython hot paths in cext/ as switch._cext.*; everything else is in pyproject.toml.

SWITCH_CYTHON_DEBUG=1 builds with annotation (cext/*.html) and line tracing.
Modules named in LIBRARIES link those C libraries (ff1 calls OpenSSL's AES).
"""

import os
import shutil
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("SWITCH_CYTHON_DEBUG", "") not in ("", "0")
LIBRARIES = {"ff1": ["crypto"]}

# Cython looks for a module's own .pxd under its full name (switch/_cext/<name>.pxd)
# while the sources sit in cext/; a mirror of the .pxd files under build/ lets it
# find them (copy2 keeps their times, so an unchanged .pxd rebuilds nothing).
PXD_MIRROR = Path("build/cython-pxd")
(PXD_MIRROR / "switch" / "_cext").mkdir(parents=True, exist_ok=True)
for pxd in Path("cext").glob("*.pxd"):
    shutil.copy2(pxd, PXD_MIRROR / "switch" / "_cext" / pxd.name)

extensions = [
    Extension(
        f"switch._cext.{path.stem}",
        [str(path)],
        define_macros=[("CYTHON_TRACE_NOGIL", "1")] if DEBUG else [],
        libraries=LIBRARIES.get(path.stem, []),
    )
    for path in sorted(Path("cext").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=[str(PXD_MIRROR)],
        annotate=DEBUG,
        compiler_directives={"language_level": "3", "linetrace": DEBUG, "embedsignature": True},
    )
)
