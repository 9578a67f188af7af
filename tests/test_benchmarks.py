"""The benchmarks' own arithmetic and timing, and bench_kwmlp end to end (one short run)."""
import re
import subprocess
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_kwmlp import encoder_flops  # noqa: E402
from harness import median_ratio, timed_rounds  # noqa: E402


def test_encoder_flops_count_the_matrix_products(monkeypatch, random_kwmlp):
    """The roofline's encoder FLOPs equal what PyTorch's FLOP counter sees (plain F.linear path:
    the counter does not know the oneDNN operator)."""
    from hear_suite import onednn

    monkeypatch.setattr(onednn, "ENABLED", False)
    config = random_kwmlp.config
    mfcc = torch.randn(3, config.n_mfcc, config.num_frames)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        random_kwmlp.forward_features(mfcc)
    assert counter.get_total_flops() == 3 * encoder_flops(config)


def test_timed_rounds_alternate_and_ratio_is_a_median():
    calls = []
    walls = timed_rounds([lambda: calls.append("a"), lambda: calls.append("b")], 3, False)
    assert calls == ["a", "b"] * 4  # a warm-up round, then three
    assert [len(w) for w in walls] == [3, 3] and all(0 < t < 1 for w in walls for t in w)
    # one lucky round on the slow side does not move the median ratio
    assert median_ratio([2.0, 2.0, 0.5], [1.0, 1.0, 1.0]) == 2.0


def test_bench_kwmlp_runs_and_agrees_with_the_reference():
    out = subprocess.run([sys.executable, "benchmarks/bench_kwmlp.py", "--repeats", "1"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    diff = float(re.search(r"max \|hear_suite - reference\| over 16 x 10 s: (\S+)", out)[1])
    assert diff < 1e-4
    ratios = re.findall(r"throughput (?:timestamp|scene) .* ratio (\d+\.\d+)", out)
    assert len(ratios) == 2 and all(float(r) > 0 for r in ratios)
    assert re.search(r"roofline: .* GFLOP/s, \d+% of the \d+ GFLOP/s", out)
    assert re.search(r"peak extra memory, one 20-minute clip .* ratio \d", out)


def test_bench_train_step_runs_both_models():
    out = subprocess.run([sys.executable, "benchmarks/bench_train_step.py", "--repeats", "1"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    lines = re.findall(r"training step, (kwmlp|ast)\b.* ms, ratio (\d+\.\d+)", out)
    assert [name for name, _ in lines] == ["kwmlp", "ast"]
