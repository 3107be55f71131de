"Shared fixtures: the project root, the wine CSVs (resolved once), an isolated download cache and runs folder, W&B off, a served model."
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
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


@pytest.fixture(scope="session")
def trained_run(data_dir, tmp_path_factory) -> Path:
    "A small model (5 epochs, a few seconds) trained once per session, for the serving tests."
    from wine_nb.train import TrainConfig, run_training
    return run_training(TrainConfig(epochs=5, wandb_mode="disabled"), data_dir, tmp_path_factory.mktemp("serve")/"run").run_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(model: Path, backend: str = "torch", timeout: float = 60):
    "A real `wine_serve` process on a free loopback port; yields its base URL once /health answers; always stopped."
    port = free_port()
    proc = subprocess.Popen([console_script("wine_serve"), "--model", str(model), "--port", str(port), "--backend", backend],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None: raise RuntimeError(f"wine_serve exited with {proc.returncode}: {proc.stderr.read()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200: break
            except httpx.TransportError: pass
            if time.monotonic() > deadline: raise RuntimeError(f"wine_serve did not answer /health within {timeout} s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()


@pytest.fixture(scope="session")
def server(trained_run):
    "Base URL of the service (torch backend) on 127.0.0.1, shared by the session's tests."
    with serving(trained_run) as url: yield url


@pytest.fixture(scope="session")
def onnx_server(trained_run):
    "Base URL of the service with the onnx backend."
    with serving(trained_run, "onnx") as url: yield url
