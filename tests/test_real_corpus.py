"""``hear-suite make-corpus real``: HEAR tasks of real recordings from Debian packages, split by
source. The Debian packages are installed by scripts/setup.sh; without them the corpus tests are
skipped (the missing-package error itself is tested without them)."""
from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest

from hear_suite.corpora import real, real_sources
from hear_suite.tasks import load_wav, read_task

installed = all(Path(p).is_dir() for p in (
    "/usr/share/klettres", "/usr/share/hydrogen/data/drumkits", "/usr/share/sounds/sf3",
    "/usr/share/asterisk/sounds/fr_CA_f_June", "/usr/share/games/colobot"))
needs_packages = pytest.mark.skipif(
    not installed, reason="the real corpus's Debian packages are not installed (scripts/setup.sh)")

SCALE = 0.05


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    written = real.build_real(root, real.RealConfig(seed=0, scale=SCALE), progress=False)
    return root, written


def _files(task: Path):
    return {p.relative_to(task): p.read_bytes() for p in sorted(task.rglob("*")) if p.is_file()}


@needs_packages
def test_four_tasks_and_their_union(corpus):
    root, written = corpus
    names = [p.name for p in written]
    assert names == [f"{t}-v1-full" for t in real.TASKS] + ["real_multitask-v1-full"]
    expected = {"real_speaker_id": (set(real_sources.SPEAKERS), 3.0),
                "real_drum_pieces": (set(real_sources.DRUM_CLASSES), 1.0),
                "real_sound_kinds": ({"speech", "drums", "instrument", "music", "desktop_sound",
                                      "game_effect"}, 4.0)}
    for path in written[:4]:
        task = read_task(path)
        meta = task.metadata
        assert meta["embedding_type"] == "scene" and meta["split_mode"] == "trainvaltest"
        if meta["task_name"] in expected:
            labels, seconds = expected[meta["task_name"]]
            assert set(task.labels) == labels and meta["sample_duration"] == seconds
        else:  # pitch: the whole vocabulary, index = pitch - 48
            assert task.labels == [str(p) for p in range(48, 84)]
            assert meta["evaluation"] == ["pitch_acc", "chroma_acc"]
        for split in task.splits:
            assert task.examples[split], (path.name, split)
            for wav in list(task.examples[split])[:5]:
                audio = load_wav(wav)
                assert len(audio) == round(meta["sample_duration"] * 16000)
                assert 0.05 < np.abs(audio).max() <= 1.0  # never silent, never clipped
    union = read_task(written[4])
    assert union.is_multilabel
    # the union holds the training tasks only: the speaker task is evaluation-only
    n_clips = sum(len(read_task(p).examples[s]) for p in written[1:4] for s in ("train", "valid", "test"))
    assert sum(len(e) for e in union.examples.values()) == n_clips
    assert {label.split(":")[0] for label in union.labels} == {"pitch", "drum", "kind"}


@needs_packages
def test_test_sources_are_unseen(corpus):
    """Every task's test clips come from sources (speakers, kits, programs, packages) that give
    no train or valid clip; train and valid share sources (valid is drawn from them)."""
    _, written = corpus
    for path in written[1:4]:
        sources = read_task(path).metadata["sources"]
        by_split = collections.defaultdict(set)
        for s in sources:
            by_split[s["split"]].add(s["source"])
        assert by_split["test"] and by_split["train"]
        assert not by_split["test"] & (by_split["train"] | by_split["valid"]), path.name
        # every class of the test split has training examples (pitch: at full scale only)
        task = read_task(path)
        if task.metadata["task_name"] == "real_instrument_pitch":
            continue
        train_labels = {l for v in task.examples["train"].values() for l in v}
        assert {l for v in task.examples["test"].values() for l in v} <= train_labels


@needs_packages
def test_speaker_task_is_evaluation_only(corpus):
    """real_speaker_id splits by utterance (every speaker in every split) and none of its
    speakers' recordings reach the training union or the pool."""
    root, written = corpus
    task = read_task(written[0])
    for split in task.splits:
        assert {l for v in task.examples[split].values() for l in v} == set(real_sources.SPEAKERS)
    speaker_sources = {s["source"] for s in task.metadata["sources"]}
    for path in written[1:4]:
        assert not speaker_sources & {s["source"] for s in read_task(path).metadata["sources"]}
    assert not (root / "real_pool" / written[0].name).exists()
    assert not any(p.name.startswith("speaker-")
                   for p in (written[4] / "16000").rglob("*.wav"))


@needs_packages
def test_pool_has_no_test_audio(corpus):
    root, written = corpus
    pool = root / "real_pool"
    for path in written[1:4]:
        task = read_task(path)
        for split in ("train", "valid", "test"):
            stems = {p.name for p in task.examples[split]}
            pooled = {p.name for p in (pool / path.name / split).glob("*.wav")}
            assert pooled == (set() if split == "test" else stems)


