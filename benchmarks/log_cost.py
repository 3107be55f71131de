"""What the prediction log costs /predict, in one run on this machine.

Starts `wine_serve` twice on 127.0.0.1 with the same model and backend: once with the prediction log off
(`--log_db off`) and once logging to a fresh SQLite file (WAL, synchronous=NORMAL, one committed insert per
request before the response). Drives both with the keep-alive client of serve_speed.py in interleaved rounds and
reports p50/p95 latency and requests/s of POST /predict, the median over rounds of the p95 ratio (log on / log
off), and rows/s of 10,000-wine JSON batches. At the end it checks that the log holds exactly one row per
answered prediction. The goal: logging adds at most 10% to the p95 of /predict.

Two loads, because they answer different questions:
- paced: requests sent on a fixed schedule (--rate per second, well below capacity), latency counted from each
  request's scheduled time, so a stall delays every request behind it (no coordinated omission). This is the
  latency a client sees from a service that is not overloaded.
- saturated: 4 keep-alive connections sending back to back, client and server on the same 2 cores. Latency is
  then mostly queueing, so it grows with any extra CPU per request: it shows what logging costs in capacity.

    python benchmarks/log_cost.py [--model runs/default] [--rate 1000] [--seconds 5] [--requests 2000] [--rounds 5]
"""
import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
from serve_speed import (
    accepted_wines,
    batch_request,
    http_request,
    measure,
    median_of,
    model_to_serve,
    read_response,
    start_server,
)

from wine_nb.serve.inputs import TYPICAL_WINES


async def paced(port: int, request: bytes, rate: float, seconds: float, connections: int = 8) -> np.ndarray:
    """Send `request` at `rate` per second for `seconds`, spread over `connections`; latencies from each scheduled
    send time."""
    latencies, start = [], time.perf_counter() + 0.05

    async def worker(k: int):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        interval = connections / rate
        for i in range(int(seconds * rate / connections)):
            due = start + (i + k / connections) * interval
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            writer.write(request)
            if await read_response(reader) != 200: raise SystemExit("a paced request failed")
            latencies.append(time.perf_counter() - due)
        writer.close()

    await asyncio.gather(*(worker(k) for k in range(connections)))
    return np.array(latencies)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="run folder to serve (default: runs/default, else a quick model)")
    parser.add_argument("--backend", default="onnx", help="torch or onnx (the faster one makes the log's share larger)")
    parser.add_argument("--rate", type=float, default=1000, help="requests per second of the paced load")
    parser.add_argument("--seconds", type=float, default=5, help="seconds of paced load per round")
    parser.add_argument("--requests", type=int, default=2000, help="requests per saturated measurement and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians kept)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent keep-alive connections")
    parser.add_argument("--batch_requests", type=int, default=10, help="requests of 10,000 wines per batch measurement")
    args = parser.parse_args()
    model = model_to_serve(args.model, "log_cost_")
    wines = accepted_wines(model)
    one = http_request("POST", "/predict", json.dumps(TYPICAL_WINES["red"]).encode())
    batch = batch_request(wines)
    db = Path(tempfile.mkdtemp(prefix="log_cost_db_"))/"predictions.sqlite"
    servers, rounds, batches, pace, paced_sent = {}, {"off": [], "on": []}, {}, {"off": [], "on": []}, 0
    try:
        servers["off"] = start_server(model, args.backend, ("--log_db", "off"))
        servers["on"] = start_server(model, args.backend, ("--log_db", db))
        for _ in range(args.rounds):
            for name in ("off", "on"):
                latencies = asyncio.run(paced(servers[name][1], one, args.rate, args.seconds))
                paced_sent += len(latencies) if name == "on" else 0
                pace[name].append(dict(p50=np.percentile(latencies, 50) * 1e3, p95=np.percentile(latencies, 95) * 1e3,
                                       p99=np.percentile(latencies, 99) * 1e3))
                rounds[name].append(measure(servers[name], one, args.requests, args.connections))
        for name in ("off", "on"):
            r = measure(servers[name], batch, args.batch_requests, 2, warmup=2)
            batches[name] = r["rps"] * len(wines)
    finally:
        for proc, _ in servers.values(): proc.terminate(); proc.wait(10)
    with sqlite3.connect(db) as connection:
        logged = connection.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    # measure() warms up with 200 requests (batches: 2)
    answered = paced_sent + args.rounds * (args.requests + 200) + (args.batch_requests + 2) * len(wines)
    print(f"model {model}, {args.backend} backend; {args.rounds} interleaved rounds, each: {args.seconds:g} s paced at "
          f"{args.rate:g} requests/s over 8 connections, then {args.requests} requests back to back over "
          f"{args.connections} connections")
    print(f"{'POST /predict, paced':<22} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name in ("off", "on"):
        r = median_of(pace[name])
        print(f"{'log ' + name:<22} {r['p50']:>8.3f} {r['p95']:>8.3f} {r['p99']:>8.3f}")
    print(f"{'POST /predict, saturated':<22} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'server CPU µs/req':>18}")
    for name in ("off", "on"):
        r = median_of(rounds[name])
        print(f"{'log ' + name:<22} {r['rps']:>9,.0f} {r['p50']:>8.3f} {r['p95']:>8.3f} {r['cpu_us']:>18,.0f}")
    def ratio(runs: dict, key: str) -> float:
        "Median over the rounds of log on / log off (every round measures both)."
        return float(np.median([on[key] / off[key] for on, off in zip(runs["on"], runs["off"], strict=True)]))
    paced_p95, p95, rps = ratio(pace, "p95"), ratio(rounds, "p95"), ratio(rounds, "rps")
    print(f"batches of 10,000 wines (JSON): log off {batches['off']:,.0f} rows/s, log on {batches['on']:,.0f} rows/s")
    mismatch = "" if logged == answered else "  <-- MISMATCH"
    print(f"rows in the log: {logged:,} for {answered:,} predictions answered" + mismatch)
    print(f"summary: logging changes /predict p95 by {paced_p95 - 1:+.1%} at {args.rate:g} requests/s "
          f"(goal: at most +10%); saturated: p95 {p95 - 1:+.1%}, capacity {rps - 1:+.1%} (medians of per-round ratios)")


if __name__ == "__main__":
    main()
