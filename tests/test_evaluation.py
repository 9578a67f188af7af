"""Generated HEAR tasks, the heareval launcher and the `hear-suite eval` driver (toy plugins).

The end-to-end run with hear_suite.kwmlp is in test_evaluation_e2e.py.
"""
import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hear_suite.corpora import music, sounds
from hear_suite.taskgen import make_tasks
from hear_suite.evaluation.config import load_config
from hear_suite.evaluation.chance import CONSTANT, chance_level, task_chance
from hear_suite.evaluation.results import (Row, mark_floor, read_metric, run_colours, to_csv,
                                           to_markdown, write_results)
from hear_suite.tasks import read_task

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "eval_configs"


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# sources and generated tasks
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sounds.list_sound_classes())
def test_sound_classes_are_deterministic_and_bounded(name):
    a = sounds.synthesize(name, np.random.default_rng(3), 16000)
    b = sounds.synthesize(name, np.random.default_rng(3), 16000)
    c = sounds.synthesize(name, np.random.default_rng(4), 16000)
    assert a.dtype == np.float32 and a.ndim == 1 and np.array_equal(a, b)
    assert 0.1 * 16000 < len(a) < 2.5 * 16000
    assert 0.45 < np.abs(a).max() <= 0.9 + 1e-6 and np.isfinite(a).all()
    assert len(a) != len(c) or not np.array_equal(a, c)


def test_additive_notes_have_their_pitch():
    for pitch in (48, 60, 71):
        x = music.additive_note(pitch, 16000, rng=np.random.default_rng(pitch))
        spec = np.abs(np.fft.rfft(x[:32000] * np.hanning(32000)))
        f = np.fft.rfftfreq(32000, 1 / 16000)
        f0 = 440 * 2 ** ((pitch - 69) / 12)
        band = (f > 0.8 * f0) & (f < 1.2 * f0)
        # the fundamental region holds a clear peak at f0 (+- 2 %)
        assert abs(f[band][np.argmax(spec[band])] / f0 - 1) < 0.02


def test_midi_file_layout():
    data = music.midi_bytes([music.Note(40, 60, 100, 0.0, 1.0), music.Note(0, 64, 90, 0.5, 1.0)])
    assert data[:4] == b"MThd" and b"MTrk" in data and data.endswith(b"\x00\xff\x2f\x00")
    with pytest.raises(ValueError):
        music.midi_bytes([music.Note(0, 200, 100, 0.0, 1.0)])


def test_make_tasks_is_deterministic(tmp_path):
    kw = dict(suite="ci", scale=0.3, log=lambda s: None)
    a = make_tasks.make_suite(tmp_path / "a", seed=0, **kw)
    b = make_tasks.make_suite(tmp_path / "b", seed=0, **kw)
    c = make_tasks.make_suite(tmp_path / "c", seed=1, **kw)
    assert [p.name for p in a] == [s.dir_name for s in make_tasks.SUITES["ci"]]
    for pa, pb, pc in zip(a, b, c):
        assert _tree_digest(pa) == _tree_digest(pb)
        assert _tree_digest(pa) != _tree_digest(pc)
    # a second call keeps what is there; --force rewrites identically
    logs = []
    make_tasks.make_suite(tmp_path / "a", seed=0, suite="ci", scale=0.3, log=logs.append)
    assert all("present, kept" in line for line in logs)
    before = _tree_digest(a[0])
    make_tasks.make_suite(tmp_path / "a", seed=0, suite="ci", scale=0.3, force=True,
                          only=["gen_sound_classes"], log=lambda s: None)
    assert _tree_digest(a[0]) == before


def test_extra_sample_rates(tmp_path):
    (path,) = make_tasks.make_suite(tmp_path, suite="ci", scale=0.2, only=["gen_sound_classes"],
                                    sample_rates=(16000, 22050), log=lambda s: None)
    for rate in (16000, 22050):
        task = read_task(path, sample_rate=rate)
        for split in task.splits:
            for wav in task.examples[split]:
                info = sf.info(str(wav))
                assert (info.samplerate, info.channels, info.subtype) == (rate, 1, "PCM_16")
                assert info.frames == round(task.metadata["sample_duration"] * rate)


