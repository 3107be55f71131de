"""Speed of the prediction service as a client sees it, against the machine's limit, in one run on this machine.

Starts the real server (`wine_serve`, uvicorn) on 127.0.0.1 twice, with the onnx (default) and the torch backend,
and drives it with a small asyncio client over raw keep-alive HTTP/1.1 connections (the lightest client Python has,
so the figures are the server's, not the client's). Reports requests/s and p50/p95 latency of POST /predict for
both backends and of GET /health (the trivial endpoint: the framework's ceiling on the same app), and wines/s of
POST /predict/batch (JSON) and /predict/batch/csv with 10,000 wines per request. Every prediction is logged, as
by default, to a temporary SQLite file (benchmarks/log_cost.py measures what that costs).

The limit the batch routes are held against is the network's bare matrix products for the same 10,000 wines, on
one thread (NumPy's BLAS, the served weights with each head's adapters folded in): no framework, no validation,
no log. `wine_predict` is timed on a 100,000-wine file, with its peak memory.

    python benchmarks/serve_speed.py [--model runs/default] [--requests 1500] [--rounds 5] [--connections 4]
                                     [--batch_rounds 3] [--workers 1]

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
import timeit
import urllib.request
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from wine_nb.data import FEATURES, load_wine
from wine_nb.predict import load_model
from wine_nb.runs import project_root, read_run
from wine_nb.serve.inputs import TYPICAL_WINES, input_bounds
from wine_nb.train import TrainConfig, run_training

BACKENDS = ("onnx", "torch", "onnx-int8")  # the default first


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
    "User + system CPU time so far of a process and of the processes under it, such as uvicorn's workers (Linux /proc)."
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    children = Path(f"/proc/{pid}/task/{pid}/children")
    below = [int(c) for c in children.read_text().split()] if children.exists() else []
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + sum(map(cpu_seconds, below))


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


def network_limit(model: Path, wines) -> dict:
    """Wines/s of the network's bare matrix products on `wines`, one thread: the layers' products alone (each head's
    adapters folded into its weights, so an 8-head layer is one batched product), best of 5 timings, in the chunk
    size that runs them fastest (small chunks keep the activations in the processor's cache)."""
    network = load_model(model).model
    layers = [{k: v.detach().numpy() for k, v in layer.state_dict().items()}
              for layer in [*network.hidden, network.output]]
    def weights(layer):  # (heads, in, out): rank-1 adapters folded in; a plain layer is one head
        if "r" not in layer: return layer["weight"].T[None]
        return layer["r"][:, :, None] * layer["weight"][None] * layer["s"][:, None, :]
    folded = [weights(layer).astype("float32") for layer in layers]
    first = np.ascontiguousarray(folded[0].transpose(1, 0, 2).reshape(folded[0].shape[1], -1))
    def rate(chunk: int) -> float:
        inputs = np.ones((chunk, folded[0].shape[1]), dtype="float32")
        hidden = [np.ones((len(folded[0]), chunk, w.shape[1]), dtype="float32") for w in folded[1:]]
        def products():
            for _ in range(len(wines) // chunk):
                inputs @ first
                for h, w in zip(hidden, folded[1:], strict=True): np.matmul(h, w)
        return len(wines) // chunk * chunk / min(timeit.repeat(products, number=1, repeat=5))
    with threadpool_limits(1):
        return {chunk: rate(chunk) for chunk in (128, 256, 512, 1024, 2048, len(wines))}


def wine_predict_run(model: Path, wines, backend: str) -> dict:
    "Seconds and peak memory (MiB) of `wine_predict` scoring `wines` from a CSV file, in a process of its own."
    folder = Path(tempfile.mkdtemp(prefix="serve_speed_predict_"))
    wines[FEATURES + ["wine"]].to_csv(folder/"wines.csv", sep=";", index=False)
    program = ("import resource, sys\nfrom wine_nb.serve.app import wine_predict\nwine_predict(sys.argv[1:])\n"
               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")  # KiB on Linux
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", program, str(folder/"wines.csv"), str(folder/"scored.csv"),
                           "--model", str(model), "--backend", backend, "--log_level", "warning"],
                          check=True, capture_output=True, text=True)
    return dict(seconds=time.perf_counter() - started, peak_mib=int(done.stdout.split()[-1]) / 1024)


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
    parser.add_argument("--batch_rounds", type=int, default=3,
                        help="rounds of the batch measurements, interleaved (median kept)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of each server (wine_serve --workers)")
    args = parser.parse_args()
    model = model_to_serve(args.model, "serve_speed_")
    wines = accepted_wines(model)
    rates = network_limit(model, wines)
    limit, whole = max(rates.values()), rates[len(wines)]
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
        for backend in BACKENDS:
            options = ("--log_db", logs/f"{backend}.sqlite", "--workers", args.workers)
            servers[backend] = start_server(model, backend, options)
        health = http_request("GET", "/health")
        singles = {}
        for backend in BACKENDS:
            singles[f"GET /health ({backend} app)"] = (servers[backend], health)
            singles[f"POST /predict, {backend}"] = (servers[backend], one)
        rounds = {name: [] for name in singles}
        # interleaved, so that a burst of other load on the machine hits every endpoint alike
        for _ in range(args.rounds):
            for name, (server, request) in singles.items():
                rounds[name].append(measure(server, request, args.requests, args.connections))
        results.update({name: median_of(r) for name, r in rounds.items()})
        batches = {f"{name}, {backend}": (server, request) for name, request in
                   (("POST /predict/batch (JSON)", batch), ("POST /predict/batch/csv", csv_request))
                   for backend, server in servers.items()}
        batch_rounds: dict = {name: [] for name in batches}
        for _ in range(args.batch_rounds):  # interleaved too: one round is a second or two, and the load moves
            for name, (server, request) in batches.items():
                batch_rounds[name].append(measure(server, request, args.batch_requests, 2, warmup=2))
        for name, r in batch_rounds.items():
            median = median_of(r)
            results[name] = {**median, "rows/s": median["rps"] * len(wines)}
    finally:
        for proc, _ in servers.values():
            proc.terminate(); proc.wait(10)
    many = wines.sample(100_000, replace=True, random_state=1)
    offline = {backend: wine_predict_run(model, many, backend) for backend in BACKENDS}
    print(f"model {model}, {args.workers} worker process(es) per server; single wines: median of {args.rounds} "
          f"interleaved rounds of {args.requests} requests over "
          f"{args.connections} connections; batches: median of {args.batch_rounds} interleaved rounds of "
          f"{args.batch_requests} requests of {len(wines):,} wines over 2 connections; "
          f"{os.cpu_count()} CPUs shared by client and server; "
          f"load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'endpoint':<36} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'server CPU µs/req':>18} {'rows/s':>10}")
    for name, r in results.items():
        rows = f"{r['rows/s']:>10,.0f}" if "rows/s" in r else ""
        print(f"{name:<36} {r['rps']:>9,.0f} {r['p50']:>8.2f} {r['p95']:>8.2f} {r['cpu_us']:>18,.0f} {rows}")
    def per_round_ratio(b: str) -> float:
        "Median over the rounds of /predict's requests/s over /health's, on the app of backend `b`."
        pairs = zip(rounds[f"POST /predict, {b}"], rounds[f"GET /health ({b} app)"], strict=True)  # one each per round
        return float(np.median([p["rps"] / h["rps"] for p, h in pairs]))
    ratio = {b: per_round_ratio(b) for b in BACKENDS}
    cpu_ratio = {b: results[f"GET /health ({b} app)"]["cpu_us"] / results[f"POST /predict, {b}"]["cpu_us"]
                 for b in BACKENDS}
    print("/predict vs /health, requests/s (median of per-round ratios): "
          + ", ".join(f"{b} {ratio[b]:.0%}" for b in BACKENDS) + " (goal ≥ 70%); by server CPU per request: "
          + ", ".join(f"{b} {cpu_ratio[b]:.0%}" for b in BACKENDS))
    print(f"network limit: bare matrix products of the served network on the same {len(wines):,} wines, one thread: "
          f"{limit:,.0f} wines/s in the fastest chunking ({max(rates, key=rates.get)} rows), {whole:,.0f} over the "
          f"whole {len(wines):,}-row matrices")
    for name, r in results.items():
        if "rows/s" in r:
            print(f"  {name:<36} {r['rows/s']:>10,.0f} wines/s = {r['rows/s'] / limit:.0%} of the limit "
                  f"({r['rows/s'] / whole:.0%} of the whole-matrix products)")
    for backend, r in offline.items():
        rate = len(many) / r["seconds"]
        print(f"  wine_predict, {len(many):,} wines, {backend:<5} {r['seconds']:>6.2f} s = {rate:>9,.0f} wines/s = "
              f"{rate / limit:.0%} of the limit; peak memory {r['peak_mib']:,.0f} MiB")
    default = BACKENDS[0]
    json_share = results[f"POST /predict/batch (JSON), {default}"]["rows/s"] / limit
    csv_share = results[f"POST /predict/batch/csv, {default}"]["rows/s"] / limit
    print(f"summary ({default}, the default backend): /predict at {ratio[default]:.0%} of the trivial endpoint's "
          f"requests/s (goal ≥ 70%); batches at {json_share:.0%} (JSON) and {csv_share:.0%} (CSV) of the network "
          f"limit (goal ≥ 50%)")


if __name__ == "__main__":
    main()
