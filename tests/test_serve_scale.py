"""More than one process on one prediction log: `wine_serve --workers 2`, two servers on one PostgreSQL database, and
that database stopping or crashing under load. Real servers on 127.0.0.1, a real PostgreSQL (see pg.py)."""
import threading
import time
from collections import Counter

import httpx
import psycopg
import pytest
from conftest import serving

from wine_nb.predlog import read_log
from wine_nb.serve.inputs import TYPICAL_WINES

SECRET = "Alvarinho-2026"


def predict(client: httpx.Client, url: str, wine: str = "red") -> tuple:
    "(status, prediction_id or None) of one POST /predict."
    answer = client.post(f"{url}/predict", json=TYPICAL_WINES[wine])
    return answer.status_code, answer.json().get("prediction_id") if answer.status_code == 200 else None


def load(url: str, stop: threading.Event, results: list):
    "Send predictions back to back until `stop` is set; every (status, id) goes into `results`."
    with httpx.Client(timeout=20) as client:
        while not stop.is_set():
            try: results.append(predict(client, url))
            except httpx.TransportError as e: results.append((type(e).__name__, None))


def wait_for(condition, seconds: float, what: str):
    "Poll `condition()` until it is true; fail naming `what` after `seconds`."
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline: pytest.fail(f"{what} did not happen within {seconds} s")
        time.sleep(0.1)


def metric(exposition: str, name: str) -> float:
    "The value of a sample line of the Prometheus text format."
    return float(next(line.split()[-1] for line in exposition.splitlines() if line.startswith(name + " ")))


def test_two_workers_share_the_port_the_log_and_the_metrics(trained_run, tmp_path, monkeypatch):
    metrics_dir, db = tmp_path/"metrics", tmp_path/"predictions.sqlite"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    with serving(trained_run, "onnx", ("--workers", 2, "--log_db", db)) as url:
        def started() -> set: return {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("gauge_livemin_*.db")}
        wait_for(lambda: len(started()) == 2, 60, "both workers ready")
        results: list = []
        def send(n: int):  # a new connection for each request, so that both workers take some
            with httpx.Client(timeout=20, limits=httpx.Limits(max_keepalive_connections=0)) as client:
                results.extend(predict(client, url) for _ in range(n))
        threads = [threading.Thread(target=send, args=(40,)) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert Counter(status for status, _ in results) == {200: 320}
        workers = {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("counter_*.db")}
        assert len(workers) == 2, f"metrics of {len(workers)} worker processes: {sorted(metrics_dir.iterdir())}"
        for _ in range(4):  # whichever worker answers the scrape, it counts every process's requests
            exposition = httpx.get(f"{url}/metrics").text
            assert metric(exposition, 'wine_requests_total{method="POST",route="/predict",status="200"}') == 320
            assert metric(exposition, "wine_prediction_log_rows_total") == 320
            assert metric(exposition, "wine_service_ready") == 1
        assert httpx.get(f"{url}/drift", params={"last": 1000}).json()["window"]["rows"] == 320
    logged = read_log(db, last=None)
    assert sorted(logged.id) == sorted(i for _, i in results) and len(set(logged.id)) == 320


def test_two_servers_share_one_postgresql_log(trained_run, postgres):
    postgres.create_database("two_servers")
    db = postgres.url("two_servers", password=SECRET)
    replica = ("--log_db", db)
    with serving(trained_run, "onnx", replica) as first, serving(trained_run, "onnx", replica) as second, \
            httpx.Client(timeout=20) as client:
        answers = [predict(client, url, wine) for url in (first, second) for wine in ("red", "white") * 15]
        assert {status for status, _ in answers} == {200} and len({i for _, i in answers}) == 60
        for url in (first, second):  # either replica's drift report reads both replicas' predictions
            assert client.get(f"{url}/drift", params={"last": 1000}).json()["window"]["rows"] == 60
            health = client.get(f"{url}/health").text
            assert SECRET not in health and "two_servers" in health


@pytest.mark.parametrize("outage", ["restart", "kill -9"])
def test_the_database_going_away_under_load_gives_503s_then_recovery_and_loses_nothing(trained_run, postgres,
                                                                                          outage):
    name = "outage_" + outage.replace(" -", "").replace(" ", "_")
    postgres.create_database(name)
    db = postgres.url(name, password=SECRET)
    with serving(trained_run, "onnx", ("--log_db", db, "--log_level", "warning")) as url:
        results: list = []
        stop = threading.Event()
        threads = [threading.Thread(target=load, args=(url, stop, results)) for _ in range(3)]
        for t in threads: t.start()
        try:
            wait_for(lambda: len(results) > 200, 30, "200 predictions before the outage")
            if outage == "restart": postgres.stop("fast")
            else: postgres.kill9()
            before = len(results)
            wait_for(lambda: any(status == 503 for status, _ in results[before:]), 15, "a 503 during the outage")
            ready = httpx.get(f"{url}/health/ready", timeout=20)
            assert ready.status_code == 503 and SECRET not in ready.text, ready.text
            postgres.start()
            back = len(results)
            wait_for(lambda: sum(status == 200 for status, _ in results[back:]) > 50, 30, "recovery after the outage")
            assert httpx.get(f"{url}/health/ready", timeout=20).status_code == 200
        finally:
            stop.set()
            for t in threads: t.join()
    statuses = Counter(status for status, _ in results)
    assert set(statuses) == {200, 503}, statuses  # refused while the log was away, never a 500 or a dropped connection
    acknowledged = {i for status, i in results if status == 200}
    with psycopg.connect(postgres.url(name), connect_timeout=5) as connection:
        stored = {row[0] for row in connection.execute("SELECT id FROM predictions")}
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged predictions are missing from the log"