def _suite_tasks(tmp_path_factory):
    """The numpy suite (small), plus the default suite's Debian-backed tasks when installed."""
    root = tmp_path_factory.mktemp("formats")
    paths = make_tasks.make_suite(root, suite="numpy", scale=0.15, log=lambda s: None)
    from hear_suite.corpora import speech
    if speech.have_tool("espeak-ng"):
        paths += make_tasks.make_suite(root, suite="default", scale=0.15,
                                       only=["gen_spoken_words"], log=lambda s: None)
    if music.fluidsynth_available():
        paths += make_tasks.make_suite(root, suite="default", scale=0.15,
                                       only=["gen_instrument_pitch"], log=lambda s: None)
    return paths


def test_generated_tasks_read_by_heareval(tmp_path_factory):
    """Every generated task family through heareval's own readers: its embedding step (task
    metadata, split files, audio at the model's rate, per-frame event labels, memmaps), then its
    prediction step's loaders (vocabulary, splits/folds, datasets with label indices, metrics)."""
    pytest.importorskip("heareval")
    from hear_suite.evaluation.heareval_compat import import_embeddings_runner
    import_embeddings_runner()
    from heareval.embeddings.task_embeddings import Embedding, task_embeddings
    import heareval.predictions.task_predictions as tp
    from heareval.score import available_scores, label_vocab_as_dict

    paths = _suite_tasks(tmp_path_factory)
    families = {json.loads((p / "task_metadata.json").read_text())["embedding_type"] for p in paths}
    assert families == {"scene", "event"}
    embedding = Embedding("plugins.toy_plugin")
    out = tmp_path_factory.mktemp("formats_emb")
    for path in paths:
        meta = json.loads((path / "task_metadata.json").read_text())
        task = read_task(path)
        assert task.labels == sorted(task.labels) and len(task.examples) == len(meta["splits"])
        emb_dir = out / path.name
        task_embeddings(embedding, path, emb_dir)
        vocab, nlabels = tp.label_vocab_nlabels(emb_dir)
        label_to_idx = label_vocab_as_dict(vocab, key="label", value="idx")
        assert nlabels == len(task.labels)
        for metric in meta["evaluation"]:
            available_scores[metric](label_to_idx=label_to_idx)
        if "pitch_acc" in meta["evaluation"]:  # chroma_acc compares vocabulary indices mod 12
            assert all((int(label) - idx) % 12 == (int(vocab["label"][0]) % 12)
                       for label, idx in label_to_idx.items())
        for splits in tp.get_splits_from_metadata(meta):
            for names in splits.values():
                for name in names:
                    ds = tp.SplitMemmapDataset(emb_dir, label_to_idx, nlabels, name,
                                               meta["embedding_type"], in_memory=True, metadata=True)
                    assert len(ds) > 0 and ds.y.sum() > 0
        if meta["split_mode"] == "new_split_kfold":
            assert meta["nfolds"] == 5 and len(tp.get_splits_from_metadata(meta)) == 5


_CUDA_TRAP = """
import sys, types, torch
torch.cuda.is_available = lambda: True          # a GPU machine, as torch sees it
stub = types.ModuleType("heareval.gpu_max_mem")  # nvml needs a driver: stand in for it
stub.reset, stub.measure = (lambda: None), (lambda: None)
stub.nvmlDeviceGetHandleByIndex = lambda i: i
stub.nvmlDeviceGetName = lambda h: "NVIDIA H100"  # str, as nvidia-ml-py returns
stub.device_name = lambda i=0: stub.nvmlDeviceGetName(i).decode("utf-8")  # heareval's bug
sys.modules["heareval.gpu_max_mem"] = stub
import tensorflow as tf
assert not tf.test.is_gpu_available()           # TensorFlow's CPU build
if sys.argv[1] == "plain":
    import heareval.embeddings.runner
else:
    from hear_suite.evaluation.heareval_compat import import_embeddings_runner
    runner = import_embeddings_runner()
    assert not tf.test.is_gpu_available()       # restored afterwards
    assert stub.device_name() == "NVIDIA H100"
    print("imported")
"""


def test_cuda_trap_is_defused():
    """On a GPU machine with TensorFlow's CPU build heareval's embedding runner refuses to
    import; through heareval_compat it imports (and GPU names are read as str)."""
    pytest.importorskip("heareval")
    import subprocess
    import sys

    plain = subprocess.run([sys.executable, "-c", _CUDA_TRAP, "plain"], capture_output=True, text=True)
    assert plain.returncode != 0 and "GPUs not available in tensorflow" in plain.stderr
    fixed = subprocess.run([sys.executable, "-c", _CUDA_TRAP, "fixed"], capture_output=True, text=True)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert fixed.stdout.strip().endswith("imported")


# ---------------------------------------------------------------------------------------------
# configs, grids, results
# ---------------------------------------------------------------------------------------------

