"""The prediction service as a client uses it: a real `wine_serve` process on 127.0.0.1, and `wine_predict` on real
files."""
import json
import shutil
import sys

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, console_script, run, serving

from wine_nb.data import CSV_NAMES, FEATURES, load_wine
from wine_nb.predict import load_model
from wine_nb.runs import promote
from wine_nb.serve.inputs import BATCH_LIMIT, TYPICAL_WINES, input_bounds


@pytest.fixture(scope="module")
def predictor(trained_run):
    return load_model(trained_run)


@pytest.fixture(scope="module")
def accepted_wines(predictor):
    "The UCI wines inside the service's accepted ranges (all but a handful of extreme ones)."
    wines = load_wine()
    bounds = input_bounds(predictor.metadata["feature_ranges"])
    return wines[np.logical_and.reduce([wines[f].between(lo, hi) for f, (lo, hi) in bounds.items()])]


def as_json(wines: pd.DataFrame) -> list:
    return [{**{f: float(getattr(row, f)) for f in FEATURES}, "wine": row.wine} for row in wines.itertuples()]


def test_health_names_the_model_and_version(server, trained_run, predictor):
    health = httpx.get(f"{server}/health").json()
    assert health["status"] == "ready" and health["backend"] == "torch"
    assert health["model_id"] == f"{trained_run.name}@{predictor.metadata['digest'][:12]}"
    assert health["package_version"] == predictor.metadata["package_version"]


def test_model_endpoint_gives_metadata_and_accepted_ranges(server, predictor):
    info = httpx.get(f"{server}/model").json()
    assert info["features"] == FEATURES and info["classes"] == list(range(3, 10))
    assert info["config"] == predictor.metadata["config"] and info["metrics"] == predictor.metadata["metrics"]
    assert info["accepted_ranges"] == input_bounds(predictor.metadata["feature_ranges"])
    assert info["batch_limit"] == BATCH_LIMIT
    for f, (lo, hi) in info["accepted_ranges"].items():
        train_lo, train_hi = predictor.metadata["feature_ranges"][f]
        assert lo <= train_lo and hi >= train_hi


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_predict_agrees_with_the_library(request, backend, predictor, accepted_wines):
    url = request.getfixturevalue("server" if backend == "torch" else "onnx_server")
    sample = accepted_wines.sample(20, random_state=1)
    expected = predictor.predict(sample)
    with httpx.Client(base_url=url) as client:
        for wine, (_, row) in zip(as_json(sample), expected.iterrows(), strict=True):
            answer = client.post("/predict", json=wine).json()
            assert answer["quality"] == row.quality
            assert answer["expected_quality"] == pytest.approx(row.expected_quality, abs=1e-5)
            assert answer["probabilities"] == pytest.approx({str(q): row[f"p_{q}"] for q in range(3, 10)}, abs=1e-5)


def test_the_int8_backend_serves_close_probabilities_and_the_same_grades_mostly(trained_run, predictor, accepted_wines):
    "wine_serve --backend onnx-int8: a batch's grades mostly those of the float network, probabilities close."
    sample = accepted_wines.sample(500, random_state=2)
    expected = predictor.predict(sample)
    with serving(trained_run, "onnx-int8") as url:
        assert httpx.get(f"{url}/health").json()["backend"] == "onnx-int8"
        answer = httpx.post(f"{url}/predict/batch", json={"wines": as_json(sample)}, timeout=30).json()
    probabilities = np.array(answer["probabilities"])
    assert np.abs(probabilities - expected.filter(like="p_").to_numpy()).max() < 0.05
    assert (np.array(answer["quality"]) == expected.quality.to_numpy()).mean() >= 0.98


@pytest.mark.parametrize("change, field", [
    ({"alcohol": 1e6}, "alcohol"), ({"ph": "3.2"}, "ph"), ({"wine": "rosé"}, "wine"),
    ({"density": None}, "density"), ({"colour": "red"}, "colour"), ({"ph": -1}, "ph")])
def test_bad_input_is_a_422_naming_the_field(server, change, field):
    answer = httpx.post(f"{server}/predict", json={**TYPICAL_WINES["red"], **change})
    assert answer.status_code == 422
    assert [e["loc"][-1] for e in answer.json()["detail"]] == [field]


