#!/usr/bin/env bash
# Segmentation speed of `chaincrf cws segment`, binaries side by side.
#
#   scripts/bench-segment.sh [-r ROUNDS] [-m MODEL] [-i INPUT] [-t THREADS] [--instructions] NAME=BINARY...
#
# Runs each binary on INPUT (default: pku_test.utf8 repeated 20 times, built
# in a temporary folder from $CHAINCRF_DATA/icwb2) with MODEL, one after the
# other, ROUNDS times (default 5), swapping the order every round so that a
# host getting faster or slower favours none of them. Prints every run
# (characters/s and model load time as `cws segment` reports them, peak RSS
# and CPU seconds from GNU time), then per binary the medians, and per
# binary against the first the median of the per-round ratios. The outputs
# of all binaries are compared byte for byte; a difference is an error.
#
# With --instructions, also counts the instructions of one run on INPUT and
# one on an empty input (valgrind --tool=cachegrind): their difference is the
# segmentation's, which does not move with the host's load.
set -euo pipefail
rounds=5 model= input= threads=1 instructions=0
while [[ $# -gt 0 ]]; do
  case $1 in
    -r) rounds=$2; shift 2 ;;
    -m) model=$2; shift 2 ;;
    -i) input=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    --instructions) instructions=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[[ $# -ge 1 && -n $model ]] || { echo "usage: $0 -m MODEL [-r N] [-i INPUT] [-t THREADS] [--instructions] NAME=BINARY..." >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "GNU time (/usr/bin/time) is needed" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -z $input ]]; then
  test_file=${CHAINCRF_DATA:?set CHAINCRF_DATA or pass -i INPUT}/icwb2/pku_test.utf8
  for _ in $(seq 20); do cat "$test_file"; done > "$work/pku20.txt"
  input=$work/pku20.txt
fi
names=() bins=()
for nb in "$@"; do names+=("${nb%%=*}"); bins+=("${nb#*=}"); done
: > "$work/runs"
for r in $(seq "$rounds"); do
  idx=$(seq 0 $((${#names[@]} - 1)))
  (( r % 2 )) || idx=$(echo "$idx" | tac)
  for i in $idx; do
    out=$( { /usr/bin/time -f "RSS %M CPU %U %S" "${bins[$i]}" cws segment --model "$model" \
      --threads "$threads" "$input" -o "$work/out.${names[$i]}"; } 2>&1 )
    cps=$(grep -o '([0-9]* characters/s)' <<<"$out" | tr -dc 0-9)
    load=$(grep -o 'loaded in [0-9.]*' <<<"$out" | awk '{print $3}')
    rss=$(grep -o 'RSS [0-9]*' <<<"$out" | awk '{print $2}')
    cpu=$(grep -o 'CPU [0-9.]* [0-9.]*' <<<"$out" | awk '{print $2 + $3}')
    echo "$r ${names[$i]} $cps $load $rss $cpu" | tee -a "$work/runs"
  done
done
for n in "${names[@]:1}"; do
  cmp -s "$work/out.${names[0]}" "$work/out.$n" || { echo "error: ${names[0]} and $n segment differently" >&2; exit 1; }
done
python3 - "$work/runs" "${names[@]}" <<'PY'
import statistics as st, sys
runs = [l.split() for l in open(sys.argv[1])]
names = sys.argv[2:]
by = {n: [r for r in runs if r[1] == n] for n in names}
med = lambda xs: st.median(xs)
for n in names:
    v = by[n]
    print(f"{n}: chars/s median {med(int(r[2]) for r in v):,.0f} (range {min(int(r[2]) for r in v):,}-{max(int(r[2]) for r in v):,}); "
          f"load median {med(float(r[3]) for r in v):.3f} s (min {min(float(r[3]) for r in v):.3f}); "
          f"peak RSS median {med(int(r[4]) for r in v) / 1024:.1f} MiB; CPU median {med(float(r[5]) for r in v):.3f} s")
base = by[names[0]]
for n in names[1:]:
    pairs = list(zip(base, by[n]))
    speed = [int(b[2]) / int(a[2]) for a, b in pairs]
    cpu = [float(a[5]) / float(b[5]) for a, b in pairs]
    print(f"{n} vs {names[0]}: chars/s ratio median {med(speed):.3f} (range {min(speed):.3f}-{max(speed):.3f}); "
          f"CPU-time ratio ({names[0]}/{n}) median {med(cpu):.3f} (range {min(cpu):.3f}-{max(cpu):.3f})")
PY
if (( instructions )); then
  : > "$work/empty.txt"
  for i in "${!names[@]}"; do
    count() { valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "${bins[$i]}" cws segment \
      --model "$model" --threads 1 "$1" -o "$work/ir.out" 2>&1 | grep 'I *refs' | awk '{print $NF}' | tr -d ,; }
    all=$(count "$input"); load=$(count "$work/empty.txt")
    chars=$(python3 -c "import sys; print(sum(len(l.rstrip('\r\n')) for l in open(sys.argv[1], encoding='utf-8-sig')))" "$input")
    echo "${names[$i]}: instructions: load $load, segmenting $((all - load)) ($(( (all - load) / chars )) per character)"
  done
fi
