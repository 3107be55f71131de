"`wine_train` as a user runs it: a real process, real files; bad data gives a clear error and writes nothing."
import json
from dataclasses import asdict, fields

import pytest
from conftest import console_script, run

from wine_nb.data import CSV_NAMES
from wine_nb.predict import load_model
from wine_nb.train import TrainConfig


def test_help_lists_every_config_field():
    result = run([console_script("wine_train"), "--help"])
    assert result.returncode == 0, result.stderr
    for f in fields(TrainConfig): assert f"--{f.name}" in result.stdout
    assert "--data_dir" in result.stdout and "--out_dir" in result.stdout


def test_cli_trains_and_writes_a_loadable_run(tmp_path, data_dir):
    out = tmp_path/"red-run"
    result = run([console_script("wine_train"), "--wine", "red", "--epochs", "3", "--hidden", "16,8", "--lr", "0.02",
                  "--split", "grouped", "--wandb_mode", "disabled", "--data_dir", str(data_dir), "--out_dir", str(out)])
    assert result.returncode == 0, result.stderr
    assert f"run folder: {out}" in result.stdout
    bundle = json.loads((out/"bundle.json").read_text())
    config = TrainConfig(wine="red", epochs=3, hidden="16,8", lr=0.02, split="grouped", wandb_mode="disabled")
    assert bundle["config"] == asdict(config)
    assert bundle["wine_types"] == ["red"] and bundle["data"]["split"] == "grouped"
    assert sorted(p.name for p in out.iterdir()) == ["bundle.json", "confusion_matrix.png", "history.csv",
                                                   "learning_curves.png", "metrics.json", "model.onnx", "model.pt",
                                                   "reference.csv.gz", "reliability.png"]
    assert set(bundle["metrics"]) == {"valid", "test"}
    assert load_model(out).classes == list(range(3, 10))


def test_cli_refuses_to_overwrite_a_finished_run(tmp_path, data_dir):
    out = tmp_path/"run"
    args = [console_script("wine_train"), "--wine", "red", "--epochs", "1", "--wandb_mode", "disabled",
            "--data_dir", str(data_dir), "--out_dir", str(out)]
    assert run(args).returncode == 0
    before = (out/"model.pt").read_bytes()
    result = run(args)
    assert result.returncode != 0 and "already holds a finished run" in result.stderr
    assert (out/"model.pt").read_bytes() == before


def test_cli_rejects_bad_settings_before_any_work(tmp_path):
    result = run([console_script("wine_train"), "--wine", "rose", "--dropout", "1.5", "--out_dir", str(tmp_path/"run")])
    assert result.returncode != 0
    assert "wine must be 'red', 'white' or 'both' (got 'rose')" in result.stderr
    assert "dropout must be in [0, 1)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path/"run").exists()


def damage(data_dir, folder, row, column, value):
    "Copy both CSVs into `folder`, setting data row `row` (1-based), column index `column` of the red file to `value`."
    folder.mkdir()
    for name in CSV_NAMES.values(): (folder/name).write_bytes((data_dir/name).read_bytes())
    lines = (folder/"winequality-red.csv").read_text().splitlines()
    cells = lines[row].split(";"); cells[column] = value; lines[row] = ";".join(cells)
    (folder/"winequality-red.csv").write_text("\n".join(lines) + "\n")
    return folder


def drop_column(data_dir, folder, column):
    folder.mkdir()
    for name in CSV_NAMES.values(): (folder/name).write_bytes((data_dir/name).read_bytes())
    lines = (folder/"winequality-red.csv").read_text().splitlines()
    kept = [";".join(c for i, c in enumerate(line.split(";")) if i != column) for line in lines]
    (folder/"winequality-red.csv").write_text("\n".join(kept) + "\n")
    return folder


@pytest.mark.parametrize("make,expected", [
    (lambda d, f: drop_column(d, f, 8), "winequality-red.csv: column(s) ['pH'] missing; expected the UCI header"),
    (lambda d, f: damage(d, f, 12, 10, "eleven"),
     "winequality-red.csv, column 'alcohol', row 12: 'eleven' is not a number"),
    (lambda d, f: damage(d, f, 30, 9, "-0.5"),
     "winequality-red.csv, column 'sulphates', row 30: -0.5 is outside [0, inf]"),
    (lambda d, f: damage(d, f, 44, 2, "NaN"), "winequality-red.csv, column 'citric_acid', row 44: value missing (NaN)"),
    (lambda d, f: damage(d, f, 5, 11, "5.5"), "winequality-red.csv, column 'quality', row 5: 5.5 is not an integer"),
])
def test_bad_data_gives_a_clear_error_and_writes_nothing(tmp_path, data_dir, make, expected):
    bad = make(data_dir, tmp_path/"bad")
    out = tmp_path/"run"
    result = run([console_script("wine_train"), "--epochs", "1", "--wandb_mode", "offline", "--data_dir", str(bad),
                  "--out_dir", str(out)])
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_missing_data_folder_is_a_clear_error(tmp_path):
    result = run([console_script("wine_train"), "--data_dir", str(tmp_path/"nowhere"),
                  "--out_dir", str(tmp_path/"run")])
    assert result.returncode != 0 and "does not exist" in result.stderr
    assert not (tmp_path/"run").exists()