def test_non_finite_numbers_and_broken_json_are_422(server):
    for body in (b'{"alcohol": NaN}', b'{"alcohol": Infinity}', b"{not json"):
        answer = httpx.post(f"{server}/predict", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 422, body
    body = json.dumps({**TYPICAL_WINES["white"], "ph": float("nan")}).encode()  # Python's json writes NaN
    batch = b'{"wines": [' + body + b"]}"
    answer = httpx.post(f"{server}/predict/batch", content=batch, headers={"content-type": "application/json"})
    assert answer.status_code == 422


def test_json_batch_is_one_call_that_matches_the_library(server, predictor, accepted_wines):
    wines = accepted_wines.sample(BATCH_LIMIT, replace=True, random_state=2)
    answer = httpx.post(f"{server}/predict/batch", json={"wines": as_json(wines)}, timeout=60)
    assert answer.status_code == 200, answer.text[:500]
    batch, expected = answer.json(), predictor.predict(wines)
    assert batch["n"] == BATCH_LIMIT and batch["classes"] == list(range(3, 10))
    assert batch["quality"] == expected.quality.tolist()
    np.testing.assert_allclose(batch["probabilities"], expected[[f"p_{q}" for q in range(3, 10)]].to_numpy(), atol=1e-5)


def test_batch_errors_name_the_row_and_field_and_the_limit_is_413(server):
    wines = [TYPICAL_WINES["red"]] * 5 + [{**TYPICAL_WINES["red"], "sulphates": 50}]
    answer = httpx.post(f"{server}/predict/batch", json={"wines": wines})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "wines", 5, "sulphates"]
    too_many = httpx.post(f"{server}/predict/batch", json={"wines": [TYPICAL_WINES["red"]] * (BATCH_LIMIT + 1)},
                          timeout=60)
    assert too_many.status_code == 413 and f"send 1 to {BATCH_LIMIT}" in too_many.text
    huge = httpx.post(f"{server}/predict/batch", content=b" " * (20 * 2**20),
                      headers={"content-type": "application/json"}, timeout=60)
    assert huge.status_code == 413


def test_csv_upload_of_the_uci_red_file(server, data_dir, predictor):
    csv = (data_dir/CSV_NAMES["red"]).read_bytes()
    answer = httpx.post(f"{server}/predict/batch/csv", params={"wine": "red"},
                        files={"file": ("winequality-red.csv", csv)}, timeout=60)
    assert answer.status_code == 200, answer.text[:500]
    wines = load_wine("red")
    assert answer.json()["n"] == len(wines) == 1599
    assert answer.json()["quality"] == predictor.predict(wines).quality.tolist()
    no_type = httpx.post(f"{server}/predict/batch/csv", files={"file": ("winequality-red.csv", csv)})
    assert no_type.status_code == 422 and "either a 'wine' column" in no_type.json()["detail"]
    bad = csv.replace(b"\n7.4;0.7;0;1.9;", b"\n7.4;0.7;zero;1.9;", 1)
    answer = httpx.post(f"{server}/predict/batch/csv", params={"wine": "red"}, files={"file": ("bad.csv", bad)})
    assert answer.status_code == 422
    assert "bad.csv, column 'citric_acid', row 1: 'zero' is not a number" in answer.json()["detail"]


def test_metrics_count_requests_grades_and_confidence(server):
    before = httpx.get(f"{server}/metrics").text
    for _ in range(3): httpx.post(f"{server}/predict", json=TYPICAL_WINES["white"])
    text = httpx.get(f"{server}/metrics").text
    def value(name, exposition):
        lines = [line for line in exposition.splitlines() if line.startswith(name + " ")]
        return float(lines[0].split()[-1]) if lines else 0.0
    assert value('wine_requests_total{method="POST",route="/predict",status="200"}', text) >= 3 + value(
        'wine_requests_total{method="POST",route="/predict",status="200"}', before)
    assert value("wine_prediction_confidence_count", text) == value("wine_prediction_confidence_count", before) + 3
    assert "wine_request_duration_seconds_bucket" in text and "wine_predicted_quality_total{quality=" in text


def test_the_page_is_self_contained(server):
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text and "<link" not in page.text


