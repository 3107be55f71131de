"""Monitoring against the real service: the prediction log under kill -9, a full disk and a read-only volume;
drift from simulated traffic; `wine_drift`."""
import os
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import console_script, run, serving, start_server, stop

from wine_nb.data import FEATURES, load_wine, split_wines
from wine_nb.predict import load_model
from wine_nb.predlog import PredictionLog, log_rows, read_log
from wine_nb.runs import open_run
from wine_nb.serve.inputs import input_bounds
from wine_nb.train import TrainConfig, run_training


def as_json(wines: pd.DataFrame) -> list:
    return [{**{f: float(getattr(row, f)) for f in FEATURES}, "wine": row.wine} for row in wines.itertuples()]


def accepted(wines: pd.DataFrame, run_dir: Path) -> pd.DataFrame:
    "The wines a model's service accepts (each measurement within its bounds)."
    bounds = input_bounds(load_model(run_dir).metadata["feature_ranges"])
    return wines[np.logical_and.reduce([wines[f].between(lo, hi) for f, (lo, hi) in bounds.items()])]


@pytest.fixture(scope="module")
def test_wines(trained_run) -> pd.DataFrame:
    "The test wines of the served model's own split (the default split, seed 42), as the service accepts them."
    return accepted(split_wines(load_wine(), 0.15, 0.15, seed=42).test, trained_run)


def in_namespace(setup: str):
    "Wrap a command so it runs in its own user and mount namespace after the shell commands `setup` (mounts)."
    return lambda command: ["unshare", "-rm", "sh", "-c", f'{setup} && exec "$@"', "sh", *command]


def test_kill_9_under_load_loses_no_acknowledged_prediction(trained_run, test_wines, tmp_path):
    db = tmp_path/"predictions.sqlite"
    proc, url = start_server(trained_run, args=("--log_db", db))
    wines, acknowledged, stopping = as_json(test_wines.sample(200, random_state=0)), [], threading.Event()

    def client(offset: int):
        with httpx.Client(base_url=url, timeout=5) as http:
            for i in range(offset, 10**6):
                wine = wines[i % len(wines)]
                try: answer = http.post("/predict", json=wine)
                except httpx.TransportError: return
                if answer.status_code == 200:
                    acknowledged.append((answer.json()["prediction_id"], wine["alcohol"], answer.json()["quality"]))
                if stopping.is_set(): return

    threads = [threading.Thread(target=client, args=(k * 50,)) for k in range(4)]
    for t in threads: t.start()
    time.sleep(2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stopping.set()
    for t in threads: t.join(10)
    assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) > 200, "the load should have been answered for a while before the kill"
    logged = read_log(db, last=None).set_index("id")
    ids = [i for i, _, _ in acknowledged]
    assert len(set(ids)) == len(ids)
    missing = set(ids) - set(logged.index)
    assert not missing, f"{len(missing)} acknowledged predictions are not in the log"
    assert logged.loc[ids, "alcohol"].tolist() == [a for _, a, _ in acknowledged]
    assert logged.loc[ids, "quality"].tolist() == [q for _, _, q in acknowledged]
    with sqlite3.connect(db) as check: assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_full_disk_refuses_predictions_visibly_and_recovers(trained_run, tmp_path):
    "The log on a 512 KiB tmpfs with 256 KiB of ballast; predictions until the disk is full, then the ballast goes."
    volume = tmp_path/"volume"; volume.mkdir()
    setup = f"mount -t tmpfs -o size=512k tmpfs {volume} && head -c 262144 /dev/zero > {volume}/ballast"
    proc, url = start_server(trained_run, args=("--log_db", volume/"predictions.sqlite"), wrap=in_namespace(setup))
    try:
        wine, acknowledged = as_json(load_wine("red").head(1))[0], []
        with httpx.Client(base_url=url) as http:
            for _ in range(2000):
                answer = http.post("/predict", json=wine)
                if answer.status_code != 200: break
                acknowledged.append(answer.json()["prediction_id"])
            assert answer.status_code == 503 and "disk full" in answer.json()["detail"], answer.text
            health = http.get("/health").json()
            assert health["status"] == "degraded" and "disk full" in health["prediction_log"]["error"]
            metrics = http.get("/metrics").text
            assert "wine_prediction_log_up 0.0" in metrics
            assert 'wine_prediction_log_failures_total{reason="disk full"}' in metrics
            # the tmpfs, seen from outside its namespace
            inside = Path(f"/proc/{proc.pid}/root")/str(volume).lstrip("/")
            (inside/"ballast").unlink()
            time.sleep(1.1)  # past retry_after
            answer = http.post("/predict", json=wine)
            assert answer.status_code == 200, answer.text
            acknowledged.append(answer.json()["prediction_id"])
            assert http.get("/health").json()["status"] == "ready"
            copy = tmp_path/"copy"; copy.mkdir()  # SQLite resolves /proc/<pid>/root, so read a copy
            for name in ("predictions.sqlite", "predictions.sqlite-wal", "predictions.sqlite-shm"):
                shutil.copy(inside/name, copy/name)
        assert len(acknowledged) > 1 and set(acknowledged) <= set(read_log(copy/"predictions.sqlite", last=None).id)
    finally: stop(proc)


