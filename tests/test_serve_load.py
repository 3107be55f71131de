"""The service under generated inputs (schemathesis, from its own OpenAPI schema) and under load (locust), on
127.0.0.1."""
import csv

import httpx
from conftest import ROOT, console_script, run

LOCUST_USERS, LOCUST_SECONDS = 20, 20


def test_schemathesis_finds_no_server_error(server):
    """Every operation of /openapi.json, ~50 generated cases each (coverage and fuzzing phases): no 5xx, whatever the
    input."""
    result = run([console_script("schemathesis"), "run", f"{server}/openapi.json", "--checks", "not_a_server_error",
                  "--max-examples", "50", "--seed", "1", "--generation-database", "none", "--no-color"], timeout=300)
    summary = result.stdout[result.stdout.rfind("SUMMARY"):]
    print(summary)
    assert result.returncode == 0, result.stdout[-4000:]
    operations = sum(len(methods) for methods in httpx.get(f"{server}/openapi.json").json()["paths"].values())
    # /predict, its batch and CSV routes, /model, /health and its live and ready probes, /drift, /metrics
    assert operations == 9
    assert f"Tested: {operations}" in summary and " passed" in summary and "failure" not in summary.lower()


def test_locust_load_has_no_failed_request(server, tmp_path):
    result = run([console_script("locust"), "-f", str(ROOT/"tests"/"locustfile.py"), "--headless",
                  "--users", str(LOCUST_USERS), "--spawn-rate", "10", "--run-time", f"{LOCUST_SECONDS}s",
                  "--host", server, "--csv", str(tmp_path/"load"), "--only-summary", "--loglevel", "WARNING"],
                 timeout=120)
    with open(tmp_path/"load_stats.csv") as stats: rows = {row["Name"]: row for row in csv.DictReader(stats)}
    total = rows["Aggregated"]
    print(f"locust, {LOCUST_USERS} users for {LOCUST_SECONDS} s: {int(total['Request Count'])} requests, "
          f"{float(total['Requests/s']):.0f} req/s, p50 {total['50%']} ms, p95 {total['95%']} ms, "
          f"{total['Failure Count']} failures")
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(total["Request Count"]) > 100 and int(total["Failure Count"]) == 0
    assert {"/predict", "/predict/batch", "/health", "/model"} <= set(rows)
