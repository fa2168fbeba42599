#!/usr/bin/env bash
# Fuzzes chaincrf's input parsers with the cargo-fuzz targets in fuzz/.
#
# Builds the targets (nightly toolchain, address sanitizer), seeds each
# target's corpus from fuzz/seeds/ and from small models trained by the
# release binary, then runs every target for SECONDS (default 120), one
# process with one job at a time, and prints libFuzzer's closing line (runs
# and seconds). Crashes land in fuzz/artifacts/TARGET/; reproduce one with
#   fuzz/target/x86_64-unknown-linux-gnu/release/TARGET fuzz/artifacts/TARGET/crash-...
# See docs/reliability.md.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-120}"
shift || true
all=(model_from_bytes model_body crfsuite_model templates cws_corpus column_data crfsuite_data potentials_json segment)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz.sh: needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Model seeds: tiny models of each kind, whole (for model_from_bytes) and as
# bodies behind a selector byte (for model_body, which writes its own header).
cargo build --release -p chaincrf-cli
bin=target/release/chaincrf
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'the DT B-NP\ncat NN I-NP\nsat VBD B-VP\n\na DT B-NP\ndog NN I-NP\n' > "$work/d"
printf 'B-NP\tw=the\nI-NP\tw=cat\n\nB-VP\tw=sat\n' > "$work/cs"
printf '迈向  充满  希望  的  新  世纪\n我們  在  臺灣  學習\n' > "$work/c"
"$bin" train --template fuzz/seeds/templates/crfpp.tpl --model "$work/crfpp.model" "$work/d" 2>/dev/null
"$bin" train --format crfsuite --model "$work/crfsuite.model" "$work/cs" 2>/dev/null
"$bin" cws train --corpus "$work/c" --model "$work/cws.model" 2>/dev/null
mkdir -p fuzz/corpus/model_from_bytes fuzz/corpus/model_body
for m in crfpp crfsuite cws; do
  cp "$work/$m.model" "fuzz/corpus/model_from_bytes/$m.model"
  { printf '\0'; tail -c +29 "$work/$m.model"; } > "fuzz/corpus/model_body/$m.body"
done
# Models CRFsuite itself wrote (python-crfsuite; crates/model/tests/data/crfsuite),
# behind the selector byte of crfsuite_model.
mkdir -p fuzz/corpus/crfsuite_model
for f in crates/model/tests/data/crfsuite/*.crfsuite; do
  cp "$f" fuzz/corpus/model_from_bytes/
  { printf '\0'; cat "$f"; } > "fuzz/corpus/crfsuite_model/$(basename "$f")"
done

cd fuzz
cargo +nightly fuzz build
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  echo "== $t (${secs}s)"
  "target/x86_64-unknown-linux-gnu/release/$t" -max_total_time="$secs" -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" "corpus/$t" "${seeds[@]}" 2>&1 |
    grep -E '^(Done|==[0-9]+==ERROR|SUMMARY)|panicked|INFO: Running with' || true
done
