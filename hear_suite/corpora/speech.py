"""Speech synthesis for generated corpora: many speakers, one function.

Two engines, both run as subprocesses:

- ``espeak``: espeak-ng (Debian package ``espeak-ng``). A speaker is a language voice plus a voice
  variant (timbre: ``m3``, ``f2``, ``klatt``, ``croak``, ...). English voices (``en-us``,
  ``en-gb-scotland``, ...) read the text with their own rules. Other languages' voices speak
  English *with an accent*: the text is transcribed to English phonemes (``espeak-ng -v en-us
  -x``), each phoneme is replaced by the nearest one that exists in that language's phoneme
  table (``3:`` -> ``Er``, ``T`` -> ``s``, ``w`` -> ``v``, ...), and the result is spoken as
  phoneme input ``[[...]]``. Reading English spelling with, say, Spanish rules instead would turn
  "eight" into "e-i-g-h-t"; substituting phonemes is what second-language speakers do.
- ``festival``: Festival's ``text2wave`` (Debian packages ``festival``, ``festvox-kallpc16k``,
  ``festvox-us-slt-hts``), voices ``kal_diphone`` and ``cmu_us_slt_arctic_hts``.

>>> spk = list_speakers(voices=["en-us"])[0]
>>> audio = speak("seven", spk, sample_rate=16000, pitch=2.0, speed=0.9)   # float32 (samples,)

Units everywhere: ``pitch`` in semitones relative to the voice's default, ``speed`` as a rate
factor (1.0 = the voice's default, 1.2 = 20 % faster), audio float32 mono in [-1, 1].
"""
from __future__ import annotations

import functools
import io
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from hear_suite.audio import resample
from hear_suite.corpora.effects import sox
from hear_suite.corpora.tools import have_tool, require_tool

ESPEAK, FESTIVAL = "espeak", "festival"

# English accents espeak-ng ships (read English text natively).
ENGLISH_VOICES: Tuple[str, ...] = (
    "en-us", "en-gb", "en-us-nyc", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
# Other languages' voices, used to speak English phonemes with their own phoneme inventory and
# prosody (see module docstring). Chosen for spread over language families; Vietnamese is left
# out (its checked tones cut short vowels: "up" came out 70 ms long).
ACCENT_VOICES: Tuple[str, ...] = (
    "de", "fr-fr", "es", "es-419", "it", "pt-br", "nl", "sv", "pl", "cs", "ru", "uk", "el",
    "tr", "fi", "hu", "ro", "hi", "ta", "bn", "ar", "fa", "cmn", "id", "sw", "ko", "ja",
)
# espeak-ng voice variants (files in espeak-ng-data/voices/!v). Left out: "fast" (a speed test),
# "Mr serious" (a space in the name).
ESPEAK_VARIANTS: Tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "croak",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "whisper", "whisperf", "grandma",
    "grandpa", "adam", "Alex", "Alicia", "Andrea", "Andy", "AnxiousAndy", "Annie", "antonio",
    "aunty", "belinda", "benjamin", "boris", "caleb", "david", "Denis", "Diogo", "ed", "edward",
    "edward2", "Gene", "Gene2", "gustave", "Henrique", "Hugo", "iven", "iven2", "iven3", "iven4",
    "Jacky", "john", "kaukovalta", "Lee", "linda", "marcelo", "Marco", "Mario", "max", "Michael",
    "michel", "miguel", "Mike", "norbert", "Nguyen", "pablo", "paul", "pedro", "quincy", "rob",
    "robert", "sandro", "shelby", "steph", "steph2", "steph3", "travis", "victor", "zac", "anika",
    "announcer", "Storm", "Tweaky", "Demonic", "RicishayMax", "RicishayMax2", "RicishayMax3",
    "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7",
    "robosoft8", "UniRobot", "anikaRobot",
)
# The variants espeak-ng lists as female (``espeak-ng --voices=variant``); the rest are male.
FEMALE_VARIANTS: Tuple[str, ...] = (
    "f1", "f2", "f3", "f4", "f5", "whisperf", "grandma", "Alicia", "Andrea", "Annie", "aunty",
    "belinda", "linda", "steph", "steph2", "steph3", "anika", "anikaRobot",
)
FESTIVAL_VOICES: Tuple[str, ...] = ("kal_diphone", "cmu_us_slt_arctic_hts")  # male, female

