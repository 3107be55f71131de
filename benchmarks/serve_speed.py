"""Speed of the prediction service as a client sees it, in one run on this machine.

Starts the real server (`wine_serve`, uvicorn) on 127.0.0.1 twice, with the torch and with the onnx backend, and
drives it with a small asyncio client over raw keep-alive HTTP/1.1 connections (the lightest client Python has,
so the figures are the server's, not the client's). Reports requests/s and p50/p95 latency of POST /predict for
both backends and of GET /health (the framework's ceiling on the same app), and rows/s of POST /predict/batch
(JSON) and /predict/batch/csv with 10,000 wines per request. Every prediction is logged, as by default, to a
temporary SQLite file (benchmarks/log_cost.py measures what that costs).

    python benchmarks/serve_speed.py [--model runs/default] [--requests 4000] [--connections 4]

Without --model and without runs/default, a 5-epoch model is trained into a temporary folder first.
"""
import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from wine_nb.data import FEATURES, load_wine
from wine_nb.runs import project_root, read_run
from wine_nb.serve.inputs import TYPICAL_WINES, input_bounds
from wine_nb.train import TrainConfig, run_training


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, backend: str, args: tuple = ()) -> tuple:
    "A `wine_serve` process on a free loopback port, ready (GET /health answers); `args` are more options for it."
    port = free_port()
    exe = Path(sys.executable).parent/"wine_serve"
    proc = subprocess.Popen([str(exe), "--model", str(model), "--port", str(port), "--backend", backend,
                             *map(str, args)])
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if json.load(r)["status"] == "ready": return proc, port
        except OSError: time.sleep(0.1)
        if proc.poll() is not None: raise SystemExit(f"wine_serve exited with status {proc.returncode}")
    proc.terminate()
    raise SystemExit("wine_serve did not become ready in 30 s")


