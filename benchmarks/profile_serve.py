"""Where the prediction service's time goes: a sampling profile of the real server under load, in one run.

Starts `wine_serve` (its defaults: the onnx backend, the prediction log on, in a temporary SQLite file) on
127.0.0.1, drives it with the keep-alive client of serve_speed.py, and records the server process with py-spy
(a sampling profiler that attaches from outside: the server runs unmodified). Two loads, one after the other:
single wines on POST /predict (4 connections), then 10,000-wine batches on POST /predict/batch (2 connections).
For each it prints the share of the server's on-CPU samples by part of the work (each sample goes to the innermost
frame that belongs to a known part) and the functions with the most samples of their own.

    python benchmarks/profile_serve.py [--model runs/default] [--seconds 10] [--rate 250] [--out report.md]

py-spy needs the right to read another process's memory (root, or ptrace allowed).
"""
import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from serve_speed import accepted_wines, batch_request, drive, http_request, model_to_serve, start_server

from wine_nb.serve.inputs import TYPICAL_WINES

PARTS = [  # (part, pattern of a frame's file as py-spy names it, e.g. starlette/routing.py), innermost frame first
    ("validation (inputs)", r"wine_nb/serve/inputs\.py|orjson"),
    ("network (onnxruntime / torch)", r"(^|/)(onnxruntime|torch)/|wine_nb/predict\.py|wine_nb/onnx\.py"),
    ("prediction log (SQLite)", r"wine_nb/predlog\.py|sqlite3"),
    ("metrics (Prometheus)", r"(^|/)prometheus_client/|wine_nb/serve/metrics\.py"),
    ("service code (batching, answers)", r"wine_nb/serve/app\.py"),
    ("framework (FastAPI, Starlette)", r"(^|/)(fastapi|starlette|anyio|opentelemetry)/"),
    ("HTTP server and event loop (uvicorn)", r"(^|/)(uvicorn|httptools|asyncio|uvloop)/|threading\.py"),
]


def frame_file(frame: str) -> str:
    "The file of a py-spy raw frame 'function (file:line)'."
    match = re.match(r".* \((.*?):\d+\)$", frame)
    return match.group(1) if match else frame


def frame_name(frame: str) -> str:
    "'function (file)', the file shortened to its package path."
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not match: return frame
    return f"{match.group(1)} ({re.sub(r'^.*?(site-packages|/lib/python3[.0-9]*)/', '', match.group(2))})"


def summarise(raw: Path) -> tuple:
    "(samples by part, samples by innermost function) of a py-spy raw file ('frame;frame;... count' per line)."
    parts, leaves = Counter(), Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        leaves[frame_name(frames[-1])] += int(count)
        part = next((name for frame in reversed(frames) for name, pattern in PARTS
                     if re.search(pattern, frame_file(frame))), "other")
        parts[part] += int(count)
    return parts, leaves


def record(pid: int, seconds: float, rate: int, out: Path):
    "Sample process `pid` with py-spy for `seconds` at `rate` per second into `out` (raw format)."
    exe = Path(sys.executable).parent/"py-spy"
    subprocess.run([str(exe), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate),
                    "--format", "raw", "--output", str(out)], check=True, capture_output=True)


def profile(server: tuple, request: bytes, connections: int, seconds: float, rate: int, out: Path) -> tuple:
    "Drive `server` with `request` on `connections` connections while py-spy records it; the summary and req/s."
    proc, port = server
    stop, done = threading.Event(), []
    def load():
        while not stop.is_set():
            elapsed, _, statuses = asyncio.run(drive(port, request, connections * 50, connections))
            done.append((len(statuses), elapsed))
    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(1)  # warm
    try: record(proc.pid, seconds, rate, out)
    finally:
        stop.set(); thread.join()
    return summarise(out), sum(n for n, _ in done) / sum(t for _, t in done)


def table(parts: Counter, leaves: Counter, top: int) -> str:
    "Markdown tables of the parts and of the `top` innermost functions, as shares of all samples."
    total = sum(parts.values())
    lines = ["| part of the work | share of server CPU |", "|---|---|"]
    lines += [f"| {name} | {n / total:.1%} |" for name, n in parts.most_common()]
    lines += ["", "| function (innermost frame) | share |", "|---|---|"]
    lines += [f"| `{name}` | {n / total:.1%} |" for name, n in leaves.most_common(top)]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="run folder to serve (default: runs/default, else a quick model)")
    parser.add_argument("--seconds", type=float, default=10, help="seconds recorded for each load")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=15, help="functions listed for each load")
    parser.add_argument("--out", default=None, help="also write the report to this Markdown file")
    args = parser.parse_args()
    model = model_to_serve(args.model, "profile_serve_")
    folder = Path(tempfile.mkdtemp(prefix="profile_serve_"))
    server = start_server(model, "onnx", ("--log_db", folder/"predictions.sqlite", "--log_level", "warning"))
    one = http_request("POST", "/predict", json.dumps(TYPICAL_WINES["red"]).encode())
    sections = []
    try:
        for title, request, connections in (("POST /predict, one wine per request", one, 4),
                                            ("POST /predict/batch, 10,000 wines per request",
                                             batch_request(accepted_wines(model)), 2)):
            (parts, leaves), rps = profile(server, request, connections, args.seconds, args.rate,
                                           folder/f"{len(sections)}.raw")
            sections.append(f"## {title}\n\n{sum(parts.values()):,} samples over {args.seconds:g} s at {args.rate}/s; "
                            f"{rps:,.1f} requests/s while recording; {connections} connections\n\n"
                            + table(parts, leaves, args.top))
    finally:
        server[0].terminate(); server[0].wait(10)
    report = (f"# Where the service's time goes\n\nmodel {model}; onnx backend; prediction log on (SQLite); "
              f"{os.cpu_count()} CPUs shared by client and server\n\n" + "\n\n".join(sections) + "\n")
    print(report)
    if args.out: Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
