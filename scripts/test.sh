#!/usr/bin/env bash
# The test suite in one command: the Rust workspace's tests, then the Python
# package (crates/python) built as a wheel, installed into a virtual
# environment with its test dependencies from PyPI, linted and tested there.
#
#   scripts/test.sh              # everything
#   SKIP_RUST=1 scripts/test.sh  # only the Python part
#   CHAINCRF_TEST_SPARK=1 scripts/test.sh  # also install PySpark and run the local[1] Spark tests
#
# The virtual environment is .venv-test at the repository root (created when
# missing; $CHAINCRF_TEST_VENV names another); the wheel is reinstalled into
# it on every run, so the tests always see the package as built now.
# Real-data tests read $CHAINCRF_DATA and skip with a reason when it is unset.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

# The extension module never links libpython (the interpreter provides it);
# with this set, cargo's builds of the crate and maturin's share their artifacts.
export PYO3_BUILD_EXTENSION_MODULE=1

if [ -z "${SKIP_RUST:-}" ]; then
  cargo test --workspace --release
fi

python="${PYTHON:-python3}"
venv="${CHAINCRF_TEST_VENV:-$root/.venv-test}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "maturin>=1.16,<2" pytest numpy scikit-learn python-crfsuite ruff
# chaincrf.spacy is tested against a real spaCy (pinned; wheels for CPython 3.11, ~1 min to install).
"$venv/bin/python" -m pip install --quiet "spacy==3.8.18"
# PySpark is a ~300 MB download: only with CHAINCRF_TEST_SPARK=1 (tests/test_spark.py skips without
# it, saying so); scripts/spark-local.sh runs the local[2] checks in a venv of its own.
if [ -n "${CHAINCRF_TEST_SPARK:-}" ]; then
  "$venv/bin/python" -m pip install --quiet "pyspark==4.0.1" "pandas==2.2.3" "pyarrow==19.0.1"
fi
# sklearn-crfsuite is only a reference for comparisons; tests skip without it.
"$venv/bin/python" -m pip install --quiet sklearn-crfsuite || echo "note: sklearn-crfsuite did not install; its comparisons will skip"

wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
"$venv/bin/maturin" build --release --quiet --manifest-path crates/python/Cargo.toml --out "$wheels"
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$wheels"/chaincrf-*.whl

"$venv/bin/ruff" format --check crates/python bench
"$venv/bin/ruff" check crates/python bench
# The benchmark harness's own tests (readers and report arithmetic; no tools run).
"$venv/bin/python" -m pytest -q -p no:cacheprovider bench/tests
# Run from the tests folder so that `import chaincrf` finds the installed
# wheel, not the sources in crates/python/python.
cd crates/python/tests
"$venv/bin/python" -m pytest -q -p no:cacheprovider .
