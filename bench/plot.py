"""Plots of the run records (matplotlib, when installed; otherwise a note).

One figure per suite that has progress rows: the objective against training
seconds for L-BFGS (each tool's first repetition), and against the epoch for
each online algorithm (first shuffled order); plus dev F1 against seconds for
the curve suite. SVG files go to ``<runs>/plots/``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from bench.report import LABELS, Record, load_records, timed_rows, train_seconds
from bench.tools import ALGORITHMS


def _first_runs(records: list[Record]) -> dict[str, dict[str, Record]]:
    """Per algorithm, per tool: the run of the first repetition or order."""
    out: dict[str, dict[str, Record]] = defaultdict(dict)
    for r in sorted(records, key=lambda r: (r.get("repetition") or 0, r.get("order") or 0)):
        if r.get("status") == "ok" and r.get("progress"):
            out[str(r["algorithm"])].setdefault(str(r["tool"]), r)
    return out


def plot(runs: Path) -> list[Path]:
    """Writes the figures; returns their paths (none, with a note, without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed here; no plots (prepare installs it in the bench venv)")
        return []
    records = load_records(runs)
    written = []
    by_suite: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_suite[str(r["suite"])].append(r)
    for suite in ("chunking", "pku-capped", "pku-short"):
        firsts = _first_runs(by_suite.get(suite, []))
        algorithms = [a for a in ALGORITHMS if a in firsts]
        if not algorithms:
            continue
        fig, axes = plt.subplots(1, len(algorithms), figsize=(4.2 * len(algorithms), 3.6), squeeze=False)
        for ax, algorithm in zip(axes[0], algorithms, strict=True):
            for tool, r in firsts[algorithm].items():
                rows = [row for row in r["progress"] if row.get("objective") is not None]  # type: ignore[union-attr]
                if algorithm == "lbfgs":
                    # CPU seconds where recorded (the report's clock), counted from iteration 1.
                    rows = [row for row in timed_rows(r, cpu=True) if row.get("objective") is not None]
                    xs = [float(row["seconds"]) - float(rows[0]["seconds"]) for row in rows]  # type: ignore[arg-type]
                    ax.set_xlabel("seconds after iteration 1")
                else:
                    xs = [row["iteration"] for row in rows]
                    ax.set_xlabel("epoch")
                ax.plot(xs, [row["objective"] for row in rows], marker=".", label=LABELS.get(tool, tool))
            ax.set_title(f"{suite}: {algorithm}", fontsize=10)
            ax.set_ylabel("objective (each tool's own loss)")
            if algorithm == "lbfgs":
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = runs / "plots" / f"{suite}.svg"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    curve = [r for r in by_suite.get("curve", []) if r.get("status") == "ok"]
    if curve:
        series: dict[str, list[Record]] = defaultdict(list)
        for r in curve:
            series[str(r["series"])].append(r)
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, rs in sorted(series.items()):
            rs.sort(key=lambda r: int(r["cap"]))  # type: ignore[call-overload]
            ax.plot([train_seconds(r) for r in rs], [r["words"]["f1"] for r in rs], "o-", label=name)  # type: ignore[index]
        ax.set_xlabel("seconds of training")
        ax.set_ylabel("word F1, held-out 5% of 199801")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = runs / "plots" / "curve.svg"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
