"""A parser of CRFsuite's training log, as python-crfsuite's ``Trainer.logparser``.

The trainer turns each progress report into CRFsuite's log lines and passes
them to ``Trainer.message``; the default ``message`` feeds them here. The parser
keeps the state python-crfsuite users read (``iterations``, ``last_iteration``,
``featgen_num_features``, ``training_seconds``, ...) and tells the trainer which
event a line completes (``start``, ``featgen_progress``, ``featgen_end``,
``prepared``, ``prepare_error``, ``iteration``, ``optimization_end``, ``end``).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, NamedTuple, Optional

__all__ = ["LabelScore", "TrainLogParser"]


class LabelScore(NamedTuple):
    """Held-out counts and scores of one label."""

    match: int
    model: int
    ref: int
    precision: Optional[float]
    recall: Optional[float]
    f1: Optional[float]


_HEAD = re.compile(r"\*{5} (?:Iteration|Epoch) #(\d+) \*{5}\n")
_SECONDS = re.compile(r"Seconds required: (\d+\.\d+)")
_FIELDS = [
    ("loss", re.compile(r"Loss: (\d+\.\d+)"), float),
    ("feature_norm", re.compile(r"Feature norm: (\d+\.\d+)"), float),
    ("error_norm", re.compile(r"Error norm: (\d+\.\d+)"), float),
    ("active_features", re.compile(r"Active features: (\d+)"), int),
    ("linesearch_trials", re.compile(r"Line search trials: (\d+)"), int),
    ("linesearch_step", re.compile(r"Line search step: (\d+\.\d+)"), float),
    ("time", re.compile(r"Seconds required for this iteration: (\d+\.\d+)"), float),
]
_MACRO = re.compile(r"Macro-average precision, recall, F1: \((\d\.\d+), (\d\.\d+), (\d\.\d+)\)")
_ITEM_ACC = re.compile(r"Item accuracy: (\d+) / (\d+)")
_INSTANCE_ACC = re.compile(r"Instance accuracy: (\d+) / (\d+)")
_LABEL = re.compile(r"\s{4}(.+): \((\d+), (\d+), (\d+)\) \((\d\.\d+), (\d\.\d+), (\d\.\d+)\)")
_LABEL_EMPTY = re.compile(r"\s{4}(.+): \(0, 0, 0\) \(\*{6}, \*{6}, \*{6}\)")


class TrainLogParser:
    """Reads CRFsuite's training log line by line."""

    def __init__(self) -> None:
        self.state: Optional[str] = None
        self.featgen_percent = -2
        self.featgen_num_features: Optional[int] = None
        self.featgen_seconds: Optional[float] = None
        self.training_seconds: Optional[float] = None
        self.storing_seconds: Optional[float] = None
        self.iterations: list[dict[str, Any]] = []
        self.last_iteration: Optional[dict[str, Any]] = None
        self.log: list[str] = []
        self.events: list[tuple[str, int, int]] = []

    def feed(self, line: str) -> Optional[str]:
        """Reads one line; returns the event it completes, if any."""
        self.log.append(line)
        if self.state is None:
            self.state = "STARTING"
            self._starting(line)
            self.events.append(("start", 0, len(self.log)))
            return "start"
        event = getattr(self, "_" + self.state.lower())(line)
        if event is not None:
            start, end = self.events[-1][2], len(self.log)
            if event in ("prepared", "optimization_end"):
                end -= 1
            self.events.append((event, start, end))
        return event

    @property
    def last_log(self) -> str:
        """The log text of the last event."""
        _, start, end = self.events[-1]
        return "".join(self.log[start:end])

    def _starting(self, line: str) -> None:
        if line.startswith("Feature generation"):
            self.state = "FEATGEN"

    def _featgen(self, line: str) -> Optional[str]:
        if line and line in "0123456789.10":
            self.featgen_percent += 2
            return "featgen_progress"
        m = re.match(r"Number of features: (\d+)", line)
        if m:
            self.featgen_num_features = int(m.group(1))
            return None
        m = _SECONDS.match(line)
        if m:
            self.featgen_seconds = float(m.group(1))
            self.state = "AFTER_FEATGEN"
            return "featgen_end"
        return None

    def _after_featgen(self, line: str) -> Optional[str]:
        if _HEAD.match(line):
            self.state = "ITERATION"
            self._iteration(line)
            return "prepared"
        if "terminated with error" in line:
            self.state = "AFTER_ITERATION"
            return "prepare_error"
        return None

    def _iteration(self, line: str) -> Optional[str]:
        head = _HEAD.match(line)
        if head:
            self.last_iteration = {"num": int(head.group(1)), "scores": {}}
            self.iterations.append(self.last_iteration)
            return None
        if line == "\n":
            self.state = "AFTER_ITERATION"
            return "iteration"
        it = self.last_iteration
        assert it is not None
        for key, pattern, cast in _FIELDS:
            m = pattern.match(line)
            if m:
                it[key] = cast(m.group(1))
                return None
        m = _MACRO.match(line)
        if m:
            it["avg_precision"], it["avg_recall"], it["avg_f1"] = (float(g) for g in m.groups())
            return None
        for key, pattern in (("item_accuracy", _ITEM_ACC), ("instance_accuracy", _INSTANCE_ACC)):
            m = pattern.match(line)
            if m:
                acc = Fraction(int(m.group(1)), int(m.group(2))) if int(m.group(2)) else Fraction(0)
                it[key] = acc
                it[key + "_float"] = float(acc)
                return None
        m = _LABEL.match(line)
        if m:
            counts = [int(g) for g in m.groups()[1:4]]
            scores = [float(g) for g in m.groups()[4:7]]
            it["scores"][m.group(1)] = LabelScore(*counts, *scores)
            return None
        m = _LABEL_EMPTY.match(line)
        if m:
            it["scores"][m.group(1)] = LabelScore(0, 0, 0, None, None, None)
        return None

    def _after_iteration(self, line: str) -> Optional[str]:
        if _HEAD.match(line):
            self.state = "ITERATION"
            return self._iteration(line)
        m = re.match(r"Total seconds required for training: (\d+\.\d+)", line)
        if m:
            self.training_seconds = float(m.group(1))
        if line.startswith("Storing the model"):
            self.state = "STORING"
            return "optimization_end"
        return None

    def _storing(self, line: str) -> Optional[str]:
        if line == "\n":
            return "end"
        m = _SECONDS.match(line)
        if m:
            self.storing_seconds = float(m.group(1))
        return None
