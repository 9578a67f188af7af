#!/usr/bin/env bash
# Device check of every shipped model (every weights/*.pt, found when it starts, and the log-mel
# floor) and of the published ASTs in pretrained_models/ (or --published PATH...), the code of
# this working tree (not an installed wheel):
#   1. CUDA vs CPU parity of timestamp and scene embeddings (4 clips x 10 s, float32), against a
#      stated tolerance per model;
#   2. throughput in x real time at batch 64 x 10 s in float32, TF32 and bf16 autocast, the
#      deviation of TF32 and bf16 from float32 (within tolerance or marked), peak GPU memory;
#   3. one 20-minute clip per model: seconds and peak memory, timestamp and scene.
# Writes results/device_<gpu name>.md (rewritten after each model) and prints the same report.
# The report is printed last (progress on stderr): the tail of the output holds it.
# Expected time: full mode on one H200 a few minutes, at most 8: no model is started after
# --budget-seconds (default 420; those left are reported as not measured). Exit status 1 when a
# float32 measurement failed, parity is outside tolerance or a model was not measured.
#
# Without CUDA the same runs on the CPU (parity and TF32 reported as skipped); use --short there
# (batch 4 x 10 s, a 2-minute clip, 1 repeat: about 10 s on a quiet 2-core CPU, for CI); the
# report is then written only with --out [PATH] (default results/device_cpu.md).
#
#   bash scripts/device_check.sh                    # on a GPU machine
#   bash scripts/device_check.sh --short            # CI, any machine
#   bash scripts/device_check.sh --models kwmlp logmel --out /tmp/device.md
# Options: python benchmarks/device_check.py -h
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec python3 benchmarks/device_check.py "$@"
