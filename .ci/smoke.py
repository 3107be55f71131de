"""Serve a run folder for real and smoke-test it: `wine_serve` on a free loopback port, then /health, one /predict
per wine type and a two-wine batch; exit 1 naming what failed.

    python .ci/smoke.py RUN_FOLDER_OR_ALIAS [--backend torch|onnx] [--timeout 90]
"""
import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from wine_nb.serve.inputs import TYPICAL_WINES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, body: dict | None = None) -> tuple:
    "(status, parsed JSON) of a GET, or of a POST of `body` as JSON."
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"content-type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read() or b"null")


def check_prediction(answer: dict) -> None:
    assert answer["quality"] in range(3, 10), answer
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-4, answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    beside_python = Path(sys.executable).parent/"wine_serve"
    command = str(beside_python) if beside_python.exists() else shutil.which("wine_serve")
    server = subprocess.Popen([command, "--model", args.model, "--backend", args.backend, "--host", "127.0.0.1",
                               "--port", str(port), "--log_db", "off"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + args.timeout
        while True:
            if server.poll() is not None:
                raise SystemExit(f"smoke: wine_serve exited {server.returncode}: {server.stderr.read()[-2000:]}")
            try:
                status, health = call(f"{base}/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"smoke: no answer from {base} within {args.timeout:.0f} s") from None
                time.sleep(0.3)
        assert status == 200 and health["model_id"], health
        for wine in TYPICAL_WINES.values():
            status, answer = call(f"{base}/predict", wine)
            assert status == 200, answer
            check_prediction(answer)
        status, batch = call(f"{base}/predict/batch", {"wines": list(TYPICAL_WINES.values())})
        assert status == 200 and batch["n"] == len(TYPICAL_WINES), batch
        assert all(q in range(3, 10) for q in batch["quality"]), batch
        assert all(abs(sum(p) - 1) < 1e-4 for p in batch["probabilities"]), batch
        print(f"smoke: {health['model_id']} ({args.backend}) answered /health, /predict and /predict/batch on {base}")
        return 0
    except AssertionError as e:
        print(f"smoke: unexpected answer: {e}", file=sys.stderr)
        return 1
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
