#!/usr/bin/env bash
# The README demo: install (scripts/setup.sh), synthesise the small generated HEAR task suite,
# evaluate hear_suite.kwmlp with heareval (hear_suite's "demo" probe grid), print the table.
# About ten minutes on a 2-core CPU. Running it again resumes: finished steps are kept.
# Environment: OUT (default runs/demo), SCALE (default 1), SKIP_SETUP=1 to skip the install.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo}
SCALE=${SCALE:-1}
start=$(date +%s)
if [ "${SKIP_SETUP:-0}" != 1 ]; then
  bash scripts/setup.sh
fi
hear-suite make-tasks --out "$OUT/tasks" --suite default --scale "$SCALE"
hear-suite eval --module hear_suite.kwmlp --config eval_configs/generated.yaml \
  --tasks-dir "$OUT/tasks" --out "$OUT/eval"
echo "demo done in $(( $(date +%s) - start )) s: $OUT/eval/results.md, $OUT/eval/results.png"
