"""A non-editable install (a built wheel) works from any directory: modules, recipes and config groups."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, TINY_LISTOPS


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("nlp_lib-*.whl")
    return whl


@pytest.mark.integration
def test_wheel_holds_every_module_recipe_and_config_group(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {p.relative_to(REPO).as_posix() for p in (REPO / "nlp_lib").rglob("*.py")}
    expected |= {
        "nlp_lib/recipes/" + p.relative_to(REPO / "recipes").as_posix() for p in (REPO / "recipes").rglob("*.yaml")
    }
    expected |= {"nlp_lib/conf/" + p.relative_to(REPO / "conf").as_posix() for p in (REPO / "conf").rglob("*.yaml")}
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel (add them to pyproject's packages / package-data): {missing}"
    assert any(n.endswith("entry_points.txt") for n in names)


@pytest.mark.integration
def test_installed_package_runs_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONWARNINGS": "ignore"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)

    where = run("-c", "import nlp_lib; print(nlp_lib.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(site), "the repository's nlp_lib was imported, not the wheel's"

    listed = run("-m", "nlp_lib", "recipes")
    assert listed.returncode == 0, listed.stderr
    assert "listops_tree_lstm" in listed.stdout and "sst_tree_lstm" in listed.stdout

    script = site / "bin" / "nlp-lib"
    assert script.is_file(), "the nlp-lib console script was not installed"
    helped = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0, helped.stderr
    assert "train" in helped.stdout

    trained = run("-m", "nlp_lib", "train", f"run_dir={work / 'run'}", *TINY_LISTOPS)
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["val"]["accuracy"] <= 1.0
