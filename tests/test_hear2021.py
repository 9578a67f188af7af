"""The HEAR 2021 replica suite (`hear-suite make-tasks --suite hear2021`): the 20 directories of
eval_configs/hear2021.yaml, their metadata equal to the facts table eval_configs/hear2021.md,
read by heareval's own loaders (48 kHz audio, resampled on the fly for 16 kHz models), and a
tiny end-to-end `hear-suite eval` over all 20 with one model."""
import csv
import json
import re
from pathlib import Path

import pytest
import soundfile as sf

from hear_suite.taskgen import make_tasks
from hear_suite.taskgen.hear2021 import suite as hear2021
from hear_suite.evaluation.config import load_config

REPO = Path(__file__).resolve().parent.parent
FACTS = REPO / "eval_configs" / "hear2021.md"
CONFIG = REPO / "eval_configs" / "hear2021.yaml"
CAP = 2.0  # seconds: the tests cap clip lengths (real lengths: the full run in results/)


def _facts_table():
    """The main table of eval_configs/hear2021.md as {directory: row dict}."""
    lines = FACTS.read_text().split("## Main table", 1)[1].split("\n## ", 1)[0].splitlines()
    rows = [ln for ln in lines if ln.startswith("| ") and "`" in ln]
    header = [c.strip() for c in next(ln for ln in lines if ln.startswith("| #")).strip("|").split("|")]
    table, previous = {}, None
    for line in rows:
        cells = dict(zip(header, (c.strip() for c in line.strip().strip("|").split("|"))))
        evaluation = cells["evaluation in P (primary first)"]
        # "as fold0 (config is a copy)": the row above's list
        cells["metrics"] = previous if evaluation.startswith("as ") else \
            [m.strip() for m in evaluation.split(",")]
        previous = cells["metrics"]
        table[cells["directory"].strip("`")] = cells
    return table


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("hear2021")
    paths = make_tasks.make_suite(root, suite="hear2021", scale=0.01, max_seconds=CAP,
                                  log=lambda s: None)
    return root, paths


def test_facts_table_is_the_replica_spec():
    """Every row of the facts table, field by field, is what the replica writes."""
    table = _facts_table()
    assert len(table) == 20 and set(table) == set(hear2021.TASKS)
    emb = {"S": "scene", "E": "event"}
    pred = {"C": "multiclass", "L": "multilabel"}
    split = {"TVT": "trainvaltest", "PK": "presplit_kfold", "NK": "new_split_kfold"}
    for name, row in table.items():
        meta = hear2021.TASKS[name].metadata()
        assert (meta["task_name"], meta["version"], meta["mode"]) == \
            (row["task_name"], row["version"], row["mode"]), name
        assert meta["embedding_type"] == emb[row["emb"]] and meta["prediction_type"] == pred[row["pred"]]
        mode, _, folds = row["split"].partition(" ×")
        assert meta["split_mode"] == split[mode], name
        assert meta.get("nfolds") == (int(folds) if folds else None), name
        assert len(meta["splits"]) == (int(folds) if folds else 3)
        duration = None if row["dur (s)"] == "null" else float(row["dur (s)"])
        assert meta["sample_duration"] == duration, name
        assert meta["evaluation"] == row["metrics"], name
        vocab = int(re.search(r"\d+", row["vocab"]).group())  # "11 [D]", "≤ 88 (...)", "≈302"
        assert len(hear2021.TASKS[name].labels) == vocab, name
        clips = int(re.search(r"\d+", row["clips total [W]"]).group())  # "576 (both dirs)"
        assert hear2021.TASKS[name].real_clips == clips, name


def test_directories_are_the_eval_config(tmp_path):
    config = load_config(CONFIG)
    assert [t.dir for t in config.tasks] == list(hear2021.TASKS)
    for t in config.tasks:  # the config's primary metric is the task's
        assert t.metrics[0] == hear2021.TASKS[t.dir].evaluation[0]
    assert [s.dir_name for s in make_tasks.SUITES["hear2021"]] == list(hear2021.TASKS)


