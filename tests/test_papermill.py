"The training notebook run by papermill, as a user runs an experiment: -p values reach the run folder and W&B."
import json
import sys
from dataclasses import fields

import nbformat
import pytest
from conftest import ROOT, run

from wine_nb.predict import load_model
from wine_nb.tracking import read_offline_run
from wine_nb.train import TrainConfig

NOTEBOOK = ROOT/"nbs"/"03_training.ipynb"


def papermill(out_dir, *params, cwd=ROOT):
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "papermill", str(NOTEBOOK), str(out_dir/"training.ipynb"), "--cwd", str(cwd),
            "-p", "out_dir", str(out_dir)]
    for name, value in params: args += ["-p", name, str(value)]
    return run(args)


def test_notebook_has_one_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assigned = [line.split("=")[0].strip() for line in tagged[0].source.splitlines() if "=" in line]
    # every setting, in the config's order
    assert assigned == [f.name for f in fields(TrainConfig)] + ["out_dir", "data_dir"]


def test_papermill_run_writes_the_run_folder_with_the_given_parameters(tmp_path, data_dir):
    out = tmp_path/"lr-run"
    result = papermill(out, ("lr", 0.0123), ("epochs", 3), ("hidden", "24,12"), ("seed", 5), ("wine", "white"),
                       ("wandb_mode", "offline"), ("data_dir", data_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((out/"bundle.json").read_text())["config"]
    assert (config["lr"], config["epochs"], config["hidden"], config["seed"], config["wine"], config["wandb_mode"]) == \
           (0.0123, 3, "24,12", 5, "white", "offline")
    expected = {"model.pt", "bundle.json", "learning_curves.png", "confusion_matrix.png", "reliability.png",
                "training.ipynb"}
    assert expected <= {p.name for p in out.iterdir()}
    executed = nbformat.read(out/"training.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "lr = 0.0123" in injected[0].source
    assert any(o.get("data", {}).get("image/png") for c in executed.cells for o in c.get("outputs", []))
    predictor = load_model(out)
    assert predictor.metadata["metrics"]["test"]["n"] > 0


def test_offline_wandb_run_records_config_metrics_plots_and_model_artifact(tmp_path, data_dir):
    out = tmp_path/"tracked"
    result = papermill(out, ("lr", 0.005), ("epochs", 2), ("wine", "red"), ("wandb_mode", "offline"),
                       ("data_dir", data_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    recorded = read_offline_run(out)
    bundle = json.loads((out/"bundle.json").read_text())
    assert recorded["config"]["lr"] == 0.005 and recorded["config"]["wine"] == "red"
    assert recorded["summary"]["test/accuracy"] == pytest.approx(bundle["metrics"]["test"]["accuracy"])
    assert {"epoch/train_loss", "epoch/valid_loss", "epoch/valid_accuracy"} <= recorded["history_keys"]
    assert any(k.startswith("learning_curves") for k in recorded["history_keys"])
    [artifact] = recorded["artifacts"]
    assert (artifact["type"], artifact["name"]) == ("model", "wine-mlp-red")
    assert artifact["files"] == ["bundle.json", "model.onnx", "model.pt"]
    assert artifact["metadata"]["config"]["lr"] == 0.005
    assert artifact["metadata"]["metrics"]["test"] == bundle["metrics"]["test"]
    assert json.loads((out/"wandb_run.json").read_text())["mode"] == "offline"


def test_papermill_from_another_folder_and_default_run_folder(tmp_path, data_dir, monkeypatch):
    runs = tmp_path/"runs"
    monkeypatch.setenv("WINE_NB_RUNS_DIR", str(runs))
    executed = tmp_path/"executed.ipynb"
    args = [sys.executable, "-m", "papermill", str(NOTEBOOK), str(executed), "--cwd", str(tmp_path),
            "-p", "epochs", "2", "-p", "wine", "red", "-p", "wandb_mode", "disabled", "-p", "data_dir", str(data_dir)]
    result = run(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [run_dir] = list(runs.iterdir())
    assert run_dir.name.startswith("red-grouped-") and (run_dir/"bundle.json").exists()


def test_bad_parameter_fails_before_writing(tmp_path, data_dir):
    out = tmp_path/"bad"
    result = papermill(out, ("wine", "rose"), ("data_dir", data_dir))
    assert result.returncode != 0
    assert "wine must be 'red', 'white' or 'both'" in result.stderr + result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["training.ipynb"]


def test_a_parameter_of_the_wrong_type_is_named(tmp_path, data_dir):
    result = papermill(tmp_path/"typed", ("lr", "abc"), ("epochs", "2.5"), ("data_dir", data_dir))
    assert result.returncode != 0
    assert "lr must be float, not 'abc' (str); epochs must be int, not 2.5 (float)" in result.stderr + result.stdout
