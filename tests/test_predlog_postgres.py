"""The PostgreSQL store of the prediction log against a real server on 127.0.0.1 (see tests/pg.py): the same
DataFrame as the SQLite store, ids in the rows' order, a foreign table refused, no acknowledged row lost to kill -9 of
the postmaster, recovery without help, two replicas sharing one log, and `wine_drift --db postgresql://...`. Every URL
holds a password that the server ignores (trust authentication) and that no message may show."""
import itertools
import threading
import time
from decimal import Decimal

import numpy as np
import pandas as pd
import psycopg
import pytest
from conftest import console_script, free_port, run

from wine_nb.data import FEATURES, load_wine
from wine_nb.predict import load_model
from wine_nb.predlog import LOG_COLUMNS, PostgresLog, PredictionLog, PredictionLogError, SqliteLog, log_rows, read_log
from wine_nb.runs import open_run

SECRET = "s3cret-Vinho"
_names = itertools.count()


@pytest.fixture
def url(postgres) -> str:
    "A new database on the module's server, as a URL that holds a password."
    name = f"log_{next(_names)}"
    postgres.create_database(name)
    return postgres.url(name, password=SECRET)


@pytest.fixture(scope="module")
def rows() -> list:
    "Log rows of 60 real wines, red and white, from two models, each with its own timestamp."
    wines = load_wine().sample(60, random_state=0)
    proba = np.random.default_rng(0).dirichlet(np.ones(7), len(wines))
    batch = log_rows("model@a", wines[FEATURES].to_numpy(), (wines.wine == "red").to_numpy(), proba,
                     np.arange(3, 10), 0.25)
    return [(1.7e9 + i, "model@b" if i % 3 == 0 else "model@a", *row[2:]) for i, row in enumerate(batch)]


def test_the_same_rows_read_back_as_from_sqlite(url, rows, tmp_path):
    with PredictionLog(url) as shared, PredictionLog(tmp_path/"predictions.sqlite") as local:
        assert isinstance(shared, PostgresLog) and isinstance(local, SqliteLog)
        for batch in (rows[:1], rows[1:5], rows[5:]):  # one row, a small batch, the rest
            assert shared.record(batch) == local.record(batch)
        assert shared.status() == {**local.status(), "path": shared.path}
    assert shared.path == url.replace(SECRET, "***") and SECRET not in repr(shared)
    for model_id, last, wine in ((None, None, None), ("model@b", None, None), (None, 7, "red"),
                                 ("model@a", 1000, "white")):
        pd.testing.assert_frame_equal(read_log(url, model_id, last, wine), read_log(local.target, model_id, last, wine))
    assert list(read_log(url).columns) == LOG_COLUMNS and len(read_log(url, last=None)) == len(rows)


def test_ids_follow_the_order_of_the_rows(url, rows):
    many = [(float(i), *row[1:]) for i, row in enumerate(rows * 20)]  # 1,200 rows, told apart by their timestamp
    with PredictionLog(url) as log:
        first = log.record(many[:3])
        ids = log.record(many)
    assert len(ids) == len(many) and ids == sorted(set(ids)) and ids[0] > first[-1]
    stored = read_log(url, last=None).set_index("id").loc[ids]
    pd.testing.assert_frame_equal(stored, pd.DataFrame(many, columns=LOG_COLUMNS[1:], index=pd.Index(ids, name="id")))


def test_other_tables_are_fine_but_a_foreign_predictions_table_is_refused(url, rows):
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE invoices (id serial PRIMARY KEY, amount numeric)")
        connection.execute("CREATE SCHEMA legacy")
        connection.execute("CREATE TABLE legacy.predictions (id serial PRIMARY KEY, invoice text, amount numeric)")
        connection.execute("INSERT INTO legacy.predictions (invoice, amount) VALUES ('F-1', 12.5)")
    with PredictionLog(url) as log: assert log.record(rows[:2]) == [1, 2]  # beside another application's table
    with pytest.raises(PredictionLogError, match="is not a wine_nb prediction log") as refused:
        PredictionLog(url + "?options=-csearch_path%3Dlegacy")
    assert SECRET not in str(refused.value)
    with psycopg.connect(url) as connection:  # untouched
        assert connection.execute("SELECT * FROM legacy.predictions").fetchall() == [(1, "F-1", Decimal("12.5"))]


