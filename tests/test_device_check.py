"""benchmarks/device_check.py (scripts/device_check.sh) on the CPU in a tiny configuration: a row
per model in every table, parity reported as skipped, the report written atomically where asked.
The CUDA measurements themselves need a GPU: they run in the device check, not here."""
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import device_check  # noqa: E402

from hear_suite.checkpoint import default_weights  # noqa: E402
from hear_suite.registry import MODELS  # noqa: E402

TINY = ["--short", "--device", "cpu", "--models", "kwmlp", "logmel", "--batch", "2",
        "--clip-seconds", "2", "--long-seconds", "10", "--repeats", "1"]


def rows(text: str, label: str):
    return [line for line in text.splitlines() if line.startswith(f"| {label} |")]


def test_tiny_cpu_run_reports_every_model_and_writes_atomically(tmp_path, capsys, monkeypatch):
    out = tmp_path / "device.md"
    out.write_text("an older report\n")
    renames = []

    def replace(src, dst):
        renames.append((Path(src), Path(dst)))
        os.rename(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert device_check.main(TINY + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text() + "\n"  # print adds the newline
    # one rename per model (the partial report after the first, then the whole), each from a
    # temporary file beside the report, none left behind
    assert [dst for _, dst in renames] == [out, out]
    assert all(src.parent == tmp_path and src != out for src, _ in renames)
    assert sorted(tmp_path.iterdir()) == [out]

    assert "Status: ok" in printed
    for label in ("kwmlp", "logmel"):
        parity, batch, long = (rows(section, label) for section in printed.split("\n## ")[1:])
        assert len(parity) == 1 and parity[0].count("skipped: --device cpu"
                                                    if torch.cuda.is_available()
                                                    else "skipped: no CUDA device") == 2
        assert len(batch) == 6  # timestamp and scene x float32, TF32, bf16
        modes = {row.split(" | ")[2]: row for row in batch}
        assert "n/a (CUDA only)" in modes["tf32"]
        assert "(reference; max abs" in modes["float32"]
        assert "max_abs <=" in modes["bf16"] or "error:" in modes["bf16"]
        assert len(long) == 2


def test_report_path_only_when_asked_on_the_cpu():
    args = device_check.parse_args(["--short", "--device", "cpu"])
    assert device_check.out_path(args) is None
    args = device_check.parse_args(["--short", "--device", "cpu", "--out"])
    assert device_check.out_path(args) == device_check.ROOT / "results" / "device_cpu.md"
    assert (args.batch, args.long_seconds, args.repeats) == (4, 120.0, 1)
    assert device_check.gpu_slug("NVIDIA H200") == "nvidia_h200"


def test_every_shipped_model_is_checked_with_a_tolerance():
    models = device_check.shipped_models()
    weights_dir = default_weights(MODELS["kwmlp"].weights).parent
    assert {e.weights for e in models} >= {p.name for p in weights_dir.glob("*.pt")}
    assert "logmel" in {e.label for e in models}
    assert {e.module for e in MODELS.values()} <= set(device_check.TOLERANCE)
    for how, bounds in device_check.TOLERANCE.values():
        assert how in ("max_abs", "sum_abs") and set(bounds) == {"cuda", "tf32", "bf16"}