def tamper(run_dir, dest):
    shutil.copytree(run_dir, dest)
    weights = dest/"model.pt"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    return dest


@pytest.mark.parametrize("problem", ["missing", "unfinished", "tampered"])
def test_service_refuses_to_start_on_a_bad_run_folder(problem, trained_run, tmp_path):
    folder = tmp_path/"run"
    if problem == "unfinished": shutil.copytree(trained_run, folder); (folder/"bundle.json").unlink()
    if problem == "tampered": tamper(trained_run, folder)
    result = run([console_script("wine_serve"), "--model", str(folder), "--port", "1"], timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"wine_serve: error: cannot serve {folder}" in result.stderr
    assert ("does not match the sha256" if problem == "tampered" else "no bundle.json in") in result.stderr


def test_wine_predict_scores_a_file_atomically(trained_run, data_dir, tmp_path, predictor):
    out = tmp_path/"scored.csv"
    result = run([console_script("wine_predict"), str(data_dir/CSV_NAMES["red"]), str(out), "--model", str(trained_run),
                  "--wine", "red", "--backend", "onnx"])
    assert result.returncode == 0, result.stderr
    scored, wines = pd.read_csv(out, sep=";"), load_wine("red")
    assert scored.predicted_quality.tolist() == predictor.predict(wines).quality.tolist()
    assert (scored.quality == wines.quality).all()  # the true grade of the UCI file is kept beside the prediction
    bad = tmp_path/"bad.csv"
    bad.write_text((data_dir/CSV_NAMES["red"]).read_text().replace("\n7.4;0.7;0;1.9;", "\n7.4;0.7;0;-1.9;", 1))
    result = run([console_script("wine_predict"), str(bad), str(tmp_path/"never.csv"), "--model", str(trained_run),
                  "--wine", "red"])
    assert result.returncode == 1
    # the model's accepted range
    assert "bad.csv, column 'residual_sugar', row 1: -1.9 is outside [0.0, " in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path/"never.csv").exists()
    result = run([console_script("wine_predict"), str(bad), str(tmp_path/"never.csv"),
                  "--model", str(tmp_path/"nowhere")])
    assert result.returncode == 1 and "no bundle.json in" in result.stderr and not (tmp_path/"never.csv").exists()



def test_service_follows_a_registry_alias(trained_run, tmp_path, monkeypatch):
    "wine_serve --model production serves the run the registry's alias points at, and refuses an unknown alias."
    runs = tmp_path/"runs"
    shutil.copytree(trained_run, runs/"chosen")
    promote("chosen", "production", runs)
    monkeypatch.setenv("WINE_NB_RUNS_DIR", str(runs))
    with serving("production") as url:
        assert httpx.get(f"{url}/health").json()["model_id"].startswith("chosen@")
    result = run([console_script("wine_serve"), "--model", "staging"])
    assert result.returncode != 0 and "no alias 'staging'" in result.stderr


def test_smoke_script_serves_a_run_and_fails_on_a_broken_one(trained_run, tmp_path):
    """The promotion workflow's smoke test (.ci/smoke.py) passes on a good run and exits non-zero, naming why, on a
    broken one."""
    result = run([sys.executable, str(ROOT/".ci"/"smoke.py"), str(trained_run), "--backend", "onnx"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "answered /health, /predict and /predict/batch" in result.stdout
    broken = tmp_path/"broken"
    shutil.copytree(trained_run, broken)
    (broken/"model.pt").write_bytes(b"not a model")
    result = run([sys.executable, str(ROOT/".ci"/"smoke.py"), str(broken), "--timeout", "30"])
    assert result.returncode != 0 and "wine_serve exited" in result.stderr


def test_wine_serve_says_what_it_serves(trained_run, predictor, tmp_path):
    "At start, on stderr: the model id, the backend, the URL and the prediction log."
    from conftest import start_server, stop
    proc, url = start_server(trained_run, args=("--log_db", tmp_path/"log.sqlite"))
    stop(proc)
    said = proc.stderr.read()
    model_id = f"{trained_run.name}@{predictor.metadata['digest'][:12]}"
    expected = f"wine_serve: serving {model_id} (torch backend) on {url}; prediction log {tmp_path/'log.sqlite'}"
    assert expected in said, said
