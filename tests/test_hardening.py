"""Hostile input at every boundary, against the real `wine_serve` on 127.0.0.1 and the real commands: refused cleanly,
never a 5xx or a traceback."""
import gzip
import hashlib
import json
import os
import pickle
import select
import shutil
import socket
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import orjson
import pytest
from conftest import console_script, run, serving, start_server, stop

from wine_nb.data import CSV_NAMES
from wine_nb.runs import BUNDLE_FILE, WEIGHTS_FILE, bundle_digest
from wine_nb.serve.inputs import TYPICAL_WINES

RED = TYPICAL_WINES["red"]


def post_streamed(url: str, path: str, total: int, chunk: int = 2**20, content_type: str = "application/json",
                  prefix: bytes = b"") -> int:
    "POST `prefix` and `total` bytes to `path`, `Transfer-Encoding: chunked` (no Content-Length), on a raw socket."
    address = urlparse(url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: {content_type}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        if prefix: sock.sendall(f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n")
        sent, piece = 0, f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n"
        try:
            while sent < total and not select.select([sock], [], [], 0)[0]:  # stop once the server answers
                sock.sendall(piece)
                sent += chunk
            if sent >= total: sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError): pass  # the server answered and closed: read its answer
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data: break
            answer += data
    return int(answer.split(b" ", 2)[1])


def rss_mb(pid: int) -> float:
    "Resident memory of a process, in MB."
    line = next(row for row in Path(f"/proc/{pid}/status").read_text().splitlines() if row.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def test_streamed_bodies_over_the_limit_are_413_and_memory_stays_flat(trained_run, tmp_path):
    proc, url = start_server(trained_run, args=("--log_db", tmp_path/"log.sqlite"))
    try:
        httpx.post(f"{url}/predict", json=RED)  # warm up
        before = rss_mb(proc.pid)
        assert post_streamed(url, "/predict/batch", 20 * 2**20) == 413
        assert post_streamed(url, "/predict", 100 * 2**20) == 413
        part = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
                b"Content-Type: text/csv\r\n\r\n")
        assert post_streamed(url, "/predict/batch/csv?wine=red", 40 * 2**20,
                             content_type="multipart/form-data; boundary=B", prefix=part) == 413
        grown = rss_mb(proc.pid) - before
        assert grown < 64, f"server memory grew by {grown:.0f} MB"
        assert httpx.post(f"{url}/predict", json=RED).status_code == 200  # still serving
    finally: stop(proc)


def test_a_quality_column_is_validated_not_copied(server, trained_run, data_dir, tmp_path):
    text = (data_dir/CSV_NAMES["red"]).read_text()
    half = tmp_path/"half.csv"
    half.write_text(text.replace(";5\n", ";5.5\n", 1))
    result = run([console_script("wine_predict"), str(half), str(tmp_path/"out.csv"), "--model", str(trained_run),
                  "--wine", "red"])
    assert result.returncode == 1 and "half.csv, column 'quality', row 1: 5.5 is not an integer" in result.stderr
    assert not (tmp_path/"out.csv").exists()
    eleven = text.replace(";5\n", ";11\n", 1)
    answer = httpx.post(f"{server}/predict/batch/csv", params={"wine": "red"}, files={"file": ("eleven.csv", eleven)})
    assert answer.status_code == 422 and "column 'quality', row 1: 11.0 is outside [0, 10]" in answer.json()["detail"]


def copy_run(trained_run: Path, folder: Path, change=None, weights: bytes|None = None) -> Path:
    "A copy of the trained run whose bundle `change` edits, with its checksums and digest made consistent again."
    shutil.copytree(trained_run, folder)
    meta = json.loads((folder/BUNDLE_FILE).read_text())
    if weights is not None: (folder/WEIGHTS_FILE).write_bytes(weights)
    if change: change(meta)
    if "weights" in meta: meta["weights"]["sha256"] = hashlib.sha256((folder/WEIGHTS_FILE).read_bytes()).hexdigest()
    meta["digest"] = bundle_digest(meta)
    (folder/BUNDLE_FILE).write_text(json.dumps(meta))
    return folder


def no_std(meta): meta["scaler"]["std"][0] = 0.0
def outside(meta): meta["weights"]["file"] = "../elsewhere/model.pt"
def relabelled(meta): meta["classes"] = meta["classes"][::-1]


@pytest.mark.parametrize("name,change,weights,message", [
    ("pickle", None, pickle.dumps({"weights": "a pickle, not a state_dict"}), "not the weights of the network"),
    ("no-weights", lambda m: m.pop("weights"), None, "'weights' must name a file inside the run folder"),
    ("std-zero", no_std, None, "finite, positive std"),
    ("relabelled", relabelled, None, "classes must be"),
    ("outside", outside, None, "must name a file inside the run folder"),
], ids=["pickle", "no-weights", "std-zero", "relabelled", "outside"])
def test_tampered_run_folders_are_refused_in_one_line(trained_run, tmp_path, name, change, weights, message):
    folder = copy_run(trained_run, tmp_path/name, change, weights)
    result = run([console_script("wine_serve"), "--model", str(folder), "--port", "1", "--log_db", "off"], timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"wine_serve: error: cannot serve {folder}: "), result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr and "weights_only=False" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_edits_to_bundle_json_are_noticed(trained_run, tmp_path):
    for name, edit in [("wider", lambda m: m["feature_ranges"]["alcohol"].__setitem__(1, 500.0)),
                       ("list", None)]:
        folder = tmp_path/name
        shutil.copytree(trained_run, folder)
        meta = json.loads((folder/BUNDLE_FILE).read_text())
        if edit: edit(meta)
        (folder/BUNDLE_FILE).write_text(json.dumps(meta if edit else [meta]))
        result = run([console_script("wine_serve"), "--model", str(folder), "--port", "1", "--log_db", "off"])
        expected = "does not match its digest" if edit else "bundle format None"
        assert result.returncode == 1 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_readiness_tells_the_truth(trained_run, tmp_path):
    log_db = tmp_path/"log.sqlite"
    with serving(trained_run, args=("--log_db", log_db)) as url:
        assert httpx.get(f"{url}/health/live").status_code == 200
        assert httpx.get(f"{url}/health/ready").status_code == 200
        locker = sqlite3.connect(log_db, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            assert httpx.post(f"{url}/predict", json=RED).status_code == 503
            ready = httpx.get(f"{url}/health/ready")
            assert ready.status_code == 503 and ready.json()["status"] == "degraded"
            assert httpx.get(f"{url}/health/live").status_code == 200
            assert httpx.get(f"{url}/health").json()["status"] == "degraded"
        finally: locker.execute("ROLLBACK"); locker.close()
        time.sleep(1.1)  # past the log's retry_after
        assert httpx.post(f"{url}/predict", json=RED).status_code == 200
        assert httpx.get(f"{url}/health/ready").status_code == 200


def test_the_dockerfile_checks_readiness():
    text = (Path(__file__).parents[1]/"docker"/"serve.Dockerfile").read_text()
    assert "/health/ready" in text


@pytest.mark.parametrize("kind", ["directory", "random bytes", "garbage after an SQLite header"])
def test_an_unusable_log_is_said_on_stderr_at_start(trained_run, tmp_path, kind):
    log_db = tmp_path/"log.sqlite"
    if kind == "directory": log_db.mkdir()
    elif kind == "random bytes": log_db.write_bytes(os.urandom(4096))
    else: log_db.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    proc, url = start_server(trained_run, args=("--log_db", log_db))
    try:
        assert httpx.post(f"{url}/predict", json=RED).status_code == 503
        assert httpx.get(f"{url}/health/ready").status_code == 503
    finally: stop(proc)
    assert "wine_serve: warning: the prediction log cannot be written" in proc.stderr.read()


def test_another_applications_database_and_unknown_schemes_are_refused(trained_run, tmp_path):
    other = tmp_path/"other.sqlite"
    with sqlite3.connect(other) as db: db.execute("CREATE TABLE invoices (id INTEGER)")
    result = run([console_script("wine_serve"), "--model", str(trained_run), "--port", "1", "--log_db", str(other)])
    assert result.returncode == 1 and "is not a wine_nb prediction log" in result.stderr, result.stderr
    with sqlite3.connect(other) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["invoices"]
    result = run([console_script("wine_serve"), "--model", str(trained_run), "--port", "1", "--log_db",
                  "mysql://wine:secret@localhost/wine"], cwd=tmp_path)
    assert result.returncode == 1 and "a postgresql:// URL or 'off', not 'mysql://wine:***@localhost/wine'" in \
        result.stderr, result.stderr
    assert "secret" not in result.stderr and not (tmp_path/"mysql:").exists()


def test_wine_train_refuses_unwritable_folders_and_infinite_settings(tmp_path):
    started = time.monotonic()
    result = run([console_script("wine_train"), "--out_dir", "/proc/wine_nb_run", "--epochs", "1"])
    assert result.returncode == 1 and "cannot write the run folder /proc/wine_nb_run" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and time.monotonic() - started < 60
    result = run([console_script("wine_train"), "--lr", "inf", "--out_dir", str(tmp_path/"inf")])
    assert result.returncode == 1 and "lr must be positive and finite (got inf)" in result.stderr, result.stderr
    assert not (tmp_path/"inf").exists()
    result = run([console_script("wine_train"), "--data_dir", str(tmp_path/"nowhere"),
                  "--out_dir", str(tmp_path/"run")])
    assert result.returncode == 1 and not (tmp_path/"run").exists(), result.stderr  # a failed run leaves no folder


def test_wine_predict_refuses_a_folder_as_output_and_unreadable_files(trained_run, data_dir, tmp_path):
    result = run([console_script("wine_predict"), str(data_dir/CSV_NAMES["red"]), str(tmp_path), "--model",
                  str(trained_run), "--wine", "red"])
    assert result.returncode == 1 and "is a folder" in result.stderr and "Traceback" not in result.stderr
    for name, content in [("empty.csv", b""), ("utf16.csv", (data_dir/CSV_NAMES["red"]).read_text().encode("utf-16"))]:
        (tmp_path/name).write_bytes(content)
        result = run([console_script("wine_predict"), str(tmp_path/name), str(tmp_path/"out.csv"), "--model",
                      str(trained_run), "--wine", "red"])
        assert result.returncode == 1 and f"{name}: " in result.stderr and "Traceback" not in result.stderr


def test_gzip_files_are_read_the_same_everywhere(server, trained_run, data_dir, tmp_path):
    packed = tmp_path/"red.csv.gz"
    packed.write_bytes(gzip.compress((data_dir/CSV_NAMES["red"]).read_bytes()))
    result = run([console_script("wine_predict"), str(packed), str(tmp_path/"out.csv"), "--model", str(trained_run),
                  "--wine", "red"])
    assert result.returncode == 0, result.stderr
    answer = httpx.post(f"{server}/predict/batch/csv", params={"wine": "red"},
                        files={"file": ("red.csv.gz", packed.read_bytes())})
    assert answer.status_code == 200 and answer.json()["n"] == 1599


def test_huge_echoes_content_types_and_duplicate_keys(server):
    huge = httpx.post(f"{server}/predict", json={**RED, "x" * 5_000_000: 1, "wine": "w" * 5_000_000})
    assert huge.status_code == 422 and len(huge.content) < 2000, len(huge.content)
    for headers in ({"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}, {}):
        for path in ("/predict", "/predict/batch"):
            body = orjson.dumps(RED if path == "/predict" else {"wines": [RED]})
            answer = httpx.post(f"{server}{path}", content=body, headers=headers)
            assert answer.status_code == 415, (path, headers, answer.status_code)
    twice = orjson.dumps(RED)[:-1] + b', "alcohol": 12.5}'
    answer = httpx.post(f"{server}/predict", content=twice, headers={"content-type": "application/json"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "alcohol"]
    assert "given more than once" in answer.json()["detail"][0]["msg"]
    answer = httpx.post(f"{server}/predict/batch", content=b'{"wines": [' + twice + b"]}",
                        headers={"content-type": "application/json"})
    assert answer.status_code == 422 and "given more than once" in answer.json()["detail"][0]["msg"]
