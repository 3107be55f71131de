"""Cortez et al. (2009) protocol: our MLP and the baselines, per wine type, under `random` and `grouped` repeated CV.

Runs the benchmark notebook, nbs/07_benchmark.ipynb, with papermill (the options below are its parameters) and
saves the executed notebook, results.csv, results.md and summary.json to --out. Prints the results table (mean ±
95% half-width over repeats, with the paper's published rows) and, as its last line, the MLP's accuracy at T=0.5
for each wine type under both protocols.

    python benchmarks/cortez.py [--repeats 10] [--k 5] [--models all] [--wines red,white] [--seed 0]
                                [--executor serial|loky|dask] [--workers 2] [--scheduler tcp://host:8786]
                                [--progress | --no-progress] [--out runs/cortez]

--models takes names from MODELS, in the notebook's "Recipes and models" section, comma-separated, or `all`; it must
include mlp. The (wine, protocol) parts run one after the other (`serial`), in `--workers` loky processes on this
machine (`loky`), or on the workers of a running dask.distributed scheduler (`dask --scheduler tcp://host:8786`;
start it with `dask scheduler` and `dask worker tcp://host:8786`, each worker with this project installed); the
figures are the same on every engine. --progress shows a bar over the parts on stderr (default: when stderr is a
terminal). The report of the reference run is in benchmarks/reports/.
"""
import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import papermill

from wine_nb.evaluate import EXECUTORS, check_executor

NOTEBOOK = Path(__file__).resolve().parents[1]/"nbs"/"07_benchmark.ipynb"


def parse_options() -> argparse.Namespace:
    "The options, checked before anything is written."
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="repeats of the k folds (the paper used 20)")
    parser.add_argument("--k", type=int, default=5, help="folds")
    parser.add_argument("--models", default="all", help="comma-separated names from the notebook's MODELS, or all")
    parser.add_argument("--wines", default="red,white", help="wine types, each evaluated on its own")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and the models")
    parser.add_argument("--executor", choices=EXECUTORS, default="serial", help="engine that runs the parts")
    parser.add_argument("--workers", type=int, default=1, help="loky's processes, one (wine, protocol) part each")
    parser.add_argument("--scheduler", default="", help="address of the dask.distributed scheduler, for dask")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a bar over the parts on stderr (default: when stderr is a terminal)")
    parser.add_argument("--out", default="runs/cortez", help="folder for the executed notebook and the results")
    args = parser.parse_args()
    if args.models != "all" and "mlp" not in args.models.split(","):
        parser.error("--models must include mlp (its figures are the last line)")
    try: check_executor(args.executor, args.workers, args.scheduler or None)
    except ValueError as error: parser.error(str(error))
    if args.progress is None: args.progress = sys.stderr.isatty()
    return args


def main():
    args = parse_options()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    parameters = dict(repeats=args.repeats, k=args.k, models=args.models, wines=args.wines, seed=args.seed,
                      executor=args.executor, workers=args.workers, scheduler=args.scheduler,
                      progress=args.progress, out_dir=str(out))
    started = time.perf_counter()
    try:  # the parts' bar, drawn in the kernel, reaches this stderr; it replaces papermill's bar over cells
        papermill.execute_notebook(NOTEBOOK, out/"benchmark.ipynb", parameters=parameters, cwd=NOTEBOOK.parent,
                                   progress_bar=False, stderr_file=sys.stderr if args.progress else None)
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
