#!/usr/bin/env bash
# The main job: fetch the PKU People's Daily corpus if it is missing, train the
# default Chinese word segmenter on it with every 20th sentence held out,
# evaluate on the held-out part (and on the SIGHAN Bakeoff 2005 PKU test set
# when its files are present), and segment a few sample sentences.
#
# Usage: scripts/main-job.sh            (work files go to ./data and ./models)
# Env:   CHAINCRF_DATA  folder holding pku-199801/199801.txt and icwb2/ (optional)
#        THREADS        training threads (default: all cores)
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=""
if [ -n "${CHAINCRF_DATA:-}" ] && [ -f "$CHAINCRF_DATA/pku-199801/199801.txt" ]; then
  corpus="$CHAINCRF_DATA/pku-199801/199801.txt"
elif [ -f ../shared/data/pku-199801/199801.txt ]; then
  corpus="../shared/data/pku-199801/199801.txt"
else
  scripts/fetch-pku.sh data
  corpus="data/199801.txt"
fi
echo "corpus: $corpus"

cargo build --release -p chaincrf-cli
bin=target/release/chaincrf
mkdir -p models data/heldout

# Held-out part: every 20th sentence (the trainer's --dev-every 20 leaves out the same lines).
awk 'NR % 20 == 0' "$corpus" | sed -E 's#/[A-Za-z]+( +|$)#\1#g; s/ +/ /g; s/ $//' > data/heldout/gold.txt
sed 's/ //g' data/heldout/gold.txt > data/heldout/raw.txt

threads_arg=()
if [ -n "${THREADS:-}" ]; then threads_arg=(--threads "$THREADS"); fi
"$bin" cws train --corpus "$corpus" --model models/pku.model --dev-every 20 "${threads_arg[@]}"

"$bin" cws segment --model models/pku.model data/heldout/raw.txt -o data/heldout/pred.txt
echo "== held-out part of 199801.txt (every 20th sentence, not trained on) =="
"$bin" cws eval --gold data/heldout/gold.txt --pred data/heldout/pred.txt

icwb="${CHAINCRF_DATA:-../shared/data}/icwb2"
if [ -f "$icwb/pku_test.utf8" ]; then
  "$bin" cws segment --model models/pku.model "$icwb/pku_test.utf8" -o data/pku_test.pred.txt
  echo "== SIGHAN Bakeoff 2005 PKU test set =="
  "$bin" cws eval --gold "$icwb/pku_test_gold.utf8" --pred data/pku_test.pred.txt --dict "$icwb/pku_training_words.utf8"
fi

echo "== sample sentences =="
printf '%s\n' "共同创造美好的新世纪" "中国人民银行今天宣布降低存款利率" "他用iPhone6s看了3.14页的报告" \
  | "$bin" cws segment --model models/pku.model --keep-latin
