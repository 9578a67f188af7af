"""Generated corpora: the speech API, the effects, and the keyword task (format, speaker-disjoint
splits, determinism). Needs espeak-ng and sox (skipped otherwise); Festival is optional."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hear_suite.corpora import effects as fx
from hear_suite.corpora import speech, tools
from hear_suite.corpora.keywords import WORDS, KeywordConfig, build_keywords, plan_speakers
from hear_suite.tasks import load_wav, read_task

needs_tools = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox not installed (apt-get install espeak-ng sox)",
)
needs_festival = pytest.mark.skipif(
    shutil.which("text2wave") is None,
    reason="Festival not installed (apt-get install festival festvox-kallpc16k festvox-us-slt-hts)",
)

TINY = dict(words=("yes", "no", "sheila"), n_speakers=6, festival=False)


def _files(task):
    return {p.relative_to(task): p.read_bytes() for p in sorted(task.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_task(tmp_path_factory):
    return build_keywords(tmp_path_factory.mktemp("kw"), KeywordConfig(seed=0, **TINY),
                          workers=2, progress=False)


# ------------------------------------------------------------------------------- effects

def test_place_in_window_keeps_audio_and_length():
    rng = np.random.default_rng(0)
    word = np.ones(3000, np.float32)
    for _ in range(20):
        out, offset = fx.place_in_window(word, 16000, rng)
        assert out.shape == (16000,) and out.dtype == np.float32
        assert 0 <= offset <= 13000 and out[offset:offset + 3000].sum() == 3000 and out.sum() == 3000
    long, offset = fx.place_in_window(np.arange(20000, dtype=np.float32), 16000, rng)
    assert long.shape == (16000,) and offset == -2000 and long[0] == 2000


def test_noise_levels_and_colors():
    rng = np.random.default_rng(0)
    for color in fx.NOISE_COLORS:
        n = fx.colored_noise(16000, rng, color)
        assert n.dtype == np.float32 and abs(np.sqrt(np.mean(n ** 2)) - 1) < 1e-3
    low = lambda x: np.abs(np.fft.rfft(x))[1:200].mean() / np.abs(np.fft.rfft(x))[4000:].mean()
    assert low(fx.colored_noise(16000, rng, "brown")) > low(fx.colored_noise(16000, rng, "pink")) \
        > low(fx.colored_noise(16000, rng, "white"))
    t = np.arange(16000) / 16000
    tone = np.where((t > 0.3) & (t < 0.6), 0.1 * np.sin(2 * np.pi * 440 * t), 0).astype(np.float32)
    noisy = fx.add_noise(tone, 20.0, rng)
    snr = fx.active_rms_db(tone, 16000) - fx.rms_db(noisy - tone)
    assert abs(snr - 20.0) < 0.5


def test_trim_gain_limit():
    audio = np.zeros(16000, np.float32)
    audio[4000:8000] = 0.5
    trimmed = fx.trim_silence(audio, 16000, pad_ms=10)
    assert 4000 <= len(trimmed) <= 4000 + 2 * 160 + 160
    assert abs(fx.active_rms_db(fx.set_level(audio, 16000, -20.0), 16000) + 20.0) < 0.01
    assert np.abs(fx.limit_peak(audio * 4, 0.9)).max() == pytest.approx(0.9)


@needs_tools
def test_sox_effects_lengths():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    assert abs(len(fx.time_stretch(x, 16000, 1.25)) - 12800) < 100
    assert len(fx.fit_duration(x, 16000, 0.9)) <= 14400
    wet, params = fx.reverb(x, 16000, np.random.default_rng(1))
    assert wet.shape == x.shape and set(params) >= {"reverberance", "room_scale"}
    again, _ = fx.reverb(x, 16000, np.random.default_rng(1))
    assert np.array_equal(wet, again)


def test_missing_tool_names_the_package(monkeypatch):
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        speech.speak("yes", speech.Speaker("espeak", "en-us"))
    with pytest.raises(RuntimeError, match="apt-get install festival"):
        speech.require_tool("text2wave")


# -------------------------------------------------------------------------------- speech

@needs_tools
@pytest.mark.parametrize("speaker_id", ["espeak:en-us+m3", "espeak:en-gb-scotland", "espeak:de+f2",
                                        "espeak:cmn+klatt", "espeak:ru"])
def test_speak_espeak(speaker_id):
    spk = speech.Speaker.from_id(speaker_id)
    assert spk.id == speaker_id
    audio = speech.speak("seven", spk, sample_rate=16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    spoken = fx.trim_silence(audio, 16000)
    assert 0.2 < len(spoken) / 16000 < 1.0 and 0.05 < np.abs(audio).max() <= 1.0
    assert np.array_equal(audio, speech.speak("seven", spk, sample_rate=16000))
    slow = speech.speak("seven", spk, speed=0.7)
    assert len(fx.trim_silence(slow, 16000)) > len(spoken)


@needs_tools
def test_accent_mapping_keeps_every_sound():
    # Spanish has no "I" and no "3:": they must be replaced, not dropped or cut short.
    assert speech.accent_phonemes("six", "es") == "s'iks"
    assert speech.accent_phonemes("bird", "es") == "b'Erd"
    for voice in speech.ACCENT_VOICES:
        for word in ("visual", "sheila", "up"):
            audio = speech.speak(word, speech.Speaker("espeak", voice))
            assert len(fx.trim_silence(audio, 16000)) / 16000 > 0.15, (voice, word)


@needs_festival
def test_speak_festival():
    for voice in speech.FESTIVAL_VOICES:
        spk = speech.Speaker("festival", voice)
        audio = speech.speak("seven", spk, sample_rate=16000, pitch=2.0, speed=1.1)
        assert audio.dtype == np.float32 and 0.2 < len(fx.trim_silence(audio, 16000)) / 16000 < 1.0
        # no click from a trailing header: the end is quiet
        assert np.abs(audio[-160:]).max() < 0.05


@needs_tools
def test_list_speakers():
    speakers = speech.list_speakers(engines=("espeak",))
    ids = [s.id for s in speakers]
    assert len(ids) == len(set(ids)) > 1000
    assert "espeak:en-us+m3" in ids and all(s.engine == "espeak" for s in speakers)


# ------------------------------------------------------------------------------ keywords

@needs_tools
def test_keyword_task_format(tiny_task):
    task = read_task(tiny_task)
    assert task.metadata["task_name"] == "keywords" and task.is_scene and not task.is_multilabel
    assert task.metadata["sample_duration"] == 1.0 and task.metadata["evaluation"] == ["top1_acc"]
    assert task.splits == ["train", "valid", "test"] and task.sample_rate == 16000
    assert task.labels == sorted(TINY["words"])
    n = 0
    for split, examples in task.examples.items():
        assert examples, split
        for path, labels in examples.items():
            assert len(labels) == 1 and labels[0] in task.labels
            assert path.name.startswith(labels[0] + "_")
            audio = load_wav(path)
            assert audio.shape == (16000,)
            assert np.abs(audio).max() < 0.99  # peak-limited, never clipped
            n += 1
    assert n == (TINY["n_speakers"]) * len(TINY["words"])


@needs_tools
def test_keyword_splits_are_speaker_disjoint(tiny_task):
    speakers = json.loads((tiny_task / "speakers.json").read_text())
    per_split = {}
    for split in ("train", "valid", "test"):
        names = json.loads((tiny_task / f"{split}.json").read_text())
        assert set(names) <= set(speakers)
        per_split[split] = {speakers[name] for name in names}
        assert per_split[split], split
    assert not per_split["train"] & per_split["valid"]
    assert not per_split["train"] & per_split["test"]
    assert not per_split["valid"] & per_split["test"]
    assert len(speakers) == sum(len(json.loads((tiny_task / f"{s}.json").read_text()))
                                for s in ("train", "valid", "test"))


@needs_tools
def test_keyword_corpus_is_deterministic(tiny_task, tmp_path):
    # one worker instead of two: the bytes must not depend on scheduling
    same = build_keywords(tmp_path / "a", KeywordConfig(seed=0, **TINY), workers=1, progress=False)
    assert _files(same) == _files(tiny_task)
    other = build_keywords(tmp_path / "b", KeywordConfig(seed=1, **TINY), workers=1, progress=False)
    a, b = _files(tiny_task), _files(other)
    wavs = [k for k in a if k.suffix == ".wav"]
    assert a.keys() != b.keys() or any(a[k] != b[k] for k in wavs)


@needs_tools
def test_default_plan_is_full_size_and_stratified():
    plans = plan_speakers(KeywordConfig())
    espeak = [p for p in plans if p.speaker.engine == "espeak"]
    assert len(espeak) == 90 and len({p.id for p in plans}) == len(plans)
    counts = {s: sum(p.split == s for p in espeak) for s in ("train", "valid", "test")}
    assert counts == {"train": 62, "valid": 14, "test": 14}
    for split in ("valid", "test"):
        accented = sum(p.speaker.accented for p in espeak if p.split == split)
        assert 3 <= accented <= 7, (split, accented)
    assert all(p.split == "train" for p in plans if p.speaker.engine == "festival")
    female = [p.speaker.variant in speech.FEMALE_VARIANTS for p in espeak]
    assert 0.35 <= np.mean(female) <= 0.45
    assert len(WORDS) == 35


@needs_tools
def test_cli(tmp_path, capsys):
    from hear_suite.cli import main
    assert main(["make-corpus", "keywords", "--out", str(tmp_path), "--speakers", "3",
                 "--words", "yes,no", "--no-festival", "--quiet", "--workers", "1"]) == 0
    task = read_task(tmp_path / "keywords-v1-full")
    assert sum(len(e) for e in task.examples.values()) == 6
    assert "valid:" in capsys.readouterr().out