def test_no_acknowledged_row_is_lost_to_kill_9_and_the_log_heals(postgres, url, rows):
    with psycopg.connect(url, autocommit=True) as connection:  # a database tuned for speed: the log must not follow
        connection.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET synchronous_commit = off")
    log = PredictionLog(url, retry_after=0.5)
    acknowledged, failures, stop = [], [], threading.Event()

    def writer():
        for i in itertools.count():
            if stop.is_set(): return
            started = time.monotonic()
            try: acknowledged.extend(log.record(rows[i % 50:i % 50 + 1 + i % 4]))  # one to four rows a call
            except PredictionLogError as e:
                failures.append((time.monotonic() - started, str(e), log.status()))
                time.sleep(0.02)  # as a client would, instead of spinning

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.5)
        postgres.kill9()
        killed_at = len(acknowledged)
        time.sleep(3)  # the outage
        during = list(failures)
        postgres.start()
        restarted_at, deadline = len(acknowledged), time.monotonic() + 20
        while len(acknowledged) < restarted_at + 20 and time.monotonic() < deadline: time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
        log.close()
        if postgres.postmaster_pid() is None: postgres.start()
    assert killed_at > 20, "too few rows written before the kill to test anything"
    assert len(during) >= 3, "calls did not fail while the server was down"
    assert max(seconds for seconds, _, _ in during) < 3, "a call waited too long for a dead server"
    assert all("unreachable" in message and not status["ok"] for _, message, status in during), during[:3]
    assert all(SECRET not in message + str(status) for _, message, status in failures)
    assert len(acknowledged) >= restarted_at + 20, "the log did not heal after the restart"
    assert set(acknowledged) <= set(read_log(url, last=None).id), "an acknowledged row is missing"
    assert log.status()["ok"] and log.status()["failures"]["unreachable"] >= 1


def test_two_replicas_share_one_log(url, rows):
    replicas: list = [None, None]

    def start(k: int): replicas[k] = PredictionLog(url)

    starting = [threading.Thread(target=start, args=(k,)) for k in range(2)]  # both create the table, if missing
    for thread in starting: thread.start()
    for thread in starting: thread.join()
    assert all(replica is not None and replica.status()["ok"] for replica in replicas)
    ids: list = [[], []]

    def write(k: int):
        for i in range(40): ids[k].extend(replicas[k].record(rows[i:i + 1 + (i + k) % 3]))

    writers = [threading.Thread(target=write, args=(k,)) for k in range(2)]
    for thread in writers: thread.start()
    for thread in writers: thread.join()
    for replica, written in zip(replicas, ids, strict=True):
        status = replica.status()
        assert written == sorted(written) and status["ok"] and status["rows_written"] == len(written)
        replica.close()
    both = ids[0] + ids[1]
    assert len(set(both)) == len(both) and sorted(read_log(url, last=None).id) == sorted(both)


def test_a_log_started_without_its_server_heals_when_the_server_comes(postgres, url, rows):
    postgres.stop()
    try:
        started = time.monotonic()
        log = PredictionLog(url, retry_after=0.2)
        status = log.status()
        assert time.monotonic() - started < 3 and not status["ok"] and status["failures"] == {"unreachable": 1}
        with pytest.raises(PredictionLogError, match="unreachable"): log.record(rows[:1])  # within retry_after
        assert SECRET not in str(status) + str(log.status())
    finally: postgres.start()
    ids, deadline = None, time.monotonic() + 15
    while ids is None and time.monotonic() < deadline:
        try: ids = log.record(rows[:2])
        except PredictionLogError: time.sleep(0.1)
    log.close()
    assert ids == [1, 2] and log.status()["ok"]  # the table was created on the first connection


def test_wine_drift_reads_a_postgresql_log(postgres, url, trained_run, tmp_path):
    model, model_id = load_model(trained_run), open_run(trained_run).model_id
    wines = load_wine().sample(150, random_state=1)
    with PredictionLog(url) as log:
        log.record(log_rows(model_id, wines[FEATURES].to_numpy(), (wines.wine == "red").to_numpy(),
                            model.predict_proba(wines), model.classes, 0.3))
    drift = [console_script("wine_drift"), "--model", str(trained_run), "--out", str(tmp_path/"drift.md")]
    done = run([*drift, "--db", url, "--log_level", "debug"])
    assert done.returncode == 0, done.stderr
    assert f"(150 predictions of {model_id})" in done.stderr and "drift.md: verdict" in done.stderr
    assert f"150 predictions read from {url.replace(SECRET, '***')}" in done.stderr
    assert SECRET not in done.stderr + done.stdout + (tmp_path/"drift.md").read_text()
    gone = url.replace(f":{postgres.port}/", f":{free_port()}/")  # nothing listens there
    done = run([*drift, "--db", gone])
    assert done.returncode != 0 and "cannot read the prediction log at" in done.stderr and "unreachable" in done.stderr
    assert SECRET not in done.stderr
