#!/usr/bin/env bash
# Train the tiny MM-SeR shipped in capeval/baselines/weights/mmser-tiny-shapes, on CPU, from nothing:
# generate the shapes dataset, run stage 1 (connector pretraining, connector + LM + vision fine-tuning) and
# stage 2 (self-refinement on rule-perturbed captions), then caption the test split single-pass and refined
# and score both (and the rule-based one-shape captioner) with capeval's COCO metrics.
#
#   bash scripts/train_tiny_mmser.sh                 # everything into runs/mmser-tiny
#   OUT=/tmp/m THREADS=2 bash scripts/train_tiny_mmser.sh
#   INSTALL=1 bash scripts/train_tiny_mmser.sh       # also copy the model into the package
#
# A killed run continues where it stopped when started again (--resume). Timings go to $OUT/timings.json.
set -euo pipefail

OUT=${OUT:-runs/mmser-tiny}
THREADS=${THREADS:-1}
SEED=${SEED:-0}
REPO=$(cd "$(dirname "$0")/.." && pwd)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS="$THREADS"

t0=$(date +%s)
capeval baseline shapes --out "$OUT/data" --split train --n 3000 --seed "$SEED"
capeval baseline shapes --out "$OUT/data" --split test --n 500 --seed "$SEED"
t1=$(date +%s)

capeval baseline train \
  --images "$OUT/data/train/images" --captions "$OUT/data/train/references.json" --out "$OUT/model" \
  --tiny --train-vision \
  --pretrain-epochs 0.1 --pretrain-lr 1e-3 \
  --finetune-epochs 3 --finetune-lr 1e-3 \
  --refine-epochs 1 --refine-lr 5e-4 --initial-loss-weight 0.5 --perturb-keep 0.15 \
  --batch-size 32 --save-every 200 --threads "$THREADS" --seed "$SEED" --resume
t2=$(date +%s)

MODEL="$OUT/model/stage2-refine/final"
mkdir -p "$OUT/eval"
capeval caption --model mmser --checkpoint "$MODEL" --images "$OUT/data/test/images" \
  -o "$OUT/eval/refined.json" --initial-out "$OUT/eval/single.json" --batch-size 50 -q
capeval caption --model oneshape --images "$OUT/data/test/images" -o "$OUT/eval/oneshape.json"
t3=$(date +%s)
capeval score --refs "$OUT/data/test/references.json" \
  --cand mmser-single="$OUT/eval/single.json" --cand mmser-refined="$OUT/eval/refined.json" \
  --cand oneshape="$OUT/eval/oneshape.json" --metrics bleu,meteor,rouge_l,cider --out "$OUT/eval/run"
t4=$(date +%s)

cat > "$OUT/timings.json" <<EOF
{"threads": $THREADS, "data_s": $((t1 - t0)), "train_s": $((t2 - t1)), "caption_s": $((t3 - t2)),
 "score_s": $((t4 - t3)), "total_s": $((t4 - t0))}
EOF
cat "$OUT/timings.json"

if [ "${INSTALL:-0}" = 1 ]; then
  DEST="$REPO/capeval/baselines/weights/mmser-tiny-shapes"
  rm -rf "$DEST" && mkdir -p "$DEST"
  cp "$MODEL"/config.json "$MODEL"/model.safetensors "$MODEL"/tokenizer.json "$MODEL"/tokenizer_config.json "$DEST"/
  cp "$OUT/eval/run/summary.json" "$DEST/eval_summary.json"
  cp "$OUT/timings.json" "$DEST/timings.json"
  echo "installed $DEST"
fi
