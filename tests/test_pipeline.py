"""The DVC pipeline as a user runs it, in a fresh git clone: repro, status, what a change reruns, experiments, push
and pull."""
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, console_script, run

from wine_nb.train import TrainConfig

STAGES = {"data", "train", "evaluate", "check"}
CLONE_PARAMS = {"epochs": 10}  # the clone's params.yaml: the shipped one with these values
CLONE_EVALUATE = {"wines": "red", "protocols": "grouped", "models": "mean,mlp_served", "k": 2}  # its evaluate.yaml


def test_params_yaml_is_the_training_config():
    "params.yaml is what papermill gives the training notebook: every TrainConfig field, at TrainConfig's default."
    assert yaml.safe_load((ROOT/"params.yaml").read_text()) == asdict(TrainConfig())


def test_named_configs_are_valid_training_settings():
    for path in (ROOT/"configs").glob("*.yaml"):
        if path.name == "evaluate.yaml": continue
        TrainConfig(**yaml.safe_load(path.read_text()))


def dvc(clone, *args):
    "Run dvc in the clone, with this environment's commands (wine_data, papermill, wine_predict) on the PATH."
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    result = run([console_script("dvc"), *args], cwd=clone, env={"PATH": path, "WANDB_MODE": "disabled"})
    assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def changed_stages(clone) -> set:
    "Stages `dvc status` reports as changed."
    return {name.split(":")[-1] for name in json.loads(dvc(clone, "status", "--json"))}


def ran(output: str) -> set:
    "Stages `dvc repro` ran, from its output."
    return {stage for stage in STAGES if f"Running stage '{stage}'" in output}


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    "A fresh git repository holding the project's files as a clone would (tracked and new files, nothing ignored)."
    folder = tmp_path_factory.mktemp("pipeline")/"wine_nb"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT/name).is_file():
            (folder/name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT/name, folder/name)
    # The DVC mechanics are under test here, so the clone asks for a short run and a small benchmark. The shipped
    # params.yaml is checked above to be TrainConfig's defaults, which README's quickstart trains with; the benchmark
    # notebook has tests of its own (test_evaluate.py).
    params = yaml.safe_load((folder/"params.yaml").read_text())
    (folder/"params.yaml").write_text(yaml.safe_dump({**params, **CLONE_PARAMS}, sort_keys=False))
    evaluate = yaml.safe_load((folder/"configs"/"evaluate.yaml").read_text())
    (folder/"configs"/"evaluate.yaml").write_text(yaml.safe_dump({**evaluate, **CLONE_EVALUATE}, sort_keys=False))
    git = ["git", "-c", "user.name=wine_nb tests", "-c", "user.email=tests@wine-nb.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "a fresh clone"]):
        subprocess.run(git + args, cwd=folder, check=True, capture_output=True)
    dvc(folder, "remote", "modify", "--local", "storage", "url", str(folder.parent/"storage"))
    return folder


@pytest.fixture(scope="module")
def reproduced(clone):
    "`dvc repro` on the fresh clone with the shipped params; its output."
    return dvc(clone, "repro")


def test_repro_on_a_fresh_clone_runs_every_stage_then_status_is_clean(clone, reproduced):
    assert ran(reproduced) == STAGES
    assert changed_stages(clone) == set()
    metrics = json.loads((clone/"metrics"/"train.json").read_text())
    assert 0.4 < metrics["network"]["test"]["accuracy"] < 0.8 and "forest" in metrics
    config = json.loads((clone/"runs"/"pipeline"/"bundle.json").read_text())["config"]
    # the clone's params.yaml; its wandb_mode 'auto' resolved from $WANDB_MODE
    assert config == {**asdict(TrainConfig()), **CLONE_PARAMS, "wandb_mode": "disabled"}
    assert (clone/"runs"/"pipeline-check"/"scored-red.csv").stat().st_size > 0
    summary = json.loads((clone/"metrics"/"evaluate.json").read_text())
    assert 0.4 < summary["red"]["grouped"]["mlp_served"]["acc_0.5"] < 0.8


def test_a_parameter_change_reruns_training_and_the_check_only(clone, reproduced):
    params = yaml.safe_load((clone/"params.yaml").read_text())
    (clone/"params.yaml").write_text(yaml.safe_dump({**params, "epochs": 3}, sort_keys=False))
    assert changed_stages(clone) == {"train"}  # the check sees the new run once training has written it
    assert ran(dvc(clone, "repro")) == {"train", "check"}
    assert json.loads((clone/"runs"/"pipeline"/"bundle.json").read_text())["config"]["epochs"] == 3
    assert changed_stages(clone) == set()


def test_an_evaluation_setting_reruns_the_evaluation_only(clone, reproduced):
    settings = yaml.safe_load((clone/"configs"/"evaluate.yaml").read_text())
    changed = {**settings, "models": "mean,linear", "k": 3}
    (clone/"configs"/"evaluate.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    assert changed_stages(clone) == {"evaluate"}
    assert ran(dvc(clone, "repro")) == {"evaluate"}
    summary = json.loads((clone/"runs"/"pipeline-benchmark"/"summary.json").read_text())
    assert set(summary["red"]["grouped"]) == {"mean", "linear"}
    assert changed_stages(clone) == set()


def test_a_data_change_reruns_every_stage_that_reads_the_data(clone, reproduced):
    red = clone/"data"/"wine-quality"/"winequality-red.csv"
    red.write_text("".join(red.read_text().splitlines(keepends=True)[:-1]))  # a new version of the data: one wine fewer
    dvc(clone, "commit", "--force", "data")  # accept it as the data stage's output
    assert changed_stages(clone) == {"train", "evaluate", "check"}
    assert ran(dvc(clone, "repro")) == {"train", "evaluate", "check"}
    assert json.loads((clone/"runs"/"pipeline"/"bundle.json").read_text())["data"]["sha256"]["winequality-red.csv"] != \
        "4a402cf041b025d4566d954c3b9ba8635a3a8a01e039005d97d6a710278cf05e"
    assert changed_stages(clone) == set()


def test_an_experiment_is_listed_with_its_metrics(clone, reproduced):
    dvc(clone, "exp", "run", "-S", "epochs=2", "-n", "two-epochs")
    shown = json.loads(dvc(clone, "exp", "show", "--json"))
    experiments = [e for commit in shown for e in (commit.get("experiments") or []) for e in e.get("revs", [])]
    [exp] = [e for e in experiments if e.get("name") == "two-epochs"]
    data = exp["data"]
    assert data["params"]["params.yaml"]["data"]["epochs"] == 2
    assert data["metrics"]["metrics/train.json"]["data"]["network"]["test"]["n"] > 0


def test_push_and_pull_through_the_local_remote(clone, reproduced):
    dvc(clone, "push")
    shutil.rmtree(clone/".dvc"/"cache")
    (clone/"runs"/"pipeline"/"model.pt").unlink()
    shutil.rmtree(clone/"data")
    dvc(clone, "pull")
    assert (clone/"runs"/"pipeline"/"model.pt").exists()
    assert (clone/"data"/"wine-quality"/"winequality-white.csv").exists()
    assert changed_stages(clone) == set()
