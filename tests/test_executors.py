"""The engines of the benchmark and of the local sweep: the same figures serially, in loky processes and on a real
Dask cluster on loopback, and the sweep's trials on Dask workers."""
import json
import logging
import os
import re
import sys

import dask
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, free_port
from distributed import Client, LocalCluster

from wine_nb.evaluate import mlp_predictor, predict_linear, predict_mean, run_benchmark
from wine_nb.tracking import run_local_sweep
from wine_nb.train import TrainConfig

SETUP = dict(wines=("red",), k=3, repeats=1)  # two parts: red under `random` and under `grouped`
TINY_MLP = TrainConfig(epochs=3, hidden="16", bins=4, heads=1, calibrate=False)
SWEEP_FILE = ROOT/"sweeps"/"mlp.yaml"


def where_it_ran():
    "A model function (a closure, so cloudpickle sends it by value) predicting the mean, its pick its process id."
    def predict(train, test, seed, protocol="random"):
        return np.full(len(test), train.quality.mean()), str(os.getpid())
    return predict


MODELS = {"mean": predict_mean, "linear": predict_linear, "mlp": mlp_predictor(TINY_MLP), "where": where_it_ran()}


@pytest.fixture(scope="module")
def cluster(data_dir):
    "Two worker processes of one thread each, on loopback, and a client that watches them; closed after the tests."
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as local, Client(local) as client:
        yield local.scheduler_address, client


def tasks_run(client) -> int:
    "How many tasks the cluster's workers have executed so far."
    return sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())


def figures(results: pd.DataFrame) -> pd.DataFrame:
    "The rows that must not depend on the engine: every model but `where`, without the time spent."
    return results[results.model != "where"].drop(columns="seconds").reset_index(drop=True)


def processes(results: pd.DataFrame) -> set:
    "The process ids the `where` model ran in."
    return {int(pid) for picks in results[results.model == "where"].chosen for pid in picks.split(",")}


def test_benchmark_gives_the_same_figures_serially_in_loky_processes_and_on_a_dask_cluster(cluster):
    scheduler, client = cluster
    serial = run_benchmark(MODELS, **SETUP)
    loky = run_benchmark(MODELS, **SETUP, executor="loky", workers=2)
    before = tasks_run(client)
    on_dask = run_benchmark(MODELS, **SETUP, executor="dask", scheduler=scheduler)
    assert tasks_run(client) - before == 2, "each (wine, protocol) part ran as one task on the cluster's workers"
    assert len(serial) == 2 * len(MODELS) and set(serial.protocol) == {"random", "grouped"}
    pd.testing.assert_frame_equal(figures(loky), figures(serial))
    pd.testing.assert_frame_equal(figures(on_dask), figures(serial))
    assert processes(serial) == {os.getpid()}
    assert os.getpid() not in processes(loky) and len(processes(loky)) <= 2
    assert processes(on_dask) <= set(client.run(os.getpid).values()), "the parts ran in the Dask worker processes"


def test_benchmark_bar_counts_the_parts_only_when_asked(capsys):
    run_benchmark({"mean": predict_mean}, **SETUP, progress=True)
    drawn = capsys.readouterr().err
    assert "benchmark parts" in drawn and "2/2" in drawn
    run_benchmark({"mean": predict_mean}, **SETUP)  # stderr is not a terminal here
    assert capsys.readouterr().err == ""


def test_dask_errors_say_what_to_do(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match=re.escape("needs the address of a dask.distributed scheduler")):
        run_benchmark(MODELS, **SETUP, executor="dask")
    unused = f"tcp://127.0.0.1:{free_port()}"
    silent = re.escape(f"no dask scheduler answers at {unused}")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):  # the default waits 30 s
        with pytest.raises(ConnectionError, match=silent):
            run_benchmark(MODELS, **SETUP, executor="dask", scheduler=unused)
        with pytest.raises(ConnectionError, match=silent):
            run_local_sweep(SWEEP_FILE, 1, tmp_path/"sweep", executor="dask", scheduler=unused)
    assert not (tmp_path/"sweep").exists(), "the sweep folder is written once the scheduler answers"
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask.distributed were not installed
    install = re.escape('pip install "dask[distributed]"')
    with pytest.raises(ImportError, match=install): run_benchmark(MODELS, **SETUP, executor="dask", scheduler=unused)
    with pytest.raises(ImportError, match=install):
        run_local_sweep(SWEEP_FILE, 1, tmp_path/"sweep", executor="dask", scheduler=unused)


def test_sweep_trials_run_on_dask_workers(cluster, tmp_path, caplog):
    scheduler, client = cluster
    before = tasks_run(client)
    with caplog.at_level(logging.INFO, logger="wine_nb.tracking"):
        table, failures = run_local_sweep(SWEEP_FILE, 2, tmp_path/"sweep", seed=3, executor="dask", scheduler=scheduler,
                                          fixed=dict(epochs=1, wine="red", wandb_mode="disabled"))
    assert failures == {}
    assert tasks_run(client) - before == 2, "each trial ran as one task on the cluster's workers"
    assert sorted(table.run) == ["trial-000", "trial-001"] and set(table.epochs) == {1}
    trials = json.loads((tmp_path/"sweep"/"sweep.json").read_text())["trials"]
    assert sorted(table.lr) == sorted(t["lr"] for t in trials)
    finished = sorted(r.getMessage().split()[0] for r in caplog.records if " finished (" in r.getMessage())
    assert finished == ["trial-000", "trial-001"], "one log line per finished trial"