def test_replica_on_disk(tiny_suite):
    """Names, metadata, vocabularies, splits and folds, 48 kHz audio of the (capped) length."""
    root, paths = tiny_suite
    assert sorted(p.name for p in root.iterdir()) == sorted(hear2021.TASKS)
    for path in paths:
        spec = hear2021.TASKS[path.name]
        meta = json.loads((path / "task_metadata.json").read_text())
        expected = spec.metadata()
        capped = None if spec.sample_duration is None else min(spec.sample_duration, CAP)
        for key, value in expected.items():
            assert meta[key] == (capped if key == "sample_duration" else value), (path.name, key)
        vocab = list(csv.DictReader((path / "labelvocabulary.csv").open()))
        assert [int(r["idx"]) for r in vocab] == list(range(len(spec.labels)))
        assert {r["label"] for r in vocab} == set(spec.labels)
        assert [d.name for d in path.iterdir() if d.is_dir()] == ["48000"]
        for split in meta["splits"]:
            entries = json.loads((path / f"{split}.json").read_text())
            assert entries, (path.name, split)
            for name, labels in list(entries.items())[:3]:
                info = sf.info(str(path / "48000" / split / name))
                assert (info.samplerate, info.channels, info.subtype) == (48000, 1, "PCM_16")
                if capped is not None:
                    assert info.frames == round(capped * 48000)
                if meta["embedding_type"] == "event":
                    assert labels and all(0 <= e["start"] < e["end"] <= 1000 * capped for e in labels)
                else:
                    assert all(label in spec.labels for label in labels)
    # MIDI pitches in pitch order (as hear-preprocess's numbers), so chroma = index mod 12
    nsynth = list(csv.DictReader((root / "nsynth_pitch-v2.2.3-5h" / "labelvocabulary.csv").open()))
    assert [r["label"] for r in nsynth[:2]] == ["21", "22"] and nsynth[-1]["label"] == "108"
    assert len({(int(r["label"]) - int(r["idx"])) % 12 for r in nsynth}) == 1
    # the two mridangam tasks are the same clips, labelled by stroke and by tonic
    a, b = root / "mridangam_stroke-v1.5-full", root / "mridangam_tonic-v1.5-full"
    assert (a / "48000/fold00/fold00_00000.wav").read_bytes() == (b / "48000/fold00/fold00_00000.wav").read_bytes()
    # FSD50K: variable length, from 0.3 s (to 30 s, here the cap)
    fsd = root / "fsd50k-v1.0-full" / "48000" / "train"
    lengths = sorted(sf.info(str(p)).duration for p in fsd.glob("*.wav"))
    assert lengths[0] == pytest.approx(0.3) and lengths[-1] == pytest.approx(CAP)


def test_real_lengths_and_counts(tmp_path):
    """At scale 1 the clip counts follow the real task where it is small (gunshots: 4
    microphones x 22 shots in folds of 16 and 12) and the clips have the real length."""
    (gun,) = make_tasks.make_suite(tmp_path, suite="hear2021", only=["gunshot_triangulation"],
                                   sample_rates=(16000,), log=lambda s: None)
    sizes = [len(json.loads((gun / f"fold{i:02d}.json").read_text())) for i in range(7)]
    assert sizes == [16] + [12] * 6
    fold = json.loads((gun / "fold00.json").read_text())
    assert [fold[f"fold00_{i:05d}.wav"] for i in range(4)] == [["mic1"], ["mic2"], ["mic3"], ["mic4"]]
    assert {sf.info(str(p)).frames for p in (gun / "16000").rglob("*.wav")} == {24000}  # 1.5 s
    # the same seed writes the same bytes; another seed other audio
    again = make_tasks.make_suite(tmp_path / "again", suite="hear2021", only=["gunshot_triangulation"],
                                  sample_rates=(16000,), log=lambda s: None)[0]
    other = make_tasks.make_suite(tmp_path / "other", suite="hear2021", only=["gunshot_triangulation"],
                                  sample_rates=(16000,), seed=1, log=lambda s: None)[0]
    wav = "16000/fold03/fold03_00005.wav"
    assert (gun / wav).read_bytes() == (again / wav).read_bytes() != (other / wav).read_bytes()
    plan = hear2021.plan(hear2021.TASKS["beehive_states_fold0-v2-full"], scale=1, seed=0)
    assert [c.seconds for c in plan] == [600.0] * 6  # 10-minute clips, 2 per split


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown HEAR 2021 task directory"):
        hear2021.write_task(tmp_path, task="esc50", scale=1, seed=0, sample_rate=48000)
    with pytest.raises(ValueError, match="hear2021 suite only"):
        make_tasks.make_suite(tmp_path, suite="ci", max_seconds=2, log=lambda s: None)
    with pytest.raises(ValueError, match="16000/22050/32000/44100/48000"):
        make_tasks.make_suite(tmp_path, suite="hear2021", sample_rates=(8000,), log=lambda s: None)
    with pytest.raises(ValueError, match="scale must be > 0"):
        hear2021.scaled_counts(hear2021.TASKS["esc50-v2.0.0-full"], 0)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_heareval_reads_the_replica(tiny_suite, tmp_path):
    """heareval's embedding step reads every replica (48 kHz only) for a 16 kHz plugin through
    the resampling loader, and its prediction step's loaders accept the result: vocabulary,
    metrics, splits or folds (3, 5, 7 and 10), per-frame event labels."""
    pytest.importorskip("heareval")
    from hear_suite.evaluation.heareval_compat import import_embeddings_runner, patch_missing_sample_rate
    import_embeddings_runner()
    patch_missing_sample_rate()
    from heareval.embeddings.task_embeddings import Embedding, task_embeddings
    import heareval.predictions.task_predictions as tp
    from heareval.score import available_scores, label_vocab_as_dict

    root, paths = tiny_suite
    embedding = Embedding("plugins.toy_plugin")
    folds = set()
    for path in paths:
        meta = json.loads((path / "task_metadata.json").read_text())
        emb_dir = tmp_path / path.name
        task_embeddings(embedding, path, emb_dir)
        vocab, nlabels = tp.label_vocab_nlabels(emb_dir)
        assert nlabels == len(hear2021.TASKS[path.name].labels)
        label_to_idx = label_vocab_as_dict(vocab, key="label", value="idx")
        for metric in meta["evaluation"]:
            available_scores[metric](label_to_idx=label_to_idx)
        splits = tp.get_splits_from_metadata(meta)
        folds.add(len(splits))
        for name in meta["splits"]:
            ds = tp.SplitMemmapDataset(emb_dir, label_to_idx, nlabels, name, meta["embedding_type"],
                                       in_memory=True, metadata=True)
            assert len(ds) > 0
            if meta["embedding_type"] == "scene" and meta["sample_duration"]:
                assert ds.embeddings.shape == (len(json.loads((path / f"{name}.json").read_text())), 64)
    assert folds == {1, 3, 5, 7, 10}