@needs_packages
def test_same_seed_same_bytes(corpus, tmp_path):
    root, _ = corpus
    config = real.RealConfig(seed=0, scale=SCALE, tasks=("real_drum_pieces",))
    again = real.build_real(tmp_path, config, progress=False)[0]
    assert _files(again) == _files(root / again.name)
    other = real.build_real(tmp_path / "s1", real.RealConfig(seed=1, scale=SCALE,
                                                             tasks=("real_drum_pieces",)),
                            progress=False)[0]
    assert _files(other) != _files(again)


@needs_packages
def test_scale_sets_the_size(corpus, tmp_path):
    root, _ = corpus
    small = json.loads((root / "real_drum_pieces-v1-full" / "test.json").read_text())
    bigger = real.build_real(tmp_path, real.RealConfig(seed=0, scale=2 * SCALE,
                                                       tasks=("real_drum_pieces",)),
                             progress=False)[0]
    assert len(json.loads((bigger / "test.json").read_text())) > len(small)


def test_missing_package_is_named(tmp_path):
    config = real.RealConfig(root=str(tmp_path), tasks=("real_drum_pieces",))
    with pytest.raises(real.MissingPackage, match="hydrogen-drumkits"):
        real.build_real(tmp_path / "out", config, progress=False)
    (tmp_path / "usr/share/hydrogen/data/drumkits").mkdir(parents=True)
    with pytest.raises(real.MissingPackage, match="lmms-common"):
        real.build_real(tmp_path / "out", config, progress=False)
    assert not (tmp_path / "out" / "real_drum_pieces-v1-full").exists()


def test_unknown_task_and_bad_scale(tmp_path, capsys):
    from hear_suite.cli import main

    with pytest.raises(ValueError, match="unknown real task"):
        real.plan_clips(real.RealConfig(tasks=("real_birdsong",)))
    with pytest.raises(SystemExit, match="--scale"):
        main(["make-corpus", "real", "--out", str(tmp_path), "--scale", "0"])


@pytest.mark.parametrize("name, label", [
    ("Kick (Tama Superstar 22\")", "kick"), ("BassDrum", "kick"), ("c3 - bass drum 1", "kick"),
    ("bassdrum_acoustic01", "kick"), ("Snare Rimshot", "snare"), ("Hi-Hat Closed", "hihat"),
    ("Closed HH", "hihat"), ("hihat_foot_pedal01", "hihat"), ("Sabian Hat Pedal", "hihat"),
    ("Tom Low", "tom"), ("Floor Tom", "tom"), ("Paiste Ride", "cymbal"),
    ("Zildjian Splash", "cymbal"), ("crash20inch--2", "cymbal"), ("Hand Clap", "clap"),
    ("Stick", None), ("Cowbell", None), ("Djembe1 Slap", None),
])
def test_drum_class(name, label):
    assert real_sources.drum_class(name) == label


def test_program_splits_cover_every_family():
    splits = real_sources.program_splits(real.RealConfig(seed=0))
    assert sorted(splits) == list(range(112))
    for family in range(0, 112, 8):
        counts = collections.Counter(splits[p] for p in range(family, family + 8))
        assert counts == {"train": 5, "valid": 1, "test": 2}
    assert splits != real_sources.program_splits(real.RealConfig(seed=1))


# ------------------------------------------------------------------------------- union

def test_loudest_window_keeps_the_event():
    from hear_suite.corpora.union import loudest_window

    audio = np.zeros(64000, np.float32)
    audio[50000:50800] = 0.5                     # a 50 ms hit at 3.1 s of a 4 s clip
    crop = loudest_window(audio, 16000, 16000)
    assert len(crop) == 16000 and np.abs(crop).sum() == pytest.approx(0.5 * 800)
    assert len(loudest_window(audio[:1000], 16000, 16000)) == 16000       # padded
    edge = np.zeros(64000, np.float32)
    edge[-100:] = 1.0
    assert loudest_window(edge, 16000, 16000)[-100:].sum() == 100          # kept inside


@needs_packages
def test_multiclass_union(corpus, tmp_path):
    from hear_suite.corpora.union import merge_tasks

    _, written = corpus
    union = merge_tasks(tmp_path, [written[0], written[2]], task_name="u", seconds=1.0,
                        multiclass=True)
    task = read_task(union)
    assert not task.is_multilabel and task.metadata["sample_duration"] == 1.0
    assert {l.split(":")[0] for l in task.labels} == {"speaker", "drum"}
    for split in task.splits:
        assert len(task.examples[split]) == (len(read_task(written[0]).examples[split])
                                             + len(read_task(written[2]).examples[split]))
    with pytest.raises(ValueError, match="multilabel"):
        merge_tasks(tmp_path, [written[4]], task_name="v", seconds=1.0, multiclass=True)
    with pytest.raises(ValueError, match="same label set"):
        merge_tasks(tmp_path, [written[0], written[0]], task_name="w", seconds=1.0)
