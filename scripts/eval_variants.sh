#!/usr/bin/env bash
# results/real_suite.md: every embedding variant of the shipped default weights (final, 2level,
# 2level+mel) and bag-of-codes' histogram scalings against the log-mel floor, on the real
# recordings and the generated suite (eval_configs/real.yaml, demo probe grid). Resumable: a run
# or task already embedded / probed is kept. About 2 h on 2 CPU cores (one thread). Beside them,
# the previous default AST (ast_real.pt, 64 bands) and the 60-epoch kwmlp and bag-of-codes of
# scripts/train_long.sh when RUNS holds them (trained, measured, not shipped: issue 18).
# Environment: DATA (default data; scripts/train_real.sh builds the tasks), OUT (default
# runs/real_suite), RUNS (default runs).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data}
OUT=${OUT:-runs/real_suite}
RUNS=${RUNS:-runs}
if [ ! -d "$DATA/suite/real_speaker_id-v1-full" ]; then
  python3 -m hear_suite.cli make-corpus real --out "$DATA/real"
  python3 -m hear_suite.cli make-tasks --out "$DATA/suite" --suite default --seed 1
  for t in real_speaker_id real_instrument_pitch real_drum_pieces real_sound_kinds; do
    ln -sfn "$(realpath "$DATA/real/$t-v1-full")" "$DATA/suite/$t-v1-full"
  done
fi
runs=()
for m in kwmlp ast bagofcodes; do
  runs+=(--module "hear_suite.$m" --label "$m"
         --module "hear_suite.$m" --model-options '{"embedding": "2level"}' --label "$m 2level"
         --module "hear_suite.$m" --model-options '{"embedding": "2level+mel"}' --label "$m 2level+mel")
done
for s in sqrt log1p; do
  runs+=(--module hear_suite.bagofcodes --model-options "{\"histogram_scaling\": \"$s\"}"
         --label "bagofcodes $s")
done
for s in counts sqrt; do    # 2level+mel's default is log1p
  runs+=(--module hear_suite.bagofcodes --label "bagofcodes 2level+mel $s"
         --model-options "{\"embedding\": \"2level+mel\", \"histogram_scaling\": \"$s\"}")
done
# the AST's timestamp hop: 2level+mel defaults to 80 ms (four passes); 320 ms and 40 ms beside it
runs+=(--module hear_suite.ast --model-options '{"timestamp_hop_ms": 80}' --label "ast 80 ms"
       --module hear_suite.ast --model-options '{"embedding": "2level+mel", "timestamp_hop_ms": 320}'
       --label "ast 2level+mel 320 ms"
       --module hear_suite.ast --model-options '{"embedding": "2level+mel", "timestamp_hop_ms": 40}'
       --label "ast 2level+mel 40 ms")
runs+=(--module hear_suite.ast --model ast_real.pt --label "ast_real.pt (64 bands)"
       --module hear_suite.ast --model ast_real.pt --model-options '{"embedding": "2level+mel"}'
       --label "ast_real.pt (64 bands) 2level+mel")
for long in "kwmlp kwmlp_union60/kwmlp.pt" "bagofcodes boc_real60/bagofcodes.pt"; do
  read -r family file <<< "$long"
  [ -f "$RUNS/$file" ] || continue
  runs+=(--module "hear_suite.$family" --model "$RUNS/$file" --label "$family 60 epochs"
         --module "hear_suite.$family" --model "$RUNS/$file"
         --model-options '{"embedding": "2level+mel"}' --label "$family 60 epochs 2level+mel")
done
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} python3 -m hear_suite.cli eval --config eval_configs/real.yaml \
  --tasks-dir "$DATA/suite" --out "$OUT" "${runs[@]}"
