"Tracking as users meet it: offline W&B with no network, sweeps, the registry and its error cases, interrupted runs."
import json
import shutil
import signal
import subprocess
import time

import pytest
from conftest import ROOT, console_script, run

from wine_nb.predict import load_model
from wine_nb.runs import list_runs, read_registry, resolve_alias
from wine_nb.tracking import read_offline_run


def train(out, *extra):
    return run([console_script("wine_train"), "--wine", "red", "--epochs", "3", "--out_dir", str(out), *extra])


@pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("ip") is None,
                    reason="needs unshare and ip (util-linux, iproute2)")
def test_offline_run_needs_no_network(tmp_path):
    """In a network namespace with only loopback, an offline W&B run finishes and records config, metrics and the
    artifact."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0: pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    out = tmp_path/"offline"
    command = (f"ip link set lo up && exec {console_script('wine_train')} --wine red --epochs 3 --wandb_mode offline "
               f"--out_dir {out}")
    result = run(["unshare", "-n", "sh", "-c", command], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    recorded = read_offline_run(out)
    bundle = json.loads((out/"bundle.json").read_text())
    assert recorded["config"]["wandb_mode"] == "offline" and recorded["config"]["epochs"] == 3
    assert recorded["summary"]["valid/accuracy"] == pytest.approx(bundle["metrics"]["valid"]["accuracy"])
    assert [a["type"] for a in recorded["artifacts"]] == ["model"]


def test_online_without_a_key_stops_before_training(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    result = train(tmp_path/"run", "--wandb_mode", "online")
    assert result.returncode != 0 and "WANDB_API_KEY" in result.stderr
    assert not (tmp_path/"run").exists()


def test_sweep_of_four_runs_promotes_the_best_by_validation(tmp_path):
    out = tmp_path/"runs"/"sweeps"/"tiny"
    result = run([console_script("wine_sweep"), "--n_runs", "4", "--epochs", "2", "--wine", "red",
                  "--wandb_mode", "disabled", "--seed", "3", "--out_dir", str(out), "--promote_to", "staging"],
                 env={"WINE_NB_RUNS_DIR": str(tmp_path/"runs")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 trials finished, 0 failed" in result.stdout
    finished = sorted(line.split()[1] for line in result.stderr.splitlines() if " finished (" in line)
    assert finished == [f"trial-{i:03d}" for i in range(4)], "a log line per finished trial, on stderr"
    table = list_runs(out)
    assert len(table) == 4 and set(table.epochs) == {2}
    trials = json.loads((out/"sweep.json").read_text())["trials"]
    assert sorted(table.lr) == sorted(t["lr"] for t in trials)
    best = table.loc[table.valid_accuracy.idxmax()]
    assert resolve_alias("staging", tmp_path/"runs") == best.path
    assert load_model("staging", tmp_path/"runs").metadata["metrics"]["valid"]["accuracy"] == best.valid_accuracy


def test_sweep_cli_checks_where_trials_run_before_writing(tmp_path):
    out = tmp_path/"sweep"
    result = run([console_script("wine_sweep"), "--n_runs", "2", "--executor", "dask", "--out_dir", str(out)])
    assert result.returncode != 0 and "wine_sweep: error: executor 'dask' needs the address" in result.stderr
    quiet = run([console_script("wine_sweep"), "--n_runs", "2", "--log_level", "loud", "--out_dir", str(out)])
    assert quiet.returncode != 0 and "--log_level must be one of" in quiet.stderr
    assert not out.exists(), "nothing is written before the options are checked"


def test_promote_cli_and_its_errors(tmp_path):
    runs = tmp_path/"runs"
    assert train(runs/"a", "--wandb_mode", "disabled").returncode == 0
    def promote(*args): return run([console_script("wine_promote"), *args, "--runs_dir", str(runs)])
    ok = promote("a", "production")
    assert ok.returncode == 0 and "production → a" in ok.stdout
    twice = promote("a", "production")
    assert twice.returncode != 0 and "already 'production'" in twice.stderr
    missing = promote("b", "production")
    assert missing.returncode != 0 and "no run 'b'" in missing.stderr
    assert read_registry(runs)["aliases"]["production"]["run"] == "a"
    listing = run([console_script("wine_runs"), "--runs_dir", str(runs)])
    assert listing.returncode == 0 and "production → a" in listing.stdout


def test_interrupted_run_is_never_promotable(tmp_path):
    "A training process killed mid-run leaves a folder without bundle.json: not listed, not promotable."
    runs = tmp_path/"runs"
    process = subprocess.Popen([console_script("wine_train"), "--epochs", "500", "--patience", "500",
                                "--wandb_mode", "disabled", "--out_dir", str(runs/"killed")],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (runs/"killed").exists() and time.monotonic() < deadline and process.poll() is None: time.sleep(0.1)
        assert (runs/"killed").exists(), "the run folder should appear once training starts"
        time.sleep(1)
    finally:
        process.send_signal(signal.SIGKILL); process.wait()
    assert not (runs/"killed"/"bundle.json").exists()
    assert list_runs(runs).empty
    result = run([console_script("wine_promote"), "killed", "production", "--runs_dir", str(runs)])
    assert result.returncode != 0 and "did not finish" in result.stderr