@dataclass(frozen=True, order=True)
class Speaker:
    """One synthetic speaker: ``(engine, voice, variant)``.

    ``voice`` is an espeak-ng language voice (``en-us``, ``de``) or a Festival voice name;
    ``variant`` an espeak-ng variant (``m3``; ``""`` = the voice's default) or, for Festival, a
    free label the caller gives meaning to (the keyword corpus uses it for a pitch preset).
    """

    engine: str
    voice: str
    variant: str = ""

    @property
    def id(self) -> str:
        """Stable string id, e.g. ``espeak:en-us+m3`` or ``festival:kal_diphone``."""
        return f"{self.engine}:{self.voice}" + (f"+{self.variant}" if self.variant else "")

    @property
    def accented(self) -> bool:
        """True for espeak voices of other languages (English spoken through phoneme mapping)."""
        return self.engine == ESPEAK and not self.voice.startswith("en")

    @classmethod
    def from_id(cls, speaker_id: str) -> "Speaker":
        engine, rest = speaker_id.split(":", 1)
        voice, _, variant = rest.partition("+")
        return cls(engine, voice, variant)


def list_speakers(
    *,
    engines: Sequence[str] = (ESPEAK, FESTIVAL),
    voices: Optional[Iterable[str]] = None,
    variants: Optional[Iterable[str]] = None,
    accents: bool = True,
) -> List[Speaker]:
    """All speakers the installed engines offer, sorted by id.

    ``voices``/``variants`` restrict espeak voices and variants (default: :data:`ENGLISH_VOICES`
    plus, when ``accents``, :data:`ACCENT_VOICES`; all of :data:`ESPEAK_VARIANTS` and the default
    variant ``""``). Festival contributes one speaker per installed voice (variant ``""``).
    Engines that are not installed are skipped silently; use :func:`require_tool` to insist.
    """
    out: List[Speaker] = []
    if ESPEAK in engines and have_tool("espeak-ng"):
        vs = list(voices) if voices is not None else list(ENGLISH_VOICES) + (list(ACCENT_VOICES) if accents else [])
        vars_ = list(variants) if variants is not None else [""] + list(ESPEAK_VARIANTS)
        out += [Speaker(ESPEAK, v, var) for v in vs for var in vars_]
    if FESTIVAL in engines and have_tool("text2wave"):
        installed = _festival_voices()
        wanted = [v for v in (voices if voices is not None else FESTIVAL_VOICES) if v in installed]
        out += [Speaker(FESTIVAL, v) for v in wanted]
    return sorted(out)


def speak(
    text: str,
    speaker: Speaker,
    *,
    sample_rate: int = 16000,
    pitch: Optional[float] = None,
    speed: Optional[float] = None,
    rng: Optional[np.random.Generator] = None,
) -> np.ndarray:
    """Synthesise ``text`` with ``speaker``; float32 mono of shape (samples,) at ``sample_rate``.

    Final punctuation sets the intonation: ``"yes?"`` rises, ``"yes!"`` is emphatic. Accented
    voices speak phonemes, so other punctuation there makes no pauses.

    ``pitch``: semitones relative to the voice's default (espeak reaches about -6..+8; Festival
    is shifted with sox, keep it within +-6). ``speed``: rate factor, about 0.5..2.5. Either left
    as ``None`` is 0 / 1.0, or drawn uniformly from +-2 semitones / 0.85..1.15 when ``rng`` is
    given. Deterministic: the same arguments give the same samples. Leading and trailing
    silence is kept as the engine produced it (see :func:`effects.trim_silence`).
    """
    if pitch is None:
        pitch = float(rng.uniform(-2.0, 2.0)) if rng is not None else 0.0
    if speed is None:
        speed = float(rng.uniform(0.85, 1.15)) if rng is not None else 1.0
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if speaker.engine == ESPEAK:
        audio, sr = _espeak(text, speaker, pitch, speed)
    elif speaker.engine == FESTIVAL:
        audio, sr = _festival(text, speaker, pitch, speed)
    else:
        raise ValueError(f"unknown engine {speaker.engine!r} (expected {ESPEAK!r} or {FESTIVAL!r})")
    return resample(audio, sr, sample_rate)


# ----------------------------------------------------------------------------------- espeak-ng

