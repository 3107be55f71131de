"""Cortez et al. (2009) protocol: our MLP and the baselines, per wine type, under `random` and `grouped` repeated CV.

Prints the results table (mean ± 95% half-width over repeats, with the paper's published rows) and, as its last line,
the MLP's accuracy at T=0.5 for red and white under both protocols. Writes results.csv and results.md to --out.

    python benchmarks/cortez.py [--repeats 10] [--k 5] [--models mean,linear,svr,rf,rf_classifier,hgb,mlp,mlp_encoded,mlp_plain,mlp_first] [--workers 2] [--out runs/cortez]
"""
import argparse
import time
from pathlib import Path

from wine_nb.data import write_atomic
from wine_nb.evaluate import MODELS, PROTOCOLS, markdown_table, results_table, run_benchmark


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--wines", default="red,white")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/cortez")
    parser.add_argument("--workers", type=int, default=1, help="processes, one (wine, protocol) part each at a time")
    args = parser.parse_args()
    models = {name: MODELS[name] for name in args.models.split(",")}
    if "mlp" not in models: parser.error("--models must include mlp (its figures are the last line)")
    started = time.perf_counter()
    results = run_benchmark(models, tuple(args.wines.split(",")), PROTOCOLS, args.k, args.repeats, args.seed, workers=args.workers)
    table = results_table(results)
    write_atomic(Path(args.out)/"results.csv", results.to_csv(index=False).encode())
    write_atomic(Path(args.out)/"results.md", markdown_table(table).encode())
    print(markdown_table(table))
    print(f"{args.repeats} × {args.k}-fold, {len(models)} models: {time.perf_counter() - started:.0f} s")
    mlp = results[results.model == "mlp"].groupby(["wine", "protocol"])["acc_0.5"].mean()
    print("MLP accuracy at T=0.5: " + ", ".join(f"{w} {p} {mlp[w, p]:.3f}" for w in args.wines.split(",") for p in PROTOCOLS))


if __name__ == "__main__":
    main()
