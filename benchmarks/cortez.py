"""Cortez et al. (2009) protocol: our MLP and the baselines, per wine type, under `random` and `grouped` repeated CV.

Runs the benchmark notebook, nbs/07_benchmark.ipynb, with papermill (the options below are its parameters) and
saves the executed notebook, results.csv, results.md and summary.json to --out. Prints the results table (mean ±
95% half-width over repeats, with the paper's published rows) and, as its last line, the MLP's accuracy at T=0.5
for each wine type under both protocols.

    python benchmarks/cortez.py [--repeats 10] [--k 5] [--models all] [--wines red,white] [--seed 0] [--workers 2]
                                [--out runs/cortez]

--models takes names from MODELS, in the notebook's "Recipes and models" section, comma-separated, or `all`; it must
include mlp. The report of the reference run is in benchmarks/reports/.
"""
import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import papermill

NOTEBOOK = Path(__file__).resolve().parents[1]/"nbs"/"07_benchmark.ipynb"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="repeats of the k folds (the paper used 20)")
    parser.add_argument("--k", type=int, default=5, help="folds")
    parser.add_argument("--models", default="all", help="comma-separated names from the notebook's MODELS, or all")
    parser.add_argument("--wines", default="red,white", help="wine types, each evaluated on its own")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and the models")
    parser.add_argument("--workers", type=int, default=1, help="processes, one (wine, protocol) part each at a time")
    parser.add_argument("--out", default="runs/cortez", help="folder for the executed notebook and the results")
    args = parser.parse_args()
    if args.models != "all" and "mlp" not in args.models.split(","):
        parser.error("--models must include mlp (its figures are the last line)")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    parameters = dict(repeats=args.repeats, k=args.k, models=args.models, wines=args.wines, seed=args.seed,
                      workers=args.workers, out_dir=str(out))
    started = time.perf_counter()
    try: papermill.execute_notebook(NOTEBOOK, out/"benchmark.ipynb", parameters=parameters, cwd=NOTEBOOK.parent)
    except papermill.PapermillExecutionError as error:
        sys.exit(f"the benchmark notebook failed: {error.ename}: {error.evalue} (see {out/'benchmark.ipynb'})")
    print((out/"results.md").read_text())
    results = pd.read_csv(out/"results.csv")
    print(f"{args.repeats} × {args.k}-fold, {results.model.nunique()} models: {time.perf_counter() - started:.0f} s")
    mlp = results[results.model == "mlp"].groupby(["wine", "protocol"], sort=False)["acc_0.5"].mean()
    print("MLP accuracy at T=0.5: " + ", ".join(f"{wine} {protocol} {accuracy:.3f}"
                                                for (wine, protocol), accuracy in mlp.items()))


if __name__ == "__main__":
    main()