def _run(cmd: List[str], stdin: Optional[bytes] = None) -> bytes:
    proc = subprocess.run(cmd, input=stdin, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def _decode_wav(data: bytes) -> Tuple[np.ndarray, int]:
    """Decode a wav written to a pipe, where the writer could not seek back to fill in the sizes
    (espeak-ng leaves a placeholder): 16-bit PCM is parsed by hand, taking the declared data size
    only when it fits."""
    i, j = data.find(b"fmt "), data.find(b"data")
    if data[:4] == b"RIFF" and i >= 0 and j > i:
        channels, sr, _, _, bits = (int(v) for v in np.frombuffer(data[i + 10:i + 24], "<u2,<u4,<u4,<u2,<u2")[0])
        if bits == 16:
            body = data[j + 8:]
            declared = int(np.frombuffer(data[j + 4:j + 8], "<u4")[0])
            if 0 < declared <= len(body):
                body = body[:declared]
            pcm = np.frombuffer(body[:len(body) - len(body) % (2 * channels)], "<i2")
            return pcm.reshape(-1, channels).mean(axis=1).astype(np.float32) / 32768.0, int(sr)
    audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio.mean(axis=1), sr


def espeak_pitch_value(semitones: float) -> int:
    """espeak-ng ``-p`` (0..99, default 50) giving roughly ``semitones`` above the voice's default.

    Measured on en-us, en-us+f3 and de: F0 ratio about 0.70 at -p 0, 1.28 at 75, 1.67 at 99.
    """
    per_unit = 0.175 if semitones >= 0 else 0.125
    return int(np.clip(round(50 + semitones / per_unit), 0, 99))


def _espeak(text: str, speaker: Speaker, pitch: float, speed: float) -> Tuple[np.ndarray, int]:
    exe = require_tool("espeak-ng")
    voice = speaker.voice + (f"+{speaker.variant}" if speaker.variant else "")
    if speaker.accented:  # keep final punctuation outside [[ ]]: "?" rises, "!" stresses
        final = re.search(r"[.?!]*\s*$", text).group(0).strip()
        text = "[[" + accent_phonemes(text, speaker.voice) + "]]" + final
    wpm = int(np.clip(round(175 * speed), 80, 450))
    data = _run([exe, "-v", voice, "-p", str(espeak_pitch_value(pitch)), "-s", str(wpm),
                 "--stdout", "-z", text])
    return _decode_wav(data)


# English phoneme (espeak-ng mnemonics) -> substitutes to try, best first, in another language's
# phoneme table. The first that exists there is used; "" drops the phoneme.
_SUBSTITUTES: Dict[str, Tuple[str, ...]] = {
    "3:": ("3:", "Er", "@r", "E"), "3": ("3", "@r", "Er", "@", "E"), "@r": ("@r", "Er", "@"),
    "0": ("0", "O", "o", "A", "a"), "O2": ("O2", "O", "o"), "O:": ("O:", "O", "o"),
    "O@": ("O@", "Or", "O", "o"), "o@": ("o@", "or", "o", "O"), "A@": ("A@", "ar", "a:", "a"),
    "A:": ("A:", "a:", "a"), "e@": ("e@", "Er", "E"), "i@": ("i@", "i", "I"), "i@3": ("i@3", "i@", "i"),
    "U@": ("U@", "u", "U"), "aI@": ("aI@", "aI", "ai", "a"), "aU@": ("aU@", "aU", "au", "a"),
    "@L": ("@L", "@l", "l"), "@5": ("@5", "@", "u"), "@2": ("@2", "@", "e"), "a#": ("a#", "@", "a"),
    "aU": ("aU", "au", "a"), "eI": ("eI", "ei", "e:", "e", "E"), "oU": ("oU", "ou", "o:", "o", "O"),
    "aI": ("aI", "ai", "a"), "OI": ("OI", "oi", "O"), "i:": ("i:", "i", "I"), "u:": ("u:", "u", "U"),
    "I": ("I", "i"), "I2": ("I2", "I", "i"), "i": ("i", "I"), "U": ("U", "u"),
    "V": ("V", "a", "@", "A", "o"), "E": ("E", "e"), "a": ("a", "&", "A", "E"),
    "@": ("@", "a#", "e", "E", "a"), "T": ("T", "s", "t"), "D": ("D", "z", "d"), "S": ("S", "s"),
    "Z": ("Z", "S", "z", "j"), "tS": ("tS", "ts", "S"), "dZ": ("dZ", "Z", "j"),
    "j": ("j", "i"), "w": ("w", "u", "v"), "r": ("r", "R", "*"), "h": ("h", "x", ""),
    "z": ("z", "s"), "v": ("v", "w", "f", "b"), "N": ("N", "n"), "t2": ("t2", "t"), "t#": ("t#", "t"),
    "d#": ("d#", "d"), "n-": ("n-", "n"), "l-": ("l-", "l"), "m-": ("m-", "m"), "r-": ("r-", "r", "R"),
    "?": ("?", ""),
}
_PLAIN = tuple("pbtdkgfvszmnlrhwj")
_ENGLISH_PHONEMES = sorted(set(_SUBSTITUTES) | set(_PLAIN), key=len, reverse=True)
_PROSODY = ("'", ",", "%", "=")


def english_phonemes(text: str, source_voice: str = "en-us") -> List[str]:
    """espeak-ng's English transcription of ``text``: one phoneme string per word."""
    out = _run([require_tool("espeak-ng"), "-v", source_voice, "-x", "-q", text]).decode()
    words = []
    for word in out.split():
        word = re.sub(r"\([a-z-]+\)", "", word)  # language-switch marks like (en)
        if word:
            words.append(word)
    return words


def accent_phonemes(text: str, voice: str, source_voice: str = "en-us") -> str:
    """Phoneme input (without ``[[ ]]``) that makes espeak ``voice`` say English ``text``.

    Each English phoneme becomes the first of its substitutes that ``voice``'s phoneme table
    knows (see :func:`voice_has_phoneme`); stress marks are kept.
    """
    words = []
    for word in english_phonemes(text, source_voice):
        out, i = [], 0
        while i < len(word):
            ch = word[i]
            if ch in _PROSODY or ch == "_":
                out.append(ch)
                i += 1
                continue
            ph = next((p for p in _ENGLISH_PHONEMES if word.startswith(p, i)), ch)
            i += len(ph)
            for cand in _SUBSTITUTES.get(ph, (ph,)):
                if cand == "" or voice_has_phoneme(voice, cand):
                    out.append(cand)
                    break
        words.append("".join(out))
    return " ".join(words)


@functools.lru_cache(maxsize=None)
def _phoneme_table(voice: str) -> frozenset:
    """Which candidate phonemes espeak ``voice`` accepts, probed in one espeak-ng call.

    espeak-ng stops a phoneme word at the first mnemonic its table lacks, so an unknown X comes
    back cut short. Each candidate X is sent in two carriers, ``taXta`` and ``mXm``, and must
    survive both: one carrier alone can fake it by forming a longer mnemonic with X (Spanish
    has no ``I`` but reads ``taIta`` as ``t aI t a``).
    """
    cands = sorted({c for subs in _SUBSTITUTES.values() for c in subs if c} | set(_PLAIN))
    known = set()
    for i in range(0, len(cands), 16):  # espeak-ng reads only so much phoneme input at once
        chunk = cands[i:i + 16]
        probe = " ".join(["tata"] + [f"ta{c}ta m{c}m" for c in chunk])
        out = _run([require_tool("espeak-ng"), "-v", voice, "-x", "-q", f"[[{probe}]]"]).decode()
        got = [re.sub(r"[0-9'#,_|%=:;]", "", w) for w in out.split()]
        if len(got) != 2 * len(chunk) + 1 or len(got[0]) < 4:
            raise RuntimeError(f"espeak-ng voice {voice!r}: unexpected phoneme echo {out!r}")
        # The voice may rewrite the carrier (ru, uk: "tAtA"); its echo of "tata" tells how. X
        # must add something: in tone languages (vi) "3" is a tone mark, stripped like stress.
        tail = got[0][len(got[0]) // 2:]
        known.update(c for c, g1, g2 in zip(chunk, got[1::2], got[2::2])
                     if len(g1) > len(got[0]) and g1.endswith(tail) and len(g2) > 2 and g2.endswith("m"))
    return frozenset(known)


def voice_has_phoneme(voice: str, phoneme: str) -> bool:
    """Whether espeak-ng ``voice``'s phoneme table accepts the mnemonic ``phoneme``."""
    return phoneme in _phoneme_table(voice)


# ------------------------------------------------------------------------------------ Festival

@functools.lru_cache(maxsize=None)
def _festival_voices() -> frozenset:
    """Festival voices installed (directory names under /usr/share/festival/voices/*/)."""
    import glob
    return frozenset(os.path.basename(p) for p in glob.glob("/usr/share/festival/voices/*/*"))


def _festival(text: str, speaker: Speaker, pitch: float, speed: float) -> Tuple[np.ndarray, int]:
    exe = require_tool("text2wave")
    evals = [f"(voice_{speaker.voice})"]
    if "hts" in speaker.voice:  # HTS engine: -r is its speech-rate factor
        evals.append(f"(set! hts_engine_params (append hts_engine_params (list (list \"-r\" {speed:.4f}))))")
    else:
        evals.append(f"(Parameter.set 'Duration_Stretch {1.0 / speed:.4f})")
    # text2wave writes to a file: on a pipe it appends a second header after the samples.
    with tempfile.TemporaryDirectory(prefix="hear-festival-") as tmp:
        wav = os.path.join(tmp, "out.wav")
        cmd = [exe, "-o", wav]
        for e in evals:
            cmd += ["-eval", e]
        _run(cmd, stdin=text.encode() + b"\n")  # read as a text file: quotes, parens are text
        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
    if abs(pitch) > 1e-3:
        audio = _sox_pitch(audio, sr, pitch)
    return audio, sr


def _sox_pitch(audio: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    return sox(audio, sample_rate, ["pitch", f"{100 * semitones:.1f}"])
