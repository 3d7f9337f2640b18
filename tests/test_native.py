"""switch.native: a compiled module that is not built gives way to its twin; one that is
built but cannot import is a broken install and says so."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from switch import native


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "nativeprobe"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(native, "DISABLED", False)
    yield folder
    for name in [name for name in sys.modules if name.split(".")[0] == "nativeprobe"]:
        del sys.modules[name]  # the next test's package is another folder


def write(path: Path, source: str) -> None:
    path.write_text(source)
    importlib.invalidate_caches()  # the import system lists a folder once


def test_a_module_not_built_is_none(package: Path) -> None:
    assert native.load("nativeprobe._absent") is None


def test_a_built_module_that_cannot_import_raises(package: Path) -> None:
    write(package / "_broken.py", "from nativeprobe.renamed_twin import something\n")
    with pytest.raises(ImportError, match="renamed_twin"):
        native.load("nativeprobe._broken")


def test_a_built_module_loads(package: Path) -> None:
    write(package / "_fine.py", "VALUE = 7\n")
    loaded = native.load("nativeprobe._fine")
    assert loaded is not None and loaded.VALUE == 7


def test_disabled_loads_nothing(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(package / "_fine.py", "VALUE = 7\n")
    monkeypatch.setattr(native, "DISABLED", True)
    assert native.load("nativeprobe._fine") is None


@pytest.mark.parametrize("module", native.COMPILED)
def test_every_compiled_module_loads_unless_disabled(module: str) -> None:
    # With the extensions built (make install), each must import: none may fall back quietly.
    if native.DISABLED:
        assert native.load(module) is None
    else:
        assert native.load(module) is not None
