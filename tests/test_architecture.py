"""The direction of imports is checked, not hoped for: the import-linter contracts in
pyproject.toml hold, and every sub-package of switch has its place in the layers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contract(contract_id: str) -> dict[str, object]:
    return next(c for c in CONTRACTS if c["id"] == contract_id)


def _layered_packages() -> set[str]:
    layers = _contract("layers")["layers"]
    assert isinstance(layers, list)
    return {name.strip().strip("()") for layer in layers for name in layer.split("|")}


def test_the_import_contracts_hold() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


def test_every_sub_package_has_a_layer() -> None:
    # A new folder outside the layers would be free to import anything.
    packages = {path.parent.name for path in (ROOT / "switch").glob("*/__init__.py")}
    unplaced = packages - _layered_packages() - {"v1"}  # v1: generated code, imported by the edge and the adapters
    assert not unplaced, f"add {sorted(unplaced)} to the layers contract in pyproject.toml"


def test_the_layers_name_only_real_packages() -> None:
    # "(security)": a room kept for a package that does not exist yet.
    layers = _contract("layers")["layers"]
    assert isinstance(layers, list)
    optional = {name.strip()[1:-1] for layer in layers for name in layer.split("|") if name.strip().startswith("(")}
    for name in _layered_packages() - optional:
        exists = (ROOT / "switch" / name / "__init__.py").exists() or (ROOT / "switch" / f"{name}.py").exists()
        assert exists, f"layer {name!r} names no module"


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("switch/flow/periodic.py", "switch.config"),  # an engine reading the settings
        ("switch/domain/ids.py", "switch.flow"),  # the domain reaching up
        ("adapters/simulated/__init__.py", "switch.stores"),  # a reference adapter past the contract
    ],
)
def test_a_wrong_import_breaks_a_contract(tmp_path: Path, importer: str, imported: str) -> None:
    """The contracts bite: the same tree plus one import in the wrong direction fails."""
    copy = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.c")
    for part in ("switch", "adapters"):
        shutil.copytree(ROOT / part, copy / part, ignore=ignore)
    (copy / "switch_adapters").symlink_to(copy / "adapters")
    (copy / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    target = copy / importer
    target.write_text(target.read_text() + f"\nimport {imported}  # noqa\n")
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1, result.stdout[-3000:]
    assert "BROKEN" in result.stdout
    assert f"-> {imported} (l." in result.stdout  # broken by the added import, not by anything else


def test_the_readme_names_every_room() -> None:
    # The README's architecture table is how a newcomer finds where a thing lives.
    readme = (ROOT / "README.md").read_text()
    rooms = {f"`switch/{path.parent.name}/`" for path in (ROOT / "switch").glob("*/__init__.py")}
    missing = sorted(room for room in rooms if room not in readme)
    assert not missing, f"README's architecture table does not name {missing}"