def test_configs_load_and_match_suites():
    configs = {p.stem: load_config(p) for p in CONFIGS.glob("*.yaml")}
    assert {"hear2021", "generated", "generated-numpy", "ci", "ablation8"} <= set(configs)
    hear = configs["hear2021"]
    assert len(hear.tasks) == 20 and len({t.dir.split("_fold")[0] for t in hear.tasks}) == 19
    assert all(t.reference and t.metrics for t in hear.tasks)
    assert hear.task("speech_commands-v0.0.2-full").reference == {"top1_acc": 0.978}
    assert len(configs["ablation8"].tasks) == 8
    for config, suite in (("generated", "default"), ("generated-numpy", "numpy"), ("ci", "ci")):
        assert [t.dir for t in configs[config].tasks] == [s.dir_name for s in make_tasks.SUITES[suite]]


def test_config_grid_numbers(tmp_path):
    """YAML 1.1 reads `1e-3` (no dot) as a string: grid numbers are read as numbers, and a grid
    value that is no number is an error naming the file, grid and parameter."""
    path = tmp_path / "c.yaml"
    path.write_text("name: c\ntasks: [t-v1-full]\ngrids:\n  g: {scene: {lr: [1e-3, 3.2e-3],"
                    " max_epochs: ['10']}, event: {lr: 1e-4}}\n  h: {lr: [1e-3], initialization: [xavier_uniform]}\n")
    grids = load_config(path).grids
    assert grids["g"] == {"scene": {"lr": [1e-3, 3.2e-3], "max_epochs": [10]}, "event": {"lr": [1e-4]}}
    assert grids["h"] == {"lr": [1e-3], "initialization": ["xavier_uniform"]}
    path.write_text("name: c\ntasks: [t-v1-full]\ngrids:\n  g: {lr: [fast]}\n")
    with pytest.raises(ValueError, match="grid 'g': lr must be numbers"):
        load_config(path)


def test_build_grid():
    pytest.importorskip("heareval")
    from hear_suite.evaluation.heareval_compat import build_grid

    assert build_grid("default", None, "scene") is None
    scene, event = build_grid("demo", None, "scene"), build_grid("demo", None, "event")
    assert scene["lr"] == [1e-3, 3.2e-3] and event["lr"] == [1e-3]
    assert scene["batch_size"] == [1024] and callable(scene["initialization"][0])
    custom = build_grid("fast", {"event": {"max_epochs": [3]}}, "event")
    assert custom["max_epochs"] == [3] and custom["check_val_every_n_epoch"] == [3, 10]
    with pytest.raises(ValueError, match="unknown grid parameter"):
        build_grid("default", {"epochs": [3]}, "scene")


def test_results_tables(tmp_path):
    tvt = {"test": {"test_top1_acc": 0.5, "test_score": 0.5}}
    kfold = {"fold00": {"test_top1_acc": 0.4}, "fold01": {"test_top1_acc": 0.6},
             "aggregated_scores": {"test_top1_acc_mean": 0.5, "test_top1_acc_std": 0.1414}}
    assert read_metric(tvt, "top1_acc") == (0.5, None, 1)
    assert read_metric(kfold, "top1_acc") == (0.5, 0.1414, 2)
    assert read_metric(tvt, "mAP") is None
    rows = [Row("a", "t1", "top1_acc", 0.9, reference=0.978),
            Row("b", "t1", "top1_acc", 0.95, reference=0.978),
            Row("a", "t2", "segment_1s_er", 0.5, std=0.01, folds=5),
            Row("b", "t2", "segment_1s_er", status="failed", detail="boom")]
    md = to_markdown(rows, ["a", "b"], "kwmlp (paper)")
    assert "| task | metric | a | b | kwmlp (paper) | Δ a | Δ b |" in md
    assert "| t1 | top1_acc | 0.900 | 0.950 | 0.978 | -0.078 | -0.028 |" in md
    assert "| t2 | segment_1s_er ↓ | 0.500 ± 0.010 | failed |" in md
    parsed = list(csv.DictReader(to_csv(rows).splitlines()))
    assert parsed[0]["diff"] == "-0.078" and parsed[3]["status"] == "failed"
    paths = write_results(tmp_path, rows, ["a", "b"], title="t", reference_name="ref")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(paths["json"].read_text())["rows"][0]["diff"] == pytest.approx(-0.078)
    assert not list(tmp_path.glob(".*.tmp"))