def test_read_only_volume_refuses_predictions_and_says_why(trained_run, tmp_path):
    volume = tmp_path/"volume"; volume.mkdir()
    create = (f"{console_script('python') or 'python'} -c "
              f"\"from wine_nb.predlog import PredictionLog; PredictionLog('{volume}/predictions.sqlite')\"")
    setup = f"mount -t tmpfs tmpfs {volume} && {create} && mount -o remount,ro {volume}"
    with serving(trained_run, args=("--log_db", volume/"predictions.sqlite"), wrap=in_namespace(setup)) as url:
        answer = httpx.post(f"{url}/predict", json=as_json(load_wine("red").head(1))[0])
        assert answer.status_code == 503, answer.text
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "degraded" and health["prediction_log"]["error"] in answer.json()["detail"]
        assert "read-only" in health["prediction_log"]["error"] or "readonly" in health["prediction_log"]["error"]
        assert "wine_prediction_log_up 0.0" in httpx.get(f"{url}/metrics").text
    best_effort = ("--log_db", volume/"best.sqlite", "--log_policy", "best_effort")
    with serving(trained_run, args=best_effort, wrap=in_namespace(setup)) as url:
        answer = httpx.post(f"{url}/predict", json=as_json(load_wine("red").head(1))[0])
        assert answer.status_code == 200 and answer.json()["prediction_id"] is None
        assert "wine_predictions_unlogged_total 1.0" in httpx.get(f"{url}/metrics").text


def drifted(url: str, wines: pd.DataFrame, **params) -> dict:
    "Send `wines` as one batch, then the drift report of the newest len(wines) predictions."
    assert httpx.post(f"{url}/predict/batch", json={"wines": as_json(wines)}).status_code == 200
    return httpx.get(f"{url}/drift", params={"last": len(wines), **params}).json()


def flagged(report: dict) -> set:
    return {row["feature"] for row in report["features"] if row["status"] == "drift"}


def test_drift_from_simulated_traffic(trained_run, test_wines, tmp_path):
    rng = np.random.default_rng(0)
    def window(): return test_wines.iloc[rng.choice(len(test_wines), 400, replace=False)]
    with serving(trained_run, args=("--log_db", tmp_path/"predictions.sqlite")) as url:
        assert httpx.get(f"{url}/drift").json()["verdict"] == "insufficient data"
        same = drifted(url, window())
        assert same["verdict"] == "ok" and flagged(same) == set(), same
        alcohol = drifted(url, window().assign(alcohol=lambda w: w.alcohol + 1))
        assert alcohol["verdict"] == "drift" and flagged(alcohol) == {"alcohol"}
        sulphates = drifted(url, window().assign(sulphates=lambda w: w.sulphates * 1.3))
        assert flagged(sulphates) == {"sulphates"} and sulphates["wine_mix"]["status"] == "ok"
        reds = drifted(url, test_wines.query("wine == 'red'").sample(150, random_state=1), wine="red")
        assert reds["verdict"] == "ok" and reds["reference_rows"] < same["reference_rows"]
        assert httpx.get(f"{url}/drift").json()["window"]["rows"] == 1000  # the default window, kept for /metrics
        metrics = httpx.get(f"{url}/metrics").text
        # the last 1,000 are 50 unchanged wines, 400 with more alcohol, 400 with more sulphates and 150 reds
        assert 'wine_drift_status{feature="sulphates"} 2.0' in metrics
        assert 'wine_drift_status{feature="alcohol"} 0.0' not in metrics
        assert 'wine_drift_status{feature="ph"} 0.0' in metrics and "wine_drift_verdict 2.0" in metrics
        assert httpx.get(f"{url}/drift", params={"wine": "rose"}).status_code == 422


