"The benchmark as users run it: the papermill notebook and benchmarks/cortez.py, at a tiny size."
import sys

import pandas as pd
from conftest import ROOT, run


def test_benchmark_notebook_writes_results(tmp_path):
    out = tmp_path/"bench"; out.mkdir()
    result = run([sys.executable, "-m", "papermill", str(ROOT/"nbs"/"07_benchmark.ipynb"), str(out/"benchmark.ipynb"), "--cwd", str(ROOT/"nbs"),
                  "-p", "out_dir", str(out), "-p", "wines", "red", "-p", "models", "mean,mlp", "-p", "k", "3", "-p", "repeats", "2"])
    assert result.returncode == 0, result.stderr[-3000:]
    results = pd.read_csv(out/"results.csv")
    assert len(results) == 2 * 2 * 2 and set(results.protocol) == {"random", "grouped"} and set(results.model) == {"mean", "mlp"}
    assert results["acc_0.5"].between(0, 1).all()
    mean_rows = results[results.model == "mean"]
    assert (results[results.model == "mlp"]["mad"].mean() < mean_rows["mad"].mean()), "the MLP should beat the mean predictor"
    picks = results[results.model == "mlp"]["chosen"].str.split(",")
    assert all(len(p) == 3 and set(p) <= {"encoded", "plain"} for p in picks), "one recipe picked per fold, recorded in results.csv"
    assert mean_rows["chosen"].isna().all(), "models that pick nothing record nothing"
    table = (out/"results.md").read_text()
    assert table.startswith("| wine | protocol | model |") and "SVM (paper)" in table


def test_cortez_script_prints_the_mlp_accuracy_last(tmp_path):
    result = run([sys.executable, str(ROOT/"benchmarks"/"cortez.py"), "--repeats", "1", "--k", "3", "--models", "mean,mlp",
                  "--wines", "red", "--out", str(tmp_path/"cortez")])
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("MLP accuracy at T=0.5: red random 0.") and "red grouped 0." in last
    assert (tmp_path/"cortez"/"results.csv").exists()