def test_hear_suite_eval_over_the_replica(tiny_suite, tmp_path, capsys):
    """`hear-suite eval --config eval_configs/hear2021.yaml` with hear_suite.kwmlp over all 20
    replica directories (a one-probe grid of few epochs): a score for every task and metric of
    the config, and the cost of each step (seconds, peak memory) in results.json."""
    pytest.importorskip("heareval")
    from hear_suite.cli import main

    root, _ = tiny_suite
    config = tmp_path / "hear2021_tiny.yaml"
    config.write_text(CONFIG.read_text() + "grids:\n  tiny:\n"
                      "    scene: {hidden_layers: [1], hidden_dim: [64], lr: [3.2e-3], max_epochs: [6],"
                      " check_val_every_n_epoch: [3], patience: [1]}\n"
                      "    event: {hidden_layers: [1], hidden_dim: [64], lr: [1e-3], max_epochs: [2],"
                      " check_val_every_n_epoch: [1], patience: [1]}\n")
    out = tmp_path / "eval"
    assert main(["eval", "--module", "hear_suite.kwmlp", "--config", str(config), "--tasks-dir",
                 str(root), "--out", str(out), "--grid", "tiny", "--no-floor", "--no-png"]) == 0
    printed = capsys.readouterr().out
    assert "no 16000/ audio: split fold00 resampled from 48000/ on the fly" in printed
    table = list(csv.DictReader((out / "results.csv").open()))
    expected = {(t.dir, m) for t in load_config(CONFIG).tasks for m in t.metrics}
    assert {(r["task"], r["metric"]) for r in table} == expected
    assert all(r["status"] == "ok" and r["score"] != "" for r in table)
    folds = {r["task"]: int(r["folds"]) for r in table}
    assert folds["tfds_gtzan-1.0.0-full"] == 10 and folds["gunshot_triangulation-v1.0-full"] == 7
    assert folds["vocal_imitation-v1.1.3-full"] == 3 and folds["esc50-v2.0.0-full"] == 5
    results = json.loads((out / "results.json").read_text())
    seconds, cost = results["seconds"]["hear_suite.kwmlp"], results["cost"]["hear_suite.kwmlp"]
    assert set(seconds) == set(cost) == set(hear2021.TASKS)
    for task in hear2021.TASKS:
        assert set(seconds[task]) == set(cost[task]) == {"embed", "predict"}
        for step in cost[task].values():
            assert step["peak_rss_mb"] >= step["rss_start_mb"] > 0 and step["cpu_seconds"] > 0
