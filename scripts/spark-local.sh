#!/usr/bin/env bash
# Segments a text file with chaincrf.spark on a local Spark (local[2] by
# default) and checks that the part files, concatenated in order, are exactly
# what `chaincrf cws segment` writes for the same file and model.
#
#   scripts/spark-local.sh MODEL INPUT [WORK_DIR]
#
# PySpark (pinned below) is installed from PyPI with pandas and pyarrow into
# the virtual environment .venv-spark at the repository root (~300 MB, once;
# $CHAINCRF_SPARK_VENV names another), with the chaincrf wheel built from this
# checkout. Spark stays on loopback (SPARK_LOCAL_IP=127.0.0.1). Java 17 must
# be on PATH. $SPARK_MASTER overrides local[2]. Timings go to stderr: Spark's
# own start-up is reported apart from segmenting.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

if [ $# -lt 2 ]; then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
model="$(realpath "$1")"
input="$(realpath "$2")"
work="${3:-$(mktemp -d "${TMPDIR:-/tmp}/chaincrf-spark.XXXXXX")}"
mkdir -p "$work"
master="${SPARK_MASTER:-local[2]}"
export SPARK_LOCAL_IP=127.0.0.1
export PYO3_BUILD_EXTENSION_MODULE=1

venv="${CHAINCRF_SPARK_VENV:-$root/.venv-spark}"
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
"$venv/bin/python" -m pip install --quiet "pyspark==4.0.1" "pandas==2.2.3" "pyarrow==19.0.1" "maturin>=1.16,<2"
export PYSPARK_PYTHON="$venv/bin/python"

wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
"$venv/bin/maturin" build --release --quiet --manifest-path crates/python/Cargo.toml --out "$wheels"
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$wheels"/chaincrf-*.whl
cargo build --release --quiet -p chaincrf-cli
bin="${CARGO_TARGET_DIR:-$root/target}/release/chaincrf"

rm -rf "$work/spark-out"
echo "== chaincrf.spark on $master" >&2
"$venv/bin/python" -m chaincrf.spark "$input" "$work/spark-out" --model "$model" --master "$master"
echo "== chaincrf cws segment --threads 2" >&2
"$bin" cws segment --model "$model" --threads 2 "$input" -o "$work/cli.txt"

cat "$work"/spark-out/part-* > "$work/spark.txt"
if cmp -s "$work/spark.txt" "$work/cli.txt"; then
  echo "identical output: $(wc -l < "$work/cli.txt") lines ($work/spark.txt, $work/cli.txt)" >&2
else
  echo "error: Spark and CLI outputs differ:" >&2
  cmp "$work/spark.txt" "$work/cli.txt" >&2 || true
  exit 1
fi
