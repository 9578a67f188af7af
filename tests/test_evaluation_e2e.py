"""End to end: tiny generated tasks (scene, 5-fold scene, event) -> `hear-suite eval` with
hear_suite.kwmlp (and the log-mel floor it adds) and heareval -> the results file. A few minutes
on a 2-core CPU."""
import csv
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_kwmlp_through_heareval(tmp_path, capsys):
    pytest.importorskip("heareval")
    from hear_suite.cli import main

    tasks, out = tmp_path / "tasks", tmp_path / "eval"
    assert main(["make-tasks", "--out", str(tasks), "--suite", "ci"]) == 0
    assert main(["eval", "--module", "hear_suite.kwmlp", "--config", str(REPO / "eval_configs" / "ci.yaml"),
                 "--tasks-dir", str(tasks), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| task | metric | hear_suite.kwmlp | logmel (floor) | chance |" in printed
    assert "▼: below the floor" in printed

    table = list(csv.DictReader((out / "results.csv").open()))
    assert {r["run"] for r in table} == {"hear_suite.kwmlp", "logmel (floor)"}
    assert all(r["status"] == "ok" for r in table)
    rows = {(r["task"], r["metric"]): r for r in table if r["run"] == "hear_suite.kwmlp"}
    floor = {(r["task"], r["metric"]): r for r in table if r["run"] == "logmel (floor)"}
    for key, row in rows.items():
        assert row["floor"] == floor[key]["score"] and row["below_floor"] in ("true", "false")
        assert row["chance"] == floor[key]["chance"] != ""
    assert rows[("gen_sound_events-v1-full", "segment_1s_er")]["chance"] == "1"
    chance = 1 / 12  # twelve sound classes
    assert float(rows[("gen_sound_classes-v1-full", "top1_acc")]["score"]) > chance + 0.25
    kfold = rows[("gen_sound_classes_5fold-v1-full", "top1_acc")]
    assert int(kfold["folds"]) == 5 and float(kfold["score"]) > chance + 0.15
    onset = float(rows[("gen_sound_events-v1-full", "event_onset_200ms_fms")]["score"])
    error_rate = float(rows[("gen_sound_events-v1-full", "segment_1s_er")]["score"])
    assert 0.0 <= onset <= 1.0 and error_rate >= 0.0

    # heareval's own scores file, as the table was built from it
    scores = json.loads((out / "embeddings" / "hear_suite.kwmlp" / "hear_suite.kwmlp"
                         / "gen_sound_events-v1-full" / "test.predicted-scores.json").read_text())
    assert scores["test"]["test_event_onset_200ms_fms"] == pytest.approx(onset, abs=1e-5)
