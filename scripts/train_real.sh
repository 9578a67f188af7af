#!/usr/bin/env bash
# Reproduce the default weights trained on real + synthetic audio (weights/README.md), then
# evaluate them next to the log-mel floor (results/real_suite.md). Every step resumes: corpora
# that exist are kept, trainers resume from OUT/last.pt, heareval steps from their done-markers.
# About 1.5 h on 2 CPU cores, from the parts measured for the shipped files: corpora ~13 min
# (keywords ~6, general ~5), the three trainers in parallel ~41 min (the AST's 2,438 s is the
# longest), the evaluation ~34 min (embedding + probes: kwmlp 716 s, bagofcodes 414 s, ast
# 597 s, the floor 294 s; results/real_suite.json "seconds").
# Environment: DATA (default data), RUNS (default runs), SKIP_SETUP=1 to skip the install.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data}
RUNS=${RUNS:-runs}
[ "${SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh
mkdir -p "$DATA" "$RUNS"
hs() { python3 -m hear_suite.cli "$@"; }

# corpora: real recordings (Debian packages), the AST's former synthetic task, keywords, general
[ -d "$DATA/mix/gen_sound_mixtures-v1-full" ] ||
  hs make-tasks --out "$DATA/mix" --suite numpy --only gen_sound_mixtures --scale 4 --seed 0
[ -d "$DATA/real/real_multitask-v1-full" ] ||
  hs make-corpus real --out "$DATA/real" --multitask-extra "$DATA/mix/gen_sound_mixtures-v1-full"
[ -d "$DATA/kw3/keywords-v1-full" ] ||
  hs make-corpus keywords --out "$DATA/kw3" --clips-per-speaker-word 3 --seed 0
[ -d "$DATA/general-v1-full" ] || hs make-corpus general --out "$DATA" --clips 1200 --seed 0
[ -d "$DATA/kwunion/keywords_real-v1-full" ] ||
  hs make-corpus union --out "$DATA/kwunion" --task-name keywords_real --seconds 1 --multiclass \
    --from "$DATA/kw3/keywords-v1-full" "$DATA/real/real_instrument_pitch-v1-full" \
           "$DATA/real/real_drum_pieces-v1-full" "$DATA/real/real_sound_kinds-v1-full"

# the three trainers, in parallel, one thread each
export OMP_NUM_THREADS=1
hs train ast --task-dir "$DATA/real/real_multitask-v1-full" --out "$RUNS/ast_multi" \
  --preset medium --pe conditional --epochs 20 --swa-epochs 5 --warmup-epochs 2 --lr 1e-3 \
  --seed 0 --workers 1 > "$RUNS/ast_multi.log" 2>&1 &
hs train kwmlp --task-dir "$DATA/kwunion/keywords_real-v1-full" --out "$RUNS/kwmlp_union" \
  --epochs 30 --warmup-epochs 3 --seed 0 > "$RUNS/kwmlp_union.log" 2>&1 &
hs train bagofcodes --audio "$DATA/real/real_pool" "$DATA/general-v1-full" --out "$RUNS/boc_real" \
  --width 256 --compression 10 --codebook-size 256 --epochs 20 --steps-per-epoch 200 \
  --batch-size 256 --lr 1e-3 --half --seed 0 > "$RUNS/boc_real.log" 2>&1 &
wait
unset OMP_NUM_THREADS

# the evaluation suite: the real tasks (test sources unseen) and the generated suite (seed 1)
[ -d "$DATA/suite/gen_spoken_words-v1-full" ] ||
  hs make-tasks --out "$DATA/suite" --suite default --seed 1
for t in real_speaker_id real_instrument_pitch real_drum_pieces real_sound_kinds; do
  ln -sfn "$(realpath "$DATA/real/$t-v1-full")" "$DATA/suite/$t-v1-full"
done
hs eval --config eval_configs/real.yaml --tasks-dir "$DATA/suite" --out "$RUNS/real_suite" \
  --module hear_suite.kwmlp --model "$RUNS/kwmlp_union/kwmlp.pt" --label kwmlp \
  --module hear_suite.bagofcodes --model "$RUNS/boc_real/bagofcodes.pt" --label bagofcodes \
  --module hear_suite.ast --model "$RUNS/ast_multi/ast_conditional.pt" --label ast
