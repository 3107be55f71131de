"""The deployment configuration (deploy/, docker-compose.yaml), checked offline by the real tools: promtool for the
Prometheus rules, their unit tests and the config, check-jsonschema for Compose, amtool for Alertmanager; and
read, to keep the alerts tested, on metrics the service exposes, and the pieces pointing at each other."""
import re
import shutil

import pytest
import yaml
from conftest import ROOT, console_script, run

PROMETHEUS = ROOT/"deploy"/"prometheus"
ALERTS, ALERT_TESTS, CONFIG = PROMETHEUS/"alerts.yml", PROMETHEUS/"alerts_test.yml", PROMETHEUS/"prometheus.yml"
ALERTMANAGER, COMPOSE = ROOT/"deploy"/"alertmanager.yml", ROOT/"docker-compose.yaml"

# What wine_serve exposes on /metrics (wine_nb/serve/metrics.py), as the names appear in the exposition.
SERVICE_METRICS = {
    "wine_requests_total", "wine_request_duration_seconds_bucket", "wine_request_duration_seconds_sum",
    "wine_request_duration_seconds_count", "wine_prediction_log_up", "wine_prediction_log_failures_total",
    "wine_predictions_refused_total", "wine_service_ready", "wine_drift_verdict",
}


def promtool() -> str:
    "Path of promtool; missing, the test fails (it is not skipped: CI installs the Debian package `prometheus`)."
    path = shutil.which("promtool")
    if path is None: pytest.fail("promtool is not installed: apt-get install prometheus (it checks deploy/prometheus)")
    return path


def alert_rules() -> dict:
    "The alerting rules of alerts.yml, by alert name."
    return {rule["alert"]: rule for group in yaml.safe_load(ALERTS.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule}


def alert_cases() -> list:
    "Every `alert_rule_test` case of alerts_test.yml."
    return [case for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def replicas() -> dict:
    "The Compose services built from the serving image, by name."
    return {name: service for name, service in compose_services().items()
            if service.get("build", {}).get("dockerfile") == "docker/serve.Dockerfile"}


def broken_copy(tmp_path, source, old: str, new: str):
    "A copy of `source`'s folder in tmp_path with `old` replaced by `new` in `source`; the copied file's path."
    folder = shutil.copytree(source.parent, tmp_path/source.parent.name)
    copy = folder/source.name
    text = copy.read_text()
    assert old in text, f"{source.name} no longer contains {old!r}: update this test's deliberate breakage"
    copy.write_text(text.replace(old, new, 1))
    return copy


def test_alert_rules_are_valid():
    "promtool accepts the rules file (PromQL parses, templates compile)."
    result = run([promtool(), "check", "rules", "deploy/prometheus/alerts.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass():
    "Every case of alerts_test.yml: each alert fires with the expected labels and annotations, and only then."
    result = run([promtool(), "test", "rules", "deploy/prometheus/alerts_test.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_is_valid():
    "promtool accepts prometheus.yml, including the rule file it loads."
    result = run([promtool(), "check", "config", "deploy/prometheus/prometheus.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_matches_the_compose_schema():
    result = run([console_script("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("source,old,new,command", [
    (ALERT_TESTS, "severity: critical", "severity: page", ["test", "rules"]),
    (ALERTS, "wine_prediction_log_up{", "wine_prediction_log_up{{", ["check", "rules"]),
    (CONFIG, "- alerts.yml", "- missing_alerts.yml", ["check", "config"]),
])
def test_promtool_reports_a_broken_copy(tmp_path, source, old, new, command):
    "Each promtool check can fail: a wrong expectation, a PromQL syntax error, a missing rule file all exit non-zero."
    result = run([promtool(), *command, str(broken_copy(tmp_path, source, old, new))])
    assert result.returncode != 0, result.stdout + result.stderr


def test_compose_schema_check_reports_an_invalid_file(tmp_path):
    "The schema check can fail: a replica whose published port is a list is rejected."
    broken = tmp_path/"docker-compose.yaml"
    broken.write_text(COMPOSE.read_text().replace('- "8001:8000"', "- {published: [8001]}", 1))
    assert broken.read_text() != COMPOSE.read_text()
    result = run([console_script("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)])
    assert result.returncode != 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet():
    "No alert without a promtool case where it fires and one where it must not."
    alerts, cases = set(alert_rules()), alert_cases()
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alerts, "alerts.yml defines no alerts"
    assert alerts - firing == set(), "alerts without a test case where they fire"
    assert alerts - quiet == set(), "alerts without a test case where they stay quiet"
    assert (firing | quiet) - alerts == set(), "test cases for alerts that do not exist"


def test_every_alert_waits_and_says_what_to_do():
    "Each alert has a `for:`, a severity the Alertmanager routes, and a summary and a description."
    for name, rule in alert_rules().items():
        assert rule.get("for"), f"{name} has no for:"
        assert rule.get("labels", {}).get("severity") in ("critical", "warning"), name
        assert {"summary", "description"} <= set(rule.get("annotations", {})), name


def test_alerts_use_only_metrics_the_service_exposes():
    "A metric name misspelt in an alert expression would silently never fire."
    used = {name for rule in alert_rules().values()
            for name in re.findall(r"wine_[a-z_]+", re.sub(r'"[^"]*"', '""', rule["expr"]))}
    assert used, "no wine_ metric in any alert expression"
    assert used - SERVICE_METRICS == set()


def test_replicas_share_one_postgres_log_and_are_all_scraped():
    "Both replicas write one PostgreSQL prediction log, and Prometheus scrapes each of them."
    services = replicas()
    assert len(services) == 2, sorted(services)
    commands = [service["command"] for service in services.values()]
    log_dbs = {command[command.index("--log_db") + 1] for command in commands}
    assert len(log_dbs) == 1, log_dbs
    assert next(iter(log_dbs)).startswith("postgresql://"), log_dbs
    postgres = compose_services()["postgres"]["environment"]
    assert all(s["environment"]["PGPASSWORD"] == postgres["POSTGRES_PASSWORD"] for s in services.values())
    config = yaml.safe_load(CONFIG.read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "wine_serve")
    targets = {target for static in job["static_configs"] for target in static["targets"]}
    assert targets == {f"{name}:8000" for name in services}
    managers = {target for manager in config["alerting"]["alertmanagers"] for static in manager["static_configs"]
                for target in static["targets"]}
    assert managers == {"alertmanager:9093"} and "alertmanager" in compose_services()


def test_alertmanager_routes_critical_to_the_webhook_and_warnings_to_email():
    config = yaml.safe_load(ALERTMANAGER.read_text())
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    routes = {route["matchers"][0]: receivers[route["receiver"]] for route in config["route"]["routes"]}
    assert routes['severity="critical"']["webhook_configs"][0]["url"] == "http://alert-sink:5001/"
    assert routes['severity="warning"']["email_configs"][0]["to"].endswith("@example.com")


def test_alertmanager_config_is_valid(tmp_path):
    "amtool accepts alertmanager.yml and rejects a broken copy (skipped where amtool is not installed)."
    amtool = shutil.which("amtool")
    if amtool is None: pytest.skip("amtool is not installed (Debian package prometheus-alertmanager)")
    result = run([amtool, "check-config", str(ALERTMANAGER)])
    assert result.returncode == 0, result.stdout + result.stderr
    broken = broken_copy(tmp_path, ALERTMANAGER, "receiver: oncall-webhook", "receiver: nobody")
    assert run([amtool, "check-config", str(broken)]).returncode != 0
