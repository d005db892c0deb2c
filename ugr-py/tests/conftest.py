"""Fixtures: the repository's tiny model, a model trained and exported by the `ugr` command
in this session, and the command itself (UGR_BIN, or target/{debug,release}/ugr)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With UGR_PY_NO_SKIP=1 (CI), a skipped test fails: a missing install must not pass quietly."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("UGR_PY_NO_SKIP") == "1" and report.skipped:
        report.outcome = "failed"


ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "data" / "tiny-model.ugr"


def _ugr_bin() -> Path | None:
    env = os.environ.get("UGR_BIN")
    if env:
        return Path(env)
    for profile in ("debug", "release"):
        p = ROOT / "target" / profile / "ugr"
        if p.exists():
            return p
    found = shutil.which("ugr")
    return Path(found) if found else None


@pytest.fixture(scope="session")
def ugr_bin() -> Path:
    p = _ugr_bin()
    if p is None or not p.exists():
        pytest.skip("the `ugr` command is not built: run `cargo build -p ugr-train` or set UGR_BIN")
    return p


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    return TINY


@pytest.fixture(scope="session")
def fresh_run(ugr_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained for a few steps on the built-in data, exported by this build."""
    d = tmp_path_factory.mktemp("fresh")
    run = d / "run"
    small = ["--d-model", "16", "--d-ff", "32", "--layers", "1", "--head-layers", "1", "--heads", "2"]
    subprocess.run(
        [str(ugr_bin), "train", "sft", "--out", str(run), "--max-steps", "30", "--epochs", "1",
         "--eval-rows", "20", *small],
        check=True, capture_output=True,
    )
    subprocess.run(
        [str(ugr_bin), "export", "--run", str(run), "--out", str(d / "model.ugr")],
        check=True, capture_output=True,
    )
    return d


@pytest.fixture(scope="session")
def fresh_model(fresh_run: Path) -> Path:
    return fresh_run / "model.ugr"


def cli_recommend(ugr_bin: Path, model: Path, history: list[int], k: int, beam: int, *extra: str) -> list[dict]:
    """`ugr recommend --json`'s items."""
    out = subprocess.run(
        [str(ugr_bin), "recommend", "--model", str(model), "--history", " ".join(map(str, history)),
         "--k", str(k), "--beam", str(beam), "--json", *extra],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)["items"]
