"""Choose the served recipe for wines unlike the training ones: grouped 5-fold cross-validation on development seeds.

The served model is one network for red and white wines, trained on a grouped split with its temperature fitted on
validation rows. This script scores candidate recipes the same way on development folds (seeds 1000, 2000, ...;
never the benchmark's seed 0, never a run's test split): for each grouped fold, the other folds are split (grouped)
into training and validation rows, the recipe trains and calibrates on them, and the held-out fold scores it. A
`RandomForestClassifier(n_estimators=300)` trains on the same training rows of each fold.

    python benchmarks/served_recipe.py [--seeds 1000,2000] [--k 5] [--recipes default,plain,tabm] [--workers 2]
        [--out runs/served_recipe]

The rule that chose the default among the candidates below: the best accuracy among the recipes whose expected-grade
MAD is at most the forest's and whose ECE is at most 0.03 (README, "Choosing the served model", has the figures).

Prints one row per recipe and wine type: the figures of the out-of-fold probabilities of all 6,497 wines (accuracy of
the most likely grade, MAD of the expected grade, ECE, NLL, mean top probability), averaged over the seeds, and the
mean seconds per fold; writes the rows per seed to --out/pooled.csv.
"""
import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from wine_nb.data import TARGET, WINE_TYPES, WineSplit, load_wine, split_wines, write_atomic
from wine_nb.evaluate import cv_folds
from wine_nb.train import ForestBaseline, TrainConfig, fit_predictor, prepare_split, probability_metrics

SERVED = TrainConfig(wandb_mode="disabled")  # TrainConfig's default, the served recipe
# the first TabM try
SMOOTHED = replace(SERVED, bins=0, hidden="128,128", dropout=0.1, mad_weight=1.0, heads=8, label_smoothing=0.1)
RECIPES = {
    "default": SERVED,  # the TabM-style ensemble without label smoothing
    # served before
    "encoded": replace(SERVED, bins=16, hidden="512", dropout=0.0, mad_weight=0.0, heads=1, label_smoothing=0.1),
    "plain": replace(SERVED, bins=0, hidden="256,256", dropout=0.2, mad_weight=1.0, heads=1, label_smoothing=0.1),
    "tabm": SMOOTHED,
    "tabm_wide": replace(SMOOTHED, hidden="256,256", dropout=0.2),
    "tabm_16": replace(SMOOTHED, heads=16),
    "tabm_no_mad": replace(SMOOTHED, mad_weight=0.0),
    "tabm_dropout": replace(SMOOTHED, dropout=0.25),
    "tabm_bins": replace(SMOOTHED, bins=8),
    "no_smoothing_decay": replace(SERVED, weight_decay=0.02),
    "no_smoothing_lr": replace(SERVED, lr=1e-3, epochs=150),
    "no_smoothing_mad_half": replace(SERVED, mad_weight=0.5),
    "no_smoothing_no_dropout": replace(SERVED, dropout=0.0),
    "no_smoothing_batch": replace(SERVED, batch_size=128),
}
FIGURES = ["accuracy", "expected_mad", "ece", "nll", "confidence"]


def fold_split(wines: pd.DataFrame, train: list, test: list, seed: int) -> WineSplit:
    "The fold's test rows, and its other rows split (grouped) into training and validation as a run splits them."
    rest = wines.iloc[train]
    inner = split_wines(rest, valid_frac=0.15 / 0.8, test_frac=0.01, seed=seed, mode="grouped")
    return WineSplit(pd.concat([inner.train, inner.test]), inner.valid, wines.iloc[test], "grouped", seed)


def score_fold(job: tuple) -> tuple:
    "Train each named model on one fold: its test positions, and each model's probabilities and seconds."
    names, seed, fold, train, test = job
    wines = load_wine("both")
    data, out = prepare_split(fold_split(wines, train, test, seed + fold)), {}
    for name in names:
        started = time.perf_counter()
        if name == "forest": model = ForestBaseline(data, seed + fold)
        else: model = fit_predictor(replace(RECIPES[name], seed=seed + fold), data)[0]
        out[name] = model.predict_proba(wines.iloc[test]), time.perf_counter() - started
    return seed, test, out


def pooled_figures(wines: pd.DataFrame, results: list, names: list) -> pd.DataFrame:
    "Each model's figures on the out-of-fold probabilities of all wines, per seed and wine type."
    rows = []
    for seed in sorted({r[0] for r in results}):
        parts = [r for r in results if r[0] == seed]
        order = np.concatenate([test for _, test, _ in parts])
        for name in names:
            proba, scored = np.concatenate([out[name][0] for _, _, out in parts]), wines.iloc[order]
            seconds = sum(out[name][1] for _, _, out in parts) / len(parts)
            for wine in ("both", *WINE_TYPES):
                mask = np.ones(len(scored), bool) if wine == "both" else (scored.wine == wine).to_numpy()
                figures = probability_metrics(scored[TARGET].to_numpy()[mask], proba[mask])
                rows.append(dict(model=name, seed=seed, wine=wine, seconds=seconds, **{f: figures[f] for f in FIGURES}))
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1000,2000", help="development fold seeds")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--recipes", default="default,plain,tabm", help=f"from {', '.join(RECIPES)}")
    parser.add_argument("--workers", type=int, default=2, help="processes, one fold each at a time")
    parser.add_argument("--out", default="runs/served_recipe")
    args = parser.parse_args()
    names = args.recipes.split(",") + ["forest"]
    unknown = set(names) - set(RECIPES) - {"forest"}
    if unknown: parser.error(f"unknown recipes {sorted(unknown)}; choose from {', '.join(RECIPES)}")
    wines, started = load_wine("both"), time.perf_counter()
    jobs = [(names, seed, f, train.tolist(), test.tolist()) for seed in map(int, args.seeds.split(","))
            for _, f, train, test in cv_folds(wines, args.k, 1, seed, "grouped")]
    with ProcessPoolExecutor(args.workers) as pool: results = list(pool.map(score_fold, jobs))
    pooled = pooled_figures(wines, results, names)
    write_atomic(Path(args.out)/"pooled.csv", pooled.to_csv(index=False).encode())
    table = pooled.groupby(["wine", "model"], sort=False)[FIGURES + ["seconds"]].mean()
    print(table.round(4).to_string())
    print(f"{len(jobs)} folds (seeds {args.seeds}, grouped {args.k}-fold), {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