def test_floor_marks_chance_column_and_legend(tmp_path):
    """Scores worse than the floor run's are marked ▼ (higher, for the lower-is-better error
    rate); the floor's own scores and failed rows are not compared; chance is one column."""
    floor = "logmel (floor)"
    rows = [Row("a", "t1", "top1_acc", 0.9, chance=0.25),
            Row("b", "t1", "top1_acc", 0.4, chance=0.25),
            Row(floor, "t1", "top1_acc", 0.5, chance=0.25),
            Row("a", "t2", "segment_1s_er", 0.5, std=0.01, folds=5, chance=1.0),
            Row("b", "t2", "segment_1s_er", status="failed", detail="boom", chance=1.0),
            Row(floor, "t2", "segment_1s_er", 0.45, chance=1.0),
            Row("a", "t3", "mAP", 0.6, chance=0.2), Row("b", "t3", "mAP", 0.7, chance=0.2),
            Row(floor, "t3", "mAP", status="failed")]
    mark_floor(rows, floor)
    assert [r.below_floor for r in rows] == [False, True, None, True, None, None, None, None, None]
    assert [r.floor for r in rows[:6]] == [0.5] * 3 + [0.45] * 3 and rows[6].floor is None
    md = to_markdown(rows, ["a", "b", floor], floor=floor)
    assert "| task | metric | a | b | logmel (floor) | chance |" in md
    assert "| t1 | top1_acc | 0.900 | 0.400 ▼ | 0.500 | 0.250 |" in md
    assert "| t2 | segment_1s_er ↓ | 0.500 ± 0.010 ▼ | failed | 0.450 | 1.000 |" in md
    assert "| t3 | mAP | 0.600 | 0.700 | failed | 0.200 |" in md
    assert "\n▼: below the floor, i.e. worse than logmel (floor)" in md and "\nchance: " in md
    assert "▼" not in to_markdown(rows, ["a", "b", floor])  # no floor run named: no marks
    parsed = list(csv.DictReader(to_csv(rows).splitlines()))
    assert [(p["chance"], p["floor"], p["below_floor"]) for p in parsed[:3]] == \
        [("0.25", "0.5", "false"), ("0.25", "0.5", "true"), ("0.25", "0.5", "")]
    paths = write_results(tmp_path, rows, ["a", "b", floor], title="t", floor=floor)
    payload = json.loads(paths["json"].read_text())
    assert payload["floor"] == floor and payload["rows"][1]["below_floor"] is True
    assert payload["rows"][0]["chance"] == 0.25
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bar_colours_tell_runs_apart():
    """The bar chart's runs keep the default colours up to 10 and share none up to 20 (the real
    suite's table has 20 runs)."""
    import matplotlib.colors as mcolors

    assert run_colours(3) == ["C0", "C1", "C2"]
    for n in (11, 20):
        assert len({mcolors.to_hex(c) for c in run_colours(n)}) == n


def test_chance_level():
    vocab = [str(p) for p in range(48, 72)]  # consecutive MIDI pitches
    pitches = [["60"], ["60"], ["48"], ["61"], ["49"], ["61"], ["61"]]
    assert chance_level("top1_acc", pitches, vocab) == pytest.approx(3 / 7)
    assert chance_level("pitch_acc", pitches, vocab) == pytest.approx(3 / 7)
    # chroma: 60 and 48 are C (3 of 7), 61 and 49 are C# (4 of 7); as heareval scores it, by
    # vocabulary index mod 12, which for consecutive pitches is the same grouping
    assert chance_level("chroma_acc", pitches, vocab) == pytest.approx(4 / 7)
    by_pitch = Counter(int(p[0]) % 12 for p in pitches).most_common(1)[0][1] / len(pitches)
    assert chance_level("chroma_acc", pitches, vocab) == pytest.approx(by_pitch)
    # mAP: prevalences 3/4 (a), 2/4 (b), 1/4 (c); d is in the vocabulary but not in test
    multilabel = [["a", "b"], ["a"], ["a", "c"], ["b"]]
    assert chance_level("mAP", multilabel, ["a", "b", "c", "d"]) == pytest.approx(0.5)
    for metric, value in CONSTANT.items():
        assert chance_level(metric, multilabel, []) == value
    assert CONSTANT["segment_1s_er"] == 1.0 and CONSTANT["aucroc"] == 0.5
    assert chance_level("no_such_metric", multilabel, []) is None
    assert chance_level("top1_acc", [], []) is None and chance_level("mAP", [], []) is None


