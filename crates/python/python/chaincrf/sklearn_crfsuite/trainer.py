"""The trainer ``CRF`` uses by default: one line per iteration when verbose."""

from __future__ import annotations

from typing import Any

from .. import pycrfsuite

__all__ = ["LinePerIterationTrainer"]


class LinePerIterationTrainer(pycrfsuite.Trainer):
    """A ``pycrfsuite.Trainer`` that prints each iteration on one line and,
    with held-out data, a per-label table at the end."""

    def on_start(self, log: str) -> None:
        pass

    def on_featgen_progress(self, log: str, percent: int) -> None:
        pass

    def on_featgen_end(self, log: str) -> None:
        pass

    def on_prepared(self, log: str) -> None:
        pass

    def on_iteration(self, log: str, info: dict[str, Any]) -> None:
        parts = [f"Iter {info['num']:<3} ", f"time={info.get('time', 0.0):<5.2f} ", f"loss={info['loss']:<8.2f} "]
        if "active_features" in info:
            parts.append(f"active={info['active_features']:<5} ")
        if "avg_precision" in info:
            parts.append(
                f"precision={info['avg_precision']:0.3f}  recall={info['avg_recall']:0.3f}  "
                f"F1={info['avg_f1']:0.3f}  "
                f"Acc(item/seq)={info['item_accuracy_float']:0.3f} {info['instance_accuracy_float']:0.3f}  "
            )
        if "feature_norm" in info:
            parts.append(f"feature_norm={info['feature_norm']:<8.2f}")
        print("".join(parts).strip())

    def on_optimization_end(self, log: str) -> None:
        last = self.logparser.last_iteration or {}
        scores = last.get("scores") or {}
        if scores:
            rows = [("Label", "Precision", "Recall", "F1", "Support")]
            for label, s in sorted(scores.items()):
                fmt = lambda x: "-" if x is None else f"{x:0.3f}"  # noqa: E731
                rows.append((label, fmt(s.precision), fmt(s.recall), fmt(s.f1 or 0.0), str(s.ref)))
            widths = [max(len(r[i]) for r in rows) for i in range(5)]
            lines = [
                "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows
            ]
            print("=" * len(lines[0]))
            print(lines[0])
            print("-" * len(lines[0]))
            for line in lines[1:]:
                print(line)
            print("-" * len(lines[0]))

    def on_end(self, log: str) -> None:
        pass
