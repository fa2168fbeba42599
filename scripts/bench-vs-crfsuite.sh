#!/usr/bin/env bash
# Kept for muscle memory: the benchmark is the Python harness in bench/
# (see docs/benchmarks.md, "The benchmark harness").
#
#   scripts/bench-vs-crfsuite.sh                 # python3 -m bench all
#   scripts/bench-vs-crfsuite.sh --quick         # python3 -m bench all --quick
#   scripts/bench-vs-crfsuite.sh run chunking    # python3 -m bench run chunking
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${1:-}" in
prepare | run | report | plot | all | -h | --help) exec python3 -m bench "$@" ;;
*) exec python3 -m bench all "$@" ;;
esac
