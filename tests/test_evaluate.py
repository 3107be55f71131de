"The benchmark as users run it: the papermill notebook and benchmarks/cortez.py, at a tiny size."
import ast
import sys

import nbformat
import pandas as pd
from conftest import ROOT, run

NOTEBOOK = ROOT/"nbs"/"07_benchmark.ipynb"


def test_benchmark_notebook_keeps_no_run_parameters():
    "One parameters cell with CI-sized defaults, none injected by papermill, and no other cell re-assigns them."
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and not [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])]
    defaults = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(tagged[0].source).body}
    assert defaults["repeats"] == 1 and defaults["levers"] == "" and defaults["out_dir"] == ""
    engine = {name: defaults[name] for name in ("executor", "workers", "scheduler", "progress")}
    assert engine == dict(executor="serial", workers=1, scheduler="", progress=False), "CI runs serially, quietly"
    code = [ast.parse(c.source) for c in cells if c.cell_type == "code" and c is not tagged[0]]
    assigned = {t.id for tree in code for node in ast.walk(tree) if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert not assigned & set(defaults), f"cells re-assign parameters: {assigned & set(defaults)}"


def test_benchmark_notebook_writes_results(tmp_path):
    out = tmp_path/"bench"
    out.mkdir()
    result = run([sys.executable, "-m", "papermill", str(NOTEBOOK), str(out/"benchmark.ipynb"),
                  "--cwd", str(ROOT/"nbs"), "-p", "out_dir", str(out), "-p", "wines", "red", "-p", "models", "mean,mlp",
                  "-p", "k", "3", "-p", "repeats", "2"])
    assert result.returncode == 0, result.stderr[-3000:]
    results = pd.read_csv(out/"results.csv")
    assert len(results) == 2 * 2 * 2 and set(results.protocol) == {"random", "grouped"}
    assert set(results.model) == {"mean", "mlp"}
    assert results["acc_0.5"].between(0, 1).all()
    mean_rows = results[results.model == "mean"]
    assert (results[results.model == "mlp"]["mad"].mean() < mean_rows["mad"].mean()), "the MLP should beat the mean"
    picks = results[results.model == "mlp"]["chosen"].str.split(",")
    assert all(len(p) == 3 and set(p) <= {"encoded", "plain"} for p in picks), "one pick per fold, in results.csv"
    assert mean_rows["chosen"].isna().all(), "models that pick nothing record nothing"
    table = (out/"results.md").read_text()
    assert table.startswith("| wine | protocol | model |") and "SVM (paper)" in table


def test_benchmark_notebook_names_its_models_on_a_typo(tmp_path):
    result = run([sys.executable, "-m", "papermill", str(NOTEBOOK), str(tmp_path/"benchmark.ipynb"),
                  "--cwd", str(ROOT/"nbs"), "-p", "out_dir", str(tmp_path), "-p", "models", "mean,mpl"])
    assert result.returncode != 0
    assert "unknown models ['mpl']" in result.stderr and "rf_classifier" in result.stderr
    assert not (tmp_path/"results.csv").exists()


def test_cortez_script_runs_the_notebook_and_prints_the_mlp_accuracy_last(tmp_path):
    "In two loky processes, with the parts' bar asked for: it reaches the script's stderr from the notebook's kernel."
    result = run([sys.executable, str(ROOT/"benchmarks"/"cortez.py"), "--repeats", "1", "--k", "3",
                  "--models", "mean,mlp", "--wines", "red", "--out", str(tmp_path/"cortez"),
                  "--executor", "loky", "--workers", "2", "--progress"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "benchmark parts" in result.stderr and "2/2" in result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("| wine | protocol | model |")
    assert any(line.startswith("| red | grouped | mlp |") for line in lines)
    assert lines[-1].startswith("MLP accuracy at T=0.5: red random 0.") and "red grouped 0." in lines[-1]
    executed = nbformat.read(tmp_path/"cortez"/"benchmark.ipynb", as_version=4)
    parameters = executed.metadata.papermill.parameters
    assert (parameters["models"], parameters["executor"], parameters["workers"]) == ("mean,mlp", "loky", 2), \
        "the options reach the notebook"
    assert len(pd.read_csv(tmp_path/"cortez"/"results.csv")) == 2 * 2


def test_cortez_script_refuses_a_run_without_the_mlp_or_a_dask_run_without_a_scheduler(tmp_path):
    script = str(ROOT/"benchmarks"/"cortez.py")
    result = run([sys.executable, script, "--models", "mean,linear", "--out", str(tmp_path)])
    assert result.returncode == 2 and "--models must include mlp" in result.stderr
    no_scheduler = run([sys.executable, script, "--executor", "dask", "--out", str(tmp_path)])
    assert no_scheduler.returncode == 2 and "needs the address of a dask.distributed scheduler" in no_scheduler.stderr
    assert not list(tmp_path.iterdir()), "nothing is written before the options are checked"
