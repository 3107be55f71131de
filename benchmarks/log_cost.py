"""What the prediction log costs /predict, in one run on this machine.

Starts `wine_serve` twice on 127.0.0.1 with the same model and backend: once with the prediction log off
(`--log_db off`) and once logging to a fresh SQLite file (WAL, synchronous=NORMAL, one committed insert per
request before the response). Drives both with the keep-alive client of serve_speed.py in interleaved rounds and
reports p50/p95 latency and requests/s of POST /predict, the median over rounds of the p95 ratio (log on / log
off), and rows/s of 10,000-wine JSON batches. At the end it checks that the log holds exactly one row per
answered prediction. The goal: logging adds at most 10% to the p95 of /predict.

    python benchmarks/log_cost.py [--model runs/default] [--requests 2000] [--rounds 7] [--connections 4]
"""
import argparse
import json
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
from serve_speed import http_request, measure, median_of, start_server

from wine_nb.data import FEATURES, load_wine
from wine_nb.serve import TYPICAL_WINES, input_bounds
from wine_nb.tracking import project_root, read_bundle
from wine_nb.train import TrainConfig, run_training


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="run folder to serve (default: runs/default, else a quick model)")
    parser.add_argument("--backend", default="onnx", help="torch or onnx (the faster one makes the log's share larger)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement and round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (medians kept)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent keep-alive connections")
    parser.add_argument("--batch_requests", type=int, default=10, help="requests of 10,000 wines per batch measurement")
    args = parser.parse_args()
    model = Path(args.model) if args.model else project_root()/"runs"/"default"
    if not (model/"bundle.json").exists():
        if args.model: raise SystemExit(f"{model} holds no finished run")
        model = Path(tempfile.mkdtemp(prefix="log_cost_"))/"run"
        run_training(TrainConfig(epochs=5, wandb_mode="disabled"), out_dir=model)
    bounds = input_bounds(read_bundle(model)[0]["feature_ranges"])
    wines = load_wine()
    wines = wines[np.logical_and.reduce([wines[f].between(lo, hi) for f, (lo, hi) in bounds.items()])].sample(10_000, replace=True, random_state=0)
    one = http_request("POST", "/predict", json.dumps(TYPICAL_WINES["red"]).encode())
    batch = http_request("POST", "/predict/batch", json.dumps({"wines": [
        {**{f: float(v) for f, v in zip(FEATURES, row[:-1])}, "wine": row[-1]} for row in wines[FEATURES + ["wine"]].itertuples(index=False)]}).encode())
    db = Path(tempfile.mkdtemp(prefix="log_cost_db_"))/"predictions.sqlite"
    servers, rounds, batches = {}, {"off": [], "on": []}, {}
    try:
        servers["off"] = start_server(model, args.backend, ("--log_db", "off"))
        servers["on"] = start_server(model, args.backend, ("--log_db", db))
        for _ in range(args.rounds):
            for name in ("off", "on"): rounds[name].append(measure(servers[name], one, args.requests, args.connections))
        for name in ("off", "on"):
            r = measure(servers[name], batch, args.batch_requests, 2, warmup=2)
            batches[name] = r["rps"] * len(wines)
    finally:
        for proc, _ in servers.values(): proc.terminate(); proc.wait(10)
    with sqlite3.connect(db) as connection: logged = connection.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    answered = args.rounds * (args.requests + 200) + (args.batch_requests + 2) * len(wines)  # measure() warms up with 200 (batches: 2)
    print(f"model {model}, {args.backend} backend; {args.rounds} interleaved rounds of {args.requests} requests over {args.connections} connections")
    print(f"{'POST /predict':<22} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'server CPU µs/req':>18}")
    for name in ("off", "on"):
        r = median_of(rounds[name])
        print(f"{'log ' + name:<22} {r['rps']:>9,.0f} {r['p50']:>8.3f} {r['p95']:>8.3f} {r['cpu_us']:>18,.0f}")
    p95 = float(np.median([on["p95"] / off["p95"] for on, off in zip(rounds["on"], rounds["off"])]))
    p50 = float(np.median([on["p50"] / off["p50"] for on, off in zip(rounds["on"], rounds["off"])]))
    print(f"batches of 10,000 wines (JSON): log off {batches['off']:,.0f} rows/s, log on {batches['on']:,.0f} rows/s")
    print(f"rows in the log: {logged:,} for {answered:,} predictions answered" + ("" if logged == answered else "  <-- MISMATCH"))
    print(f"summary: logging changes /predict p95 by {p95 - 1:+.1%} and p50 by {p50 - 1:+.1%} (median of per-round ratios; goal: p95 at most +10%)")


if __name__ == "__main__":
    main()
