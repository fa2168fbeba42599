"""Markdown tables from the run records under ``bench/runs/<date>-<machine>/``.

Nothing here runs a tool: every figure is read back from the JSON records, so
a report can be rebuilt from a committed results folder. Times are medians
over alternating repetitions; ratios put each tool beside python-crfsuite's
same algorithm measured in the same session.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

Record = dict[str, object]

LABELS = {
    "crfsuite": "CRFsuite (python-crfsuite)",
    "chaincrf-t1": "chaincrf, 1 thread",
    "chaincrf-t2": "chaincrf, 2 threads",
    "crfs": "crfs 0.4",
}
TOOL_ORDER = list(LABELS)
NA = "n/a"


def load_records(runs: Path) -> list[Record]:
    """Every run record under ``runs`` (one JSON file per run, one folder per suite)."""
    records = []
    for path in sorted(runs.glob("*/*.json")):
        with open(path, encoding="utf-8") as f:
            try:
                records.append(json.load(f))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not a run record: {e}") from None
    return records


def iterations(record: Record) -> int | None:
    """Iterations (L-BFGS) or epochs the run made; crfs reports none, so its cap stands in."""
    summary = record.get("summary") or {}
    assert isinstance(summary, dict)
    if summary.get("iterations") is not None:
        return int(summary["iterations"])
    if record.get("tool") == "crfs" and summary.get("max_iterations"):
        return int(summary["max_iterations"])
    return None


def train_seconds(record: Record) -> float | None:
    """Seconds the tool reports for training itself (reading the data excluded)."""
    summary = record.get("summary") or {}
    assert isinstance(summary, dict)
    seconds = summary.get("seconds")
    return float(seconds) if seconds is not None else None


def timed_rows(record: Record, cpu: bool = False) -> list[dict[str, object]]:
    """Progress rows with a time. With ``cpu``, the rows' CPU seconds stand in
    for their seconds when at least two rows have them (CRFsuite's own figures
    are CPU time; chaincrf's rows are wall-clock, and the harness samples the
    CPU time as each row appears), so that a loaded machine's waiting does not
    count; otherwise (or when the CPU span is under ``CPU_MIN_SPAN``, too short
    for the sampling's resolution) the rows' own seconds."""
    rows = record.get("progress") or []
    assert isinstance(rows, list)
    if cpu:
        timed = _cpu_rows(rows)
        if timed:
            return timed
    return [r for r in rows if r.get("seconds") is not None]


# The harness samples CPU time in 10 ms clock ticks every 20 ms: below this
# span between the first and the last row, the figure would be mostly error.
CPU_MIN_SPAN = 1.0


def _cpu_rows(rows: list[dict[str, object]]) -> list[dict[str, object]] | None:
    timed = [r for r in rows if r.get("cpu_seconds") is not None]
    if len(timed) < 2 or float(timed[-1]["cpu_seconds"]) - float(timed[0]["cpu_seconds"]) < CPU_MIN_SPAN:  # type: ignore[arg-type]
        return None
    return [{**r, "seconds": r["cpu_seconds"]} for r in timed]


def per_iteration(record: Record) -> float | None:
    """Seconds per iteration (epoch) in steady state: from the first progress row to
    the last, so that setup and the first iteration's one-off work (building the
    feature layout, starting threads) do not count; the total over the count when
    there are fewer than two rows (crfs reports none). CPU seconds where the
    record has them (see :func:`timed_rows`)."""
    rows = timed_rows(record, cpu=True)
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        steps = int(last["iteration"]) - int(first["iteration"])  # type: ignore[call-overload]
        return (float(last["seconds"]) - float(first["seconds"])) / steps if steps else None  # type: ignore[arg-type]
    n, s = iterations(record), train_seconds(record)
    return s / n if n and s is not None else None


def per_evaluation(record: Record) -> float | None:
    """Seconds per L-BFGS function + gradient evaluation, between the first and the
    last progress row (both tools' rows count evaluations cumulatively); CPU
    seconds where the record has them."""
    rows = [r for r in timed_rows(record, cpu=True) if r.get("evaluations") is not None]
    if len(rows) < 2:
        return None
    first, last = rows[0], rows[-1]
    evaluations = int(last["evaluations"]) - int(first["evaluations"])  # type: ignore[call-overload]
    seconds = float(last["seconds"]) - float(first["seconds"])  # type: ignore[arg-type]
    return seconds / evaluations if evaluations > 0 else None


def setup_seconds(record: Record) -> float | None:
    """Training seconds the tool reports up to its first progress row (setup and
    the first iteration)."""
    rows = timed_rows(record)
    return float(rows[0]["seconds"]) if rows else None  # type: ignore[arg-type]


def peak_rss(record: Record) -> float | None:
    train = record.get("train") or {}
    assert isinstance(train, dict)
    return train.get("peak_rss_mib")


def median(values: Iterable[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return statistics.median(xs) if xs else None


def mean(values: Iterable[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return statistics.fmean(xs) if xs else None


def fmt(value: float | None, spec: str = ".3f") -> str:
    return NA if value is None else format(value, spec)


def ratio(a: float | None, b: float | None) -> str:
    return NA if a is None or b is None or b == 0 else f"{a / b:.2f}"


def _ok(records: Iterable[Record]) -> list[Record]:
    return [r for r in records if r.get("status") == "ok"]


def _status_note(records: list[Record]) -> str:
    bad = [r for r in records if r.get("status") != "ok"]
    if not bad:
        return ""
    first = str(bad[0].get("message", "")).splitlines()
    return f"{bad[0].get('status')}: {first[-1] if first else ''}"


def lbfgs_table(records: list[Record], accuracy: bool) -> list[str]:
    """L-BFGS: per tool, medians over the alternating repetitions."""
    by_tool: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r.get("algorithm") == "lbfgs":
            by_tool[str(r["tool"])].append(r)
    if not by_tool:
        return []
    base = _ok(by_tool.get("crfsuite", []))
    base_eval = median(per_evaluation(r) for r in base)
    base_iter = median(per_iteration(r) for r in base)
    base_rss = median(peak_rss(r) for r in base)
    head = "| tool | runs | features | iterations | evaluations | s/iteration | s/evaluation (each run) "
    head += "| peak RSS MiB | s/iter. ÷ CRFsuite | s/eval. ÷ CRFsuite | RSS ÷ CRFsuite |"
    rule = "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    if accuracy:
        head += " token accuracy |"
        rule += "---:|"
    lines = [head, rule]
    for tool in TOOL_ORDER:
        rs = by_tool.get(tool)
        if not rs:
            continue
        ok = _ok(rs)
        if not ok:
            lines.append(f"| {LABELS[tool]} | 0 | {_status_note(rs)} |" + " |" * (rule.count("|") - 3))
            continue
        summaries = [r.get("summary") or {} for r in ok]
        features = median(s.get("features") for s in summaries if isinstance(s, dict))
        evals = median(s.get("evaluations") for s in summaries if isinstance(s, dict))
        runs = ", ".join(fmt(per_evaluation(r)) for r in ok)
        pe, pi, rss = (
            median(per_evaluation(r) for r in ok),
            median(per_iteration(r) for r in ok),
            median(peak_rss(r) for r in ok),
        )
        row = (
            f"| {LABELS[tool]} | {len(ok)} | {fmt(features, ',.0f')} | {fmt(median(iterations(r) for r in ok), '.0f')} "
        )
        row += f"| {fmt(evals, '.0f')} | {fmt(pi, '.4f')} | **{fmt(pe, '.4f')}** ({runs}) | {fmt(rss, '.0f')} "
        row += f"| {ratio(pi, base_iter)} | {ratio(pe, base_eval)} | {ratio(rss, base_rss)} |"
        if accuracy:
            row += f" {fmt(median(r.get('accuracy') for r in ok), '.4f')} |"  # type: ignore[misc]
        lines.append(row)
    return lines


def algorithms_table(records: list[Record], words: bool) -> list[str]:
    """Every algorithm beside python-crfsuite's same algorithm: accuracy (mean over
    the shuffled orders) and training seconds per iteration or epoch (median)."""
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        if r.get("tool") == "chaincrf-t2":
            continue
        groups[(str(r["algorithm"]), str(r["tool"]))].append(r)
    if not groups:
        return []
    head = "| algorithm | tool | runs | cap | token accuracy (mean) | Δ vs CRFsuite (points) | s per iteration/epoch "
    head += "| ÷ CRFsuite | peak RSS MiB |"
    rule = "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    if words:
        head += " word F1 (mean) |"
        rule += "---:|"
    lines = [head, rule]
    from bench.tools import ALGORITHMS

    for algorithm in ALGORITHMS:
        base = _ok(groups.get((algorithm, "crfsuite"), []))
        base_acc = mean(r.get("accuracy") for r in base)  # type: ignore[misc]
        base_time = median(per_iteration(r) for r in base)
        for tool in TOOL_ORDER:
            rs = groups.get((algorithm, tool))
            if not rs:
                continue
            ok = _ok(rs)
            label = LABELS[tool].replace(", 1 thread", "")
            if not ok:
                lines.append(f"| `{algorithm}` | {label} | 0 | | {_status_note(rs)} |" + " |" * (rule.count("|") - 6))
                continue
            acc = mean(r.get("accuracy") for r in ok)  # type: ignore[misc]
            delta = NA if acc is None or base_acc is None or tool == "crfsuite" else f"{100 * (acc - base_acc):+.2f}"
            t = median(per_iteration(r) for r in ok)
            cap = ok[0].get("cap")
            cap_text = "none" if cap is None else cap
            row = f"| `{algorithm}` | {label} | {len(ok)} | {cap_text} | {fmt(acc, '.4f')} | {delta} "
            row += f"| {fmt(t, '.4f')} | {ratio(t, base_time)} | {fmt(median(peak_rss(r) for r in ok), '.0f')} |"
            if words:
                f1 = mean((r.get("words") or {}).get("f1") for r in ok)  # type: ignore[union-attr]
                row += f" {fmt(f1, '.4f')} |"
            lines.append(row)
    return lines


def cws_table(records: list[Record]) -> list[str]:
    train = next((r for r in records if r.get("name") == "train" and r.get("status") == "ok"), None)
    lines: list[str] = []
    if train:
        s = train.get("summary") or {}
        t = train.get("train") or {}
        sc = next((r.get("scores") for r in records if r.get("name") == "score-chaincrf-t1"), None) or {}
        assert isinstance(s, dict) and isinstance(t, dict) and isinstance(sc, dict)
        lines += [
            "| `cws train` (defaults) | wall s | peak RSS MiB | iterations | termination | model MiB "
            "| F1 (PKU test) | OOV recall |",
            "|---|---:|---:|---:|---|---:|---:|---:|",
            f"| chaincrf | {fmt(t.get('wall_seconds'), '.1f')} | {fmt(t.get('peak_rss_mib'), '.0f')} "
            f"| {s.get('iterations')} "
            f"| {(s.get('termination') or {}).get('name')} | {int(train.get('model_bytes', 0)) / 2**20:.1f} "  # type: ignore[call-overload]
            f"| {fmt(sc.get('f1'), '.4f')} | {fmt(sc.get('oov_recall'), '.4f')} |",
            "",
        ]
    scores = {str(r["tool"]): r.get("scores") or {} for r in _ok(records) if r.get("algorithm") == "score"}
    segs: dict[str, list[Record]] = defaultdict(list)
    for r in _ok(records):
        if r.get("algorithm") == "segment":
            segs[str(r["tool"])].append(r)
    if segs:
        lines += [
            "| segmenter (PKU test) | F1 | OOV recall | runs | chars/s, whole process (median) "
            "| chars/s, excluding load | peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for tool in ("chaincrf-t1", "chaincrf-t2", "jieba"):
            rs = segs.get(tool)
            if not rs:
                continue
            sc = scores.get(tool, {})
            assert isinstance(sc, dict)
            cps = median(float(r["chars"]) / r["segment"]["wall_seconds"] for r in rs)  # type: ignore[index,arg-type]
            inner = median(
                float(r["inside"]["chars"]) / r["inside"]["seconds"]  # type: ignore[index,arg-type]
                for r in rs
                if isinstance(r.get("inside"), dict)
            )
            rss = median(r["segment"]["peak_rss_mib"] for r in rs)  # type: ignore[index]
            label = SEGMENTERS[tool]
            lines.append(
                f"| {label} | {fmt(sc.get('f1'), '.4f')} | {fmt(sc.get('oov_recall'), '.4f')} | {len(rs)} "
                f"| {fmt(cps, ',.0f')} | {fmt(inner, ',.0f')} | {fmt(rss, '.0f')} |"
            )
    return lines


SEGMENTERS = {
    "chaincrf-t1": "`chaincrf cws segment`, 1 thread",
    "chaincrf-t2": "`chaincrf cws segment`, 2 threads",
    "jieba": "jieba-rs 0.11 (default dictionary, HMM)",
}


def curve_table(records: list[Record]) -> list[str]:
    series: dict[str, dict[int, Record]] = defaultdict(dict)
    for r in _ok(records):
        series[str(r["series"])][int(r["cap"])] = r  # type: ignore[call-overload]
    if not series:
        return []
    lines = ["| series | L-BFGS iterations (cap) | train s | objective | dev word F1 |", "|---|---:|---:|---:|---:|"]
    for name in sorted(series):
        for cap, r in sorted(series[name].items()):
            s = r.get("summary") or {}
            assert isinstance(s, dict)
            f1 = (r.get("words") or {}).get("f1")  # type: ignore[union-attr]
            lines.append(
                f"| {name} | {cap} | {fmt(train_seconds(r), '.2f')} | {fmt(s.get('final_objective'), '.1f')} "
                f"| {fmt(f1, '.4f')} |"
            )
    return lines


def machine_lines(runs: Path, records: list[Record]) -> list[str]:
    root = Path(__file__).resolve().parent.parent
    shown = runs.relative_to(root) if runs.is_relative_to(root) else runs
    lines = [f"Results folder: `{shown}`."]
    info_path = runs / "machine.json"
    cores = os.cpu_count() or 1
    if info_path.exists():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        cores = int(info.get("cores", cores))
        lines.append(
            "Machine: {host}, {cpu}, {cores} cores; chaincrf {revision}; "
            "python-crfsuite {pycrfsuite}; crfs {crfs}.".format(
                **{k: info.get(k, "?") for k in ("host", "cpu", "cores", "revision", "pycrfsuite", "crfs")}
            )
        )
    loads = [
        float(r["train"]["load_before"])
        for r in records
        if isinstance(r.get("train"), dict) and "load_before" in r["train"]
    ]  # type: ignore[index]
    if loads:
        load = statistics.median(loads)
        note = f"Median one-minute load average before each run: {load:.1f}"
        if load > cores:
            note += f" on {cores} cores: **taken on a loaded machine**; treat ratios as rough, absolute times as slow"
        lines.append(note + ".")
    return lines


def timing_note(records: list[Record]) -> str:
    """Says which clock the per-iteration figures come from."""

    def has_cpu(r: Record) -> bool:
        rows = r.get("progress") or []
        assert isinstance(rows, list)
        return _cpu_rows(rows) is not None

    # CRFsuite's own seconds are CPU time at any length; crfs reports no progress.
    timed = [r for r in _ok(records) if r.get("tool") not in ("crfs", "crfsuite") and r.get("progress")]
    wall = sorted({str(r["tool"]) for r in timed if not has_cpu(r)})
    note = (
        "Seconds per iteration, epoch or evaluation are CPU seconds (user + system, all threads): "
        "CRFsuite's own `clock()` figures, and for chaincrf the process's CPU time sampled by the "
        "harness as each progress row appears"
    )
    if wall:
        note += f"; runs without CPU figures, or too short for them ({', '.join(wall)}), use wall-clock seconds"
    return note + "."


SECTIONS = {
    "chunking": "CRF++'s chunking sample (77 training sentences, CRFsuite attributes from its template)",
    "pku-short": "PKU character tagging, short L-BFGS runs",
    "pku-capped": "PKU character tagging, capped runs of every algorithm",
    "cws": "`chaincrf cws train` and `cws segment` on PKU",
    "curve": "Dev F1 against training time (PKU, every 20th sentence held out)",
}


def report(runs: Path) -> str:
    """The Markdown report of every suite found under ``runs``."""
    records = load_records(runs)
    if not records:
        raise SystemExit(f"no run records under {runs}")
    by_suite: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_suite[str(r["suite"])].append(r)
    out = ["# Benchmark report", "", *machine_lines(runs, records), timing_note(records), ""]
    for suite, title in SECTIONS.items():
        rs = by_suite.get(suite)
        if not rs:
            continue
        out += [f"## {title}", ""]
        if suite in ("chunking", "pku-capped", "pku-short"):
            table = lbfgs_table(rs, accuracy=suite != "pku-short")
            if table:
                out += ["L-BFGS, alternating repetitions, medians:", "", *table, ""]
        if suite in ("chunking", "pku-capped"):
            out += ["Every algorithm (online ones: one run per shuffled order, 1 thread):", ""]
            out += [*algorithms_table(rs, words=suite == "pku-capped"), ""]
        if suite == "cws":
            out += [*cws_table(rs), ""]
        if suite == "curve":
            out += [*curve_table(rs), ""]
    return "\n".join(out)
