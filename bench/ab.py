"""Two chaincrf binaries side by side: CPU seconds per L-BFGS evaluation.

::

    python3 -m bench.ab OLD NEW DATA [--runs 3] [--iterations 5] [--threads 1] [--work DIR]

Runs ``BINARY train --format crfsuite --max-iterations N --threads T
--summary-json S DATA`` alternately (old, new, old, new, ...). Each run's
CPU time is sampled as each progress line (``iter N ...``) appears on its
standard error, so reading the data and building the features do not count,
and neither does the time a loaded machine keeps it waiting. The figure of a
run is the CPU seconds from its first progress line to its last, over the
evaluations made in between: the total from the summary less those of the
first iteration, which both binaries make alike (the same L-BFGS, the same
line searches); the first iteration's count is read from ``--progress-jsonl``
where the binary has it, else given by ``--first-evaluations``. Prints each
run and the medians as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from bench import measure


def one_run(binary: Path, data: Path, work: Path, tag: str, args: argparse.Namespace) -> dict[str, object]:
    log, summary, progress = work / f"{tag}.log", work / f"{tag}.summary.json", work / f"{tag}.jsonl"
    for stale in (log, summary, progress):
        stale.unlink(missing_ok=True)
    help_text = subprocess.run([str(binary), "train", "--help"], capture_output=True, text=True, check=False).stdout
    command = [str(binary), "train", "--format", "crfsuite", "--max-iterations", str(args.iterations)]
    command += ["--threads", str(args.threads), "--summary-json", str(summary), "--model", str(work / f"{tag}.model")]
    if "--progress-jsonl" in help_text:
        command += ["--progress-jsonl", str(progress)]
    m = measure.run([*command, str(data)], stderr=log, watch=log)
    if m.returncode != 0:
        raise SystemExit(f"{binary} failed; see {log}")
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    marks = m.cpu_marks or []
    cpu = [marks[i] for i, line in enumerate(lines) if line.startswith("iter ") and i < len(marks)]
    if len(cpu) < 2:
        raise SystemExit(f"{log}: fewer than two progress lines were timed")
    evaluations = int(json.loads(summary.read_text(encoding="utf-8"))["evaluations"])
    first = args.first_evaluations
    if progress.exists():
        rows = [json.loads(line) for line in progress.read_text(encoding="utf-8").splitlines() if line.strip()]
        first = int(rows[0]["evaluations"])
    if first is None:
        raise SystemExit(f"{binary} has no --progress-jsonl: give --first-evaluations")
    timed = evaluations - first
    return {
        "binary": str(binary),
        "cpu_per_evaluation": (cpu[-1] - cpu[0]) / timed,
        "cpu_at_iterations": cpu,
        "evaluations": evaluations,
        "timed_evaluations": timed,
        "wall_seconds": m.wall_seconds,
        "load_before": m.load_before,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m bench.ab", description=__doc__)
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("data", type=Path)
    p.add_argument("--runs", type=int, default=3, help="runs of each binary, alternating [3]")
    p.add_argument("--iterations", type=int, default=5, help="L-BFGS iterations per run [5]")
    p.add_argument("--threads", type=int, default=1, help="training threads [1]")
    p.add_argument("--first-evaluations", type=int, help="evaluations of iteration 1 (binaries without jsonl)")
    p.add_argument("--work", type=Path, default=Path("/tmp/chaincrf-bench-ab"), help="scratch folder")
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[float]] = {"old": [], "new": []}
    # The new binary (with --progress-jsonl) runs first, so that its first
    # iteration's evaluation count can serve the old one.
    for rep in range(1, args.runs + 1):
        for which in ("new", "old"):
            r = one_run(getattr(args, which), args.data, args.work, f"{which}-{rep}", args)
            if args.first_evaluations is None and which == "new":
                args.first_evaluations = int(r["evaluations"]) - int(r["timed_evaluations"])  # type: ignore[call-overload]
            runs[which].append(float(r["cpu_per_evaluation"]))  # type: ignore[arg-type]
            print(json.dumps({"which": which, "repetition": rep, **r}), flush=True)
    old, new = statistics.median(runs["old"]), statistics.median(runs["new"])
    ratio = new / old if old > 0 else None  # a run too short to measure has no CPU span
    print(json.dumps({"median_old": old, "median_new": new, "new_over_old": ratio}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
