"""Shared fixtures: the project root, the wine CSVs (resolved once), an isolated download cache and runs folder,
W&B off, a served model."""
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


@pytest.fixture(scope="session", autouse=True)
def session_prediction_log(tmp_path_factory):
    "Servers started by session fixtures (before any test's own environment) log predictions to a temporary folder too."
    os.environ["WINE_NB_PREDICTION_LOG"] = str(tmp_path_factory.mktemp("logs")/"predictions.sqlite")


@pytest.fixture(autouse=True)
def isolated_env(data_dir, tmp_path, monkeypatch):
    "Each test gets its own download cache and runs folder, and W&B disabled unless it sets a mode itself."
    monkeypatch.setenv("WINE_NB_CACHE_DIR", str(tmp_path/"cache"))
    monkeypatch.setenv("WINE_NB_RUNS_DIR", str(tmp_path/"runs"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WINE_NB_PREDICTION_LOG", str(tmp_path/"logs"/"predictions.sqlite"))


def run(args, cwd=ROOT, env=None, timeout=600):
    "Run a command, capturing text output; never raises on a non-zero exit."
    return subprocess.run(args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def console_script(name: str) -> str:
    "Path of an installed console script, next to this Python."
    path = Path(sys.executable).parent/name
    return str(path) if path.exists() else shutil.which(name)


@pytest.fixture(scope="session")
def trained_run(data_dir, tmp_path_factory) -> Path:
    "A small model (5 epochs, a few seconds) trained once per session, for the serving tests."
    from wine_nb.train import TrainConfig, run_training
    out = tmp_path_factory.mktemp("serve")/"run"
    return run_training(TrainConfig(epochs=5, wandb_mode="disabled"), data_dir, out).run_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, backend: str = "torch", args: tuple = (), wrap=None, timeout: float = 60) -> tuple:
    """Start `wine_serve` on a free loopback port (its command passed through `wrap`, e.g. into `unshare`);
    (process, URL) once /health answers."""
    port = free_port()
    command = [console_script("wine_serve"), "--model", str(model), "--port", str(port), "--backend", backend,
               *map(str, args)]
    proc = subprocess.Popen(wrap(command) if wrap else command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"wine_serve exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200: return proc, url
        except httpx.TransportError: pass
        if time.monotonic() > deadline:
            stop(proc); raise RuntimeError(f"wine_serve did not answer /health within {timeout} s")
        time.sleep(0.1)


def stop(proc: subprocess.Popen):
    "Terminate a server process, killing it if it does not stop within 10 s."
    if proc.poll() is not None: return
    proc.terminate()
    try: proc.wait(10)
    except subprocess.TimeoutExpired: proc.kill(); proc.wait()


@contextmanager
def serving(model: Path, backend: str = "torch", args: tuple = (), wrap=None, timeout: float = 60):
    "A real `wine_serve` process on a free loopback port; yields its base URL once /health answers; always stopped."
    proc, url = start_server(model, backend, args, wrap, timeout)
    try: yield url
    finally: stop(proc)


@pytest.fixture(scope="session")
def server(trained_run):
    "Base URL of the service (torch backend) on 127.0.0.1, shared by the session's tests."
    with serving(trained_run) as url: yield url


@pytest.fixture(scope="session")
def onnx_server(trained_run):
    "Base URL of the service with the onnx backend."
    with serving(trained_run, "onnx") as url: yield url


@pytest.fixture(scope="session")
def postgres():
    "A PostgreSQL server of the session's own on 127.0.0.1 (about a second to set up), always removed afterwards."
    from pg import PostgresError, PostgresServer
    try: server = PostgresServer()
    except PostgresError as e:
        pytest.fail(f"no PostgreSQL to test against ({e}); install it (Debian: apt-get install postgresql), "
                    "as .ci/run does")
    with server: yield server