def http_request(method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> bytes:
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def read_response(reader) -> int:
    "Read one response; return its status."
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length": length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def drive(port: int, request: bytes, n: int, connections: int) -> tuple:
    "Send `request` `n` times over `connections` keep-alive connections; return (seconds, latencies, statuses)."
    latencies, statuses, left = [], [], [n]

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while left[0] > 0:
            left[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            statuses.append(await read_response(reader))
            latencies.append(time.perf_counter() - started)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - started, np.array(latencies), statuses


def cpu_seconds(pid: int) -> float:
    "User + system CPU time of a process so far (Linux /proc)."
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(server: tuple, request: bytes, n: int, connections: int, warmup: int = 200) -> dict:
    "Requests/s, p50/p95 latency (ms) and the server's CPU time per request (µs) for `n` requests after a warm-up."
    proc, port = server
    asyncio.run(drive(port, request, warmup, connections))
    cpu = cpu_seconds(proc.pid)
    seconds, latencies, statuses = asyncio.run(drive(port, request, n, connections))
    bad = [s for s in statuses if s != 200]
    if bad: raise SystemExit(f"{len(bad)} requests failed (status {bad[0]})")
    return dict(rps=n / seconds, p50=np.percentile(latencies, 50) * 1e3, p95=np.percentile(latencies, 95) * 1e3,
                cpu_us=(cpu_seconds(proc.pid) - cpu) / n * 1e6)


def median_of(rounds: list) -> dict:
    return {k: float(np.median([r[k] for r in rounds])) for k in rounds[0]}


def model_to_serve(given: str | None, prefix: str) -> Path:
    "The run folder to serve: `given`, else runs/default, else a 5-epoch model trained into a temporary folder."
    model = Path(given) if given else project_root()/"runs"/"default"
    if not (model/"bundle.json").exists():
        if given: raise SystemExit(f"{model} holds no finished run")
        model = Path(tempfile.mkdtemp(prefix=prefix))/"run"
        run_training(TrainConfig(epochs=5, wandb_mode="disabled"), out_dir=model)
    return model


def accepted_wines(model: Path, n: int = 10_000):
    "`n` UCI wines, drawn with replacement from those the service of `model` accepts."
    bounds = input_bounds(read_run(model).meta["feature_ranges"])
    wines = load_wine()
    accepted = np.logical_and.reduce([wines[f].between(lo, hi) for f, (lo, hi) in bounds.items()])
    return wines[accepted].sample(n, replace=True, random_state=0)


def batch_request(wines) -> bytes:
    "POST /predict/batch with `wines` as JSON."
    rows = [{**{f: float(v) for f, v in zip(FEATURES, row[:-1], strict=True)}, "wine": row[-1]}
            for row in wines[FEATURES + ["wine"]].itertuples(index=False)]
    return http_request("POST", "/predict/batch", json.dumps({"wines": rows}).encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="run folder to serve (default: runs/default, else a quick model)")
    parser.add_argument("--requests", type=int, default=1500, help="requests per single-wine measurement and round")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of the single-wine measurements, interleaved (median kept)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent keep-alive connections")
    parser.add_argument("--batch_requests", type=int, default=20, help="requests of 10,000 wines per batch measurement")
    args = parser.parse_args()
    model = model_to_serve(args.model, "serve_speed_")
    wines = accepted_wines(model)
    one = http_request("POST", "/predict", json.dumps(TYPICAL_WINES["red"]).encode())
    batch = batch_request(wines)
    csv_text = wines[FEATURES + ["wine"]].to_csv(sep=";", index=False)
    boundary = "wineboundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"wines.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n"
            f"{csv_text}\r\n--{boundary}--\r\n").encode()
    csv_request = http_request("POST", "/predict/batch/csv", form, f"multipart/form-data; boundary={boundary}")
    results, servers = {}, {}
    try:
        # the prediction log stays on, as by default, out of the project
        logs = Path(tempfile.mkdtemp(prefix="serve_speed_logs_"))
        for backend in ("torch", "onnx"):
            servers[backend] = start_server(model, backend, ("--log_db", logs/f"{backend}.sqlite"))
        health = http_request("GET", "/health")
        singles = {"GET /health (torch app)": (servers["torch"], health),
                   "POST /predict, torch": (servers["torch"], one),
                   "GET /health (onnx app)": (servers["onnx"], health),
                   "POST /predict, onnx": (servers["onnx"], one)}
        rounds = {name: [] for name in singles}
        # interleaved, so that a burst of other load on the machine hits every endpoint alike
        for _ in range(args.rounds):
            for name, (server, request) in singles.items():
                rounds[name].append(measure(server, request, args.requests, args.connections))
        results.update({name: median_of(r) for name, r in rounds.items()})
        for name, request in (("POST /predict/batch (JSON)", batch), ("POST /predict/batch/csv", csv_request)):
            for backend, server in servers.items():
                r = measure(server, request, args.batch_requests, 2, warmup=2)
                results[f"{name}, {backend}"] = {**r, "rows/s": r["rps"] * len(wines)}
    finally:
        for proc, _ in servers.values():
            proc.terminate(); proc.wait(10)
    print(f"model {model}; single wines: median of {args.rounds} interleaved rounds of {args.requests} requests over "
          f"{args.connections} connections; batches: {args.batch_requests} requests of {len(wines):,} wines over "
          f"2 connections; {os.cpu_count()} CPUs shared by client and server; "
          f"load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'endpoint':<36} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'server CPU µs/req':>18} {'rows/s':>10}")
    for name, r in results.items():
        rows = f"{r['rows/s']:>10,.0f}" if "rows/s" in r else ""
        print(f"{name:<36} {r['rps']:>9,.0f} {r['p50']:>8.2f} {r['p95']:>8.2f} {r['cpu_us']:>18,.0f} {rows}")
    def per_round_ratio(b: str) -> float:
        "Median over the rounds of /predict's requests/s over /health's, on the app of backend `b`."
        pairs = zip(rounds[f"POST /predict, {b}"], rounds[f"GET /health ({b} app)"], strict=True)  # one each per round
        return float(np.median([p["rps"] / h["rps"] for p, h in pairs]))
    ratio = {b: per_round_ratio(b) for b in ("torch", "onnx")}
    cpu_ratio = {b: results[f"GET /health ({b} app)"]["cpu_us"] / results[f"POST /predict, {b}"]["cpu_us"]
                 for b in ("torch", "onnx")}
    ratio_torch, ratio_onnx = ratio["torch"], ratio["onnx"]
    batch_rows = min(r["rows/s"] for n, r in results.items() if "rows/s" in r)
    print(f"/predict vs /health, requests/s (median of per-round ratios): torch {ratio_torch:.0%}, "
          f"onnx {ratio_onnx:.0%} (goal ≥ 70%); by server CPU per request: torch {cpu_ratio['torch']:.0%}, "
          f"onnx {cpu_ratio['onnx']:.0%}")
    print(f"summary: /predict at {ratio_torch:.0%} (torch) and {ratio_onnx:.0%} (onnx) of the trivial endpoint's "
          f"requests/s; slowest batch path {batch_rows:,.0f} rows/s (goal ≥ 100,000)")


if __name__ == "__main__":
    main()