def test_white_wines_sent_to_a_red_model_are_flagged(data_dir, tmp_path):
    red_run = run_training(TrainConfig(wine="red", epochs=5, wandb_mode="disabled"), data_dir, tmp_path/"red").run_dir
    whites = accepted(load_wine("white"), red_run).sample(400, random_state=0)
    with serving(red_run, args=("--log_db", tmp_path/"predictions.sqlite")) as url:
        report = drifted(url, whites)
    assert report["verdict"] == "drift" and report["wine_mix"]["status"] == "drift"
    assert report["wine_mix"]["reference"] == {"red": 1.0, "white": 0.0}
    assert report["wine_mix"]["window"]["white"] == 1.0
    expected = {"volatile_acidity", "residual_sugar", "chlorides", "free_sulfur_dioxide", "total_sulfur_dioxide"}
    assert expected <= flagged(report)


def test_drift_is_unavailable_without_a_log(trained_run):
    with serving(trained_run, args=("--log_db", "off")) as url:
        assert httpx.get(f"{url}/health").json()["prediction_log"] == {"enabled": False}
        answer = httpx.get(f"{url}/drift")
        assert answer.status_code == 503 and "log is off" in answer.json()["detail"]
        assert httpx.post(f"{url}/predict", json=as_json(load_wine("red").head(1))[0]).json()["prediction_id"] is None


def test_wine_drift_writes_reports_and_fails_on_drift(trained_run, test_wines, tmp_path):
    log, model = PredictionLog(tmp_path/"predictions.sqlite"), load_model(trained_run)
    shifted = test_wines.assign(sulphates=test_wines.sulphates * 1.3)
    model_id = open_run(trained_run).model_id
    log.record(log_rows(model_id, shifted[FEATURES].to_numpy(), (shifted.wine == "red").to_numpy(),
                        model.predict_proba(shifted), model.classes, 0.3))
    log.record(log_rows("someone-else@0", shifted[FEATURES].to_numpy()[:5], np.ones(5, bool),
                        model.predict_proba(shifted.head(5)), model.classes, 0.3))
    drift = [console_script("wine_drift"), "--db", str(log.path), "--model", str(trained_run)]
    done = run([*drift, "--out", str(tmp_path/"report.html")])
    assert done.returncode == 0, done.stderr
    assert f"verdict drift ({len(shifted)} predictions of {open_run(trained_run).model_id})" in done.stderr
    page = (tmp_path/"report.html").read_text()
    assert "<td>sulphates</td>" in page and "data:image/png;base64," in page
    assert run([*drift, "--out", str(tmp_path/"report.md"), "--fail_on", "drift"]).returncode == 3
    assert "| sulphates |" in (tmp_path/"report.md").read_text() and (tmp_path/"report.png").is_file()
    assert f"{len(shifted) + 5} predictions" in run([*drift, "--out", str(tmp_path/"all.md"), "--all_models"]).stderr
    for args, message in [(["--out", str(tmp_path/"r.txt")], "must end in .md or .html"),
                          (["--db", str(tmp_path/"none.sqlite"), "--out", str(tmp_path/"r.md")],
                           "no prediction log at"),
                          (["--fail_on", "panic"], "--fail_on must be 'warn' or 'drift'")]:
        done = run([console_script("wine_drift"), "--db", str(log.path), "--model", str(trained_run), *args])
        assert done.returncode != 0 and message in done.stderr, done.stderr
    assert not (tmp_path/"r.txt").exists()
