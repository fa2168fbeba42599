"""Report arithmetic on hand-made run records, and one measured child."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench import measure, report


def lbfgs_record(tool: str, rep: int, seconds: list[float], evaluations: list[int], accuracy: float) -> dict:
    rows = [
        {"iteration": i + 1, "seconds": s, "evaluations": e, "objective": 10.0 / (i + 1)}
        for i, (s, e) in enumerate(zip(seconds, evaluations, strict=True))
    ]
    return {
        "suite": "chunking",
        "name": f"lbfgs-{tool}-rep{rep}",
        "tool": tool,
        "algorithm": "lbfgs",
        "repetition": rep,
        "cap": len(rows),
        "status": "ok",
        "progress": rows,
        "summary": {"iterations": len(rows), "evaluations": evaluations[-1], "seconds": seconds[-1], "features": 7},
        "train": {"peak_rss_mib": 100.0 if tool == "crfsuite" else 50.0, "load_before": 0.5},
        "accuracy": accuracy,
    }


def write(runs: Path, records: list[dict]) -> None:
    for r in records:
        path = runs / r["suite"] / f"{r['name']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r), encoding="utf-8")


def test_steady_state_rates_leave_setup_out() -> None:
    r = lbfgs_record("chaincrf-t1", 1, [0.5, 0.6, 0.7], [3, 4, 6], 0.9)
    assert report.per_iteration(r) == pytest.approx(0.1)
    assert report.per_evaluation(r) == pytest.approx(0.2 / 3)
    assert report.setup_seconds(r) == pytest.approx(0.5)
    crfs = {"tool": "crfs", "summary": {"seconds": 2.0, "max_iterations": 4}, "progress": []}
    assert report.per_iteration(crfs) == pytest.approx(0.5)
    assert report.per_evaluation(crfs) is None


def test_cpu_seconds_stand_in_for_wall_seconds() -> None:
    r = lbfgs_record("chaincrf-t1", 1, [5.0, 9.0, 13.0], [3, 4, 6], 0.9)
    # A loaded machine: 4 s of wall time per iteration, 1 s of it on a CPU.
    for row, cpu in zip(r["progress"], [20.0, 21.0, 22.0], strict=True):
        row["cpu_seconds"] = cpu
    assert report.per_iteration(r) == pytest.approx(1.0)
    assert report.per_evaluation(r) == pytest.approx(2.0 / 3)
    assert report.setup_seconds(r) == pytest.approx(5.0)
    assert "wall-clock" not in report.timing_note([r])
    # A CPU span too short for the sampling's resolution: wall-clock seconds.
    for row, cpu in zip(r["progress"], [20.0, 20.1, 20.2], strict=True):
        row["cpu_seconds"] = cpu
    assert report.per_iteration(r) == pytest.approx(4.0)
    assert "use wall-clock seconds" in report.timing_note([r])
    # With fewer than two CPU figures, too.
    for row in r["progress"][1:]:
        del row["cpu_seconds"]
    assert report.per_iteration(r) == pytest.approx(4.0)


def test_tables_take_medians_and_ratios(tmp_path: Path) -> None:
    records = [
        lbfgs_record("crfsuite", 1, [0.1, 0.3, 0.5], [2, 3, 4], 0.80),
        lbfgs_record("crfsuite", 2, [0.1, 0.5, 0.9], [2, 3, 4], 0.80),
        lbfgs_record("crfsuite", 3, [0.1, 0.4, 0.7], [2, 3, 4], 0.80),
        lbfgs_record("chaincrf-t1", 1, [0.9, 1.0, 1.1], [2, 3, 4], 0.81),
        lbfgs_record("chaincrf-t1", 2, [0.9, 1.05, 1.2], [2, 3, 4], 0.81),
        lbfgs_record("chaincrf-t1", 3, [0.9, 1.1, 1.3], [2, 3, 4], 0.81),
        {"suite": "chunking", "name": "ap-chaincrf-t1-order1", "tool": "chaincrf-t1", "algorithm": "ap",
         "status": "unavailable", "message": "chaincrf: error: ap is not available in this build"},
    ]  # fmt: skip
    write(tmp_path, records)
    text = report.report(tmp_path)
    # CRFsuite: median 0.3 s per iteration and per evaluation; chaincrf 0.15: ratio 0.50.
    lbfgs_rows = [line for line in text.splitlines() if line.startswith("| chaincrf, 1 thread")]
    assert lbfgs_rows and "| 0.1500 | **0.1500** (0.100, 0.150, 0.200)" in lbfgs_rows[0]
    assert "| 0.50 | 0.50 | 0.50 |" in lbfgs_rows[0]
    algo = [line for line in text.splitlines() if line.startswith("| `lbfgs` | chaincrf |")]
    assert algo and "| +1.00 |" in algo[0]
    assert "| `ap` | chaincrf | 0 | | unavailable: chaincrf: error: ap is not available in this build |" in text


def test_no_records_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no run records"):
        report.report(tmp_path)


def test_measured_child_reports_its_own_figures(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    m = measure.run([sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"], stdout=out)
    assert m.returncode == 3
    assert out.read_text().strip() == "hi"
    assert m.wall_seconds > 0
    assert m.peak_rss_mib > 0


def test_watched_child_gets_cpu_marks_per_line(tmp_path: Path) -> None:
    log = tmp_path / "progress.jsonl"
    child = (
        "import sys, time\n"
        "with open(sys.argv[1], 'w') as f:\n"
        "    for i in range(3):\n"
        "        end = time.process_time() + 0.15\n"
        "        while time.process_time() < end: pass\n"
        "        f.write(f'{i}\\n'); f.flush(); time.sleep(0.1)\n"
    )
    m = measure.run([sys.executable, "-c", child, str(log)], watch=log)
    assert m.returncode == 0
    marks = m.cpu_marks or []
    assert len(marks) == 3
    assert marks == sorted(marks)
    # About 0.15 CPU seconds between lines (10 ms clock ticks, 20 ms polling).
    assert 0.08 < marks[2] - marks[0] < 0.6
    assert measure.run([sys.executable, "-c", "pass"]).cpu_marks is None
