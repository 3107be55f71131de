"Shared fixtures: the project root, the wine CSVs (resolved once), an isolated download cache and runs folder, W&B off."
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def data_dir() -> Path:
    "The folder with the two UCI CSVs, resolved once: $WINE_NB_DATA_DIR, else the user's cache or a download."
    from wine_nb.data import DATA_ENV, wine_data_dir
    folder = wine_data_dir()
    os.environ[DATA_ENV] = str(folder)  # commands and notebooks started by the tests read the same copy
    return folder


@pytest.fixture(autouse=True)
def isolated_env(data_dir, tmp_path, monkeypatch):
    "Each test gets its own download cache and runs folder, and W&B disabled unless it sets a mode itself."
    monkeypatch.setenv("WINE_NB_CACHE_DIR", str(tmp_path/"cache"))
    monkeypatch.setenv("WINE_NB_RUNS_DIR", str(tmp_path/"runs"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")


def run(args, cwd=ROOT, env=None, timeout=600):
    "Run a command, capturing text output; never raises on a non-zero exit."
    return subprocess.run(args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def console_script(name: str) -> str:
    "Path of an installed console script, next to this Python."
    path = Path(sys.executable).parent/name
    return str(path) if path.exists() else shutil.which(name)