def test_task_chance_from_disk(tmp_path):
    """Majority share of test.json, and of all folds pooled for a k-fold task."""
    paths = make_tasks.make_suite(tmp_path, suite="ci", scale=0.3, log=lambda s: None,
                                  only=["gen_sound_classes", "gen_sound_classes_5fold",
                                        "gen_sound_events"])
    tvt, kfold, events = paths
    test = json.loads((tvt / "test.json").read_text())
    counts = Counter(labels[0] for labels in test.values())
    assert task_chance(tvt, ["top1_acc"]) == {
        "top1_acc": pytest.approx(max(counts.values()) / len(test))}
    pooled = Counter(labels[0] for i in range(5)
                     for labels in json.loads((kfold / f"fold{i:02d}.json").read_text()).values())
    assert task_chance(kfold, ["top1_acc"])["top1_acc"] == \
        pytest.approx(max(pooled.values()) / sum(pooled.values()))
    assert task_chance(events, ["event_onset_200ms_fms", "segment_1s_er"]) == \
        {"event_onset_200ms_fms": 0.0, "segment_1s_er": 1.0}


def test_floor_run_is_added_once():
    from hear_suite.evaluation.runs import FLOOR_LABEL, Run, with_floor

    runs, floor = with_floor([Run("a")])
    assert [r.module for r in runs] == ["a", "hear_suite.logmel"] and floor == FLOOR_LABEL
    assert runs[-1].name == FLOOR_LABEL and runs[-1].run_id == "hear_suite.logmel"
    mine = [Run("hear_suite.logmel", label="lm"), Run("a")]
    assert with_floor(mine) == (mine, "lm")  # the user's logmel run is the floor
    assert with_floor([Run("a")], enabled=False) == ([Run("a")], None)
    with pytest.raises(ValueError, match="no-floor"):
        with_floor([Run("a", label=FLOOR_LABEL)])


def test_run_options_attach_to_their_module():
    import argparse

    from hear_suite.evaluation import driver

    parser = argparse.ArgumentParser()
    driver.add_arguments(parser)
    args = parser.parse_args(["--module", "a", "--module", "b", "--model-options", '{"k": 1}',
                              "--label", "B", "--config", "c.yaml", "--tasks-dir", "t"])
    runs = driver.parse_runs(args.runs)
    assert [(r.module, r.options, r.name) for r in runs] == [("a", {}, "a"), ("b", {"k": 1}, "B")]
    assert runs[1].heareval_dir_name() == "b-k=1" and runs[1].run_id != runs[0].run_id
    with pytest.raises(SystemExit):
        parser.parse_args(["--model-options", "{}", "--module", "a", "--config", "c",
                           "--tasks-dir", "t"])
    # --model takes a path or, like load_model, the name of a shipped weights file
    shipped = driver.parse_runs([{"module": "hear_suite.ast", "model": "ast_absolute.pt"}])
    assert Path(shipped[0].model).is_file() and Path(shipped[0].model).name == "ast_absolute.pt"
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        driver.parse_runs([{"module": "hear_suite.ast", "model": "nowhere.pt"}])


def test_embeddings_of_other_weights_are_redone(tmp_path, capsys):
    """A run's embeddings belong to one weights file: retraining the file in place (or a new
    shipped default for a run without --model) recomputes them; the same file keeps them."""
    from hear_suite.evaluation.driver import WEIGHTS_MARKER, _invalidate_other_weights
    from hear_suite.evaluation.runs import Run

    weights = tmp_path / "model.pt"
    weights.write_bytes(b"first training")
    run = Run("hear_suite.kwmlp", model=str(weights))
    root = tmp_path / "embeddings" / run.run_id
    embedded = root / "hear_suite.kwmlp" / "task" / ".done.embeddings"
    embedded.parent.mkdir(parents=True)
    embedded.touch()
    _invalidate_other_weights(run, root, "[r]")  # no record yet: adopted
    assert embedded.exists()
    assert json.loads((root / WEIGHTS_MARKER).read_text())["file"] == "model.pt"
    _invalidate_other_weights(run, root, "[r]")
    assert embedded.exists() and "recomputing" not in capsys.readouterr().out
    weights.write_bytes(b"second training")
    _invalidate_other_weights(run, root, "[r]")
    assert not embedded.exists() and "recomputing" in capsys.readouterr().out
    # the shipped default of a family's modules; none for the floor
    from hear_suite.registry import MODELS

    default = Run("hear_suite.kwmlp_2levelmel").weights_file()
    assert default.name == MODELS["kwmlp"].weights and default.is_file()
    assert Run("hear_suite.logmel").weights_key() is None


