"""The built wheel installs one top-level name, ``lakeport`` (no generic ``lake`` or ``ingestion``
beside other projects' packages), carries its data files, and works without the repository."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), "."],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    (built,) = out.glob("lakeport-*.whl")
    return built


def test_the_wheel_has_only_the_lakeport_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"lakeport"}
    packages = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    for package in ("settings", "ingestion", "capture", "lake", "quality", "cli", "dagster_project", "dev"):
        assert f"lakeport/{package}" in packages
    assert "lakeport/lake/models/daily_sales.sql" in names  # gold models
    assert "lakeport/dev/oltp/schema.sql" in names
    assert "lakeport/py.typed" in names


def test_the_installed_wheel_runs_without_the_repository(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    probe = (
        f"import sys; sys.path.insert(0, {str(target)!r}); "
        "import lakeport, lakeport.cli.app, lakeport.dagster_project.definitions; "
        "from lakeport.lake.gold_models import models; from lakeport.settings import load_settings; "
        f"settings = load_settings({str(ROOT / 'lakeport.yaml')!r}); "
        "print(lakeport.__file__); print(len(models(settings)))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    assert found[0].startswith(str(target))
    assert int(found[1]) >= 4