# ---------------------------------------------------------------------------------------------
# the driver, with toy plugins
# ---------------------------------------------------------------------------------------------

def test_eval_driver_toy_plugins(tmp_path, capsys):
    """Two modules and the log-mel floor over a scene and an event task plus a missing one; the
    flaky module's event task fails without stopping anything; a rerun redoes only what failed."""
    pytest.importorskip("heareval")
    from hear_suite.cli import main

    tasks = tmp_path / "tasks"
    make_tasks.make_suite(tasks, suite="ci", scale=0.5, only=["gen_sound_classes", "gen_sound_events"],
                          log=lambda s: None)
    config = tmp_path / "toy.yaml"
    config.write_text(
        "name: toy\ngrid: ci\ngrid_points: 1\nreference_name: ref\ntasks:\n"
        "  - {dir: gen_sound_classes-v1-full, metrics: [top1_acc], reference: {top1_acc: 0.5}}\n"
        "  - {dir: gen_sound_events-v1-full}\n"
        "  - {dir: not_there-v1-full, metrics: [mAP]}\n")
    out = tmp_path / "eval"
    argv = ["eval", "--module", "plugins.toy_plugin", "--label", "toy",
            "--module", "plugins.flaky_plugin", "--label", "flaky",
            "--config", str(config), "--tasks-dir", str(tasks), "--out", str(out)]
    assert main(argv) == 1  # one step failed
    text = capsys.readouterr().out
    assert "missing: not_there-v1-full" in text and "FAILED [flaky] embed gen_sound_events" in text
    rows = {(r["run"], r["task"], r["metric"]): r
            for r in csv.DictReader((out / "results.csv").open())}
    scene = rows[("toy", "gen_sound_classes-v1-full", "top1_acc")]
    assert scene["status"] == "ok" and float(scene["score"]) > 1 / 12 + 0.15
    assert scene["reference"] == "0.5" and float(scene["diff"]) == pytest.approx(float(scene["score"]) - 0.5)
    for metric in ("event_onset_200ms_fms", "segment_1s_er"):  # from the task's metadata
        assert rows[("toy", "gen_sound_events-v1-full", metric)]["status"] == "ok"
        assert rows[("flaky", "gen_sound_events-v1-full", metric)]["status"] == "failed"
    assert rows[("flaky", "gen_sound_classes-v1-full", "top1_acc")]["status"] == "ok"
    assert rows[("toy", "not_there-v1-full", "mAP")]["status"] == "missing"
    md = (out / "results.md").read_text()
    assert (out / "results.png").is_file()
    assert "| toy | flaky | logmel (floor) | chance | ref |" in md
    assert "▼: below the floor" in md
    seconds = json.loads((out / "results.json").read_text())["seconds"]
    assert set(seconds["toy"]["gen_sound_events-v1-full"]) == {"embed", "predict"}

    # the floor: evaluated last, its scores compared with every other run's; chance per task
    floor = rows[("logmel (floor)", "gen_sound_classes-v1-full", "top1_acc")]
    assert floor["status"] == "ok" and floor["below_floor"] == ""
    assert scene["floor"] == floor["score"]
    assert scene["below_floor"] == str(float(scene["score"]) < float(floor["score"])).lower()
    test = json.loads((tasks / "gen_sound_classes-v1-full" / "test.json").read_text())
    majority = max(Counter(labels[0] for labels in test.values()).values()) / len(test)
    assert float(scene["chance"]) == pytest.approx(majority, abs=1e-5)
    events = rows[("toy", "gen_sound_events-v1-full", "segment_1s_er")]
    assert events["chance"] == "1" and events["below_floor"] in ("true", "false")
    assert rows[("flaky", "gen_sound_events-v1-full", "segment_1s_er")]["below_floor"] == ""

    # resume: everything done is kept; only the failed step is tried again
    assert main(argv) == 1
    text = capsys.readouterr().out
    assert text.count("done before, kept") == 10 and text.count(" ...") == 1
    # another grid redoes the predictions (not the embeddings); no floor this time
    assert main(argv[:5] + argv[9:] + ["--grid", "faster", "--grid-points", "1",
                                       "--only", "gen_sound_classes-v1-full", "--no-floor"]) == 0
    text = capsys.readouterr().out
    assert "predictions were made with another grid" in text
    assert "embed   gen_sound_classes-v1-full: done before, kept" in text
    assert "floor" not in text and "| task | metric | toy | chance |" in text
