"""CRFsuite's training algorithms and parameters: names, types, defaults, help.

One table serves ``chaincrf.pycrfsuite.Trainer`` (``params``, ``get``, ``set``,
``help``) and ``chaincrf.sklearn_crfsuite.CRF``. Values are checked when set,
so a typo or a value CRFsuite would silently read as 0 is a ``ValueError``
naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

Value = Union[float, int, bool, str]

#: CRFsuite's largest iteration count, its "no limit" for L-BFGS.
INT_MAX = 2147483647


def _to_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return value.strip() == "1"
    raise ValueError(f"parameter {name}: expected 0 or 1 (or a bool), got {value!r}")


def _to_int(name: str, value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"parameter {name}: expected an integer, got {value!r}")


def _to_float(name: str, value: object) -> float:
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            raise ValueError(f"parameter {name}: expected a number, got {value!r}") from None
    else:
        try:
            x = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name}: expected a number, got {value!r}") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError(f"parameter {name}: {value!r} is not a finite number")
    return x


def _linesearch(name: str, value: object) -> str:
    allowed = ("MoreThuente", "Backtracking", "StrongBacktracking")
    if isinstance(value, str) and value in allowed:
        return value
    raise ValueError(f"parameter {name}: expected one of {', '.join(allowed)}, got {value!r}")


@dataclass(frozen=True)
class Param:
    """One CRFsuite parameter."""

    name: str
    cast: Callable[[str, object], Value]
    default: Value
    help: str
    minimum: float | None = 0.0

    def check(self, value: object) -> Value:
        """The value converted to the parameter's type; ValueError when it does not fit."""
        v = self.cast(self.name, value)
        if self.minimum is not None and not isinstance(v, str) and v < self.minimum:
            raise ValueError(f"parameter {self.name}: must be >= {self.minimum:g}, got {value!r}")
        return v


def _p(
    name: str, cast: Callable[[str, object], Value], default: Value, text: str, minimum: float | None = 0.0
) -> Param:
    return Param(name, cast, default, text, minimum)


_FEATURE = [
    _p("feature.minfreq", _to_float, 0.0, "The minimum frequency of features."),
    _p(
        "feature.possible_states",
        _to_bool,
        False,
        "Force to generate possible state features (every attribute with every label).",
    ),
    _p(
        "feature.possible_transitions",
        _to_bool,
        False,
        "Force to generate possible transition features (every label pair).",
    ),
]

#: Parameters of each algorithm, in CRFsuite's order (the feature ones first).
ALGORITHMS: dict[str, list[Param]] = {
    "lbfgs": _FEATURE
    + [
        _p("c1", _to_float, 0.0, "Coefficient for L1 regularization."),
        _p("c2", _to_float, 1.0, "Coefficient for L2 regularization."),
        _p("max_iterations", _to_int, INT_MAX, "The maximum number of iterations for L-BFGS optimization."),
        _p(
            "num_memories",
            _to_int,
            6,
            "The number of limited memories for approximating the inverse hessian matrix.",
            1,
        ),
        _p("epsilon", _to_float, 1e-5, "Epsilon for testing the convergence of the objective."),
        _p("period", _to_int, 10, "The duration of iterations to test the stopping criterion.", 1),
        _p(
            "delta",
            _to_float,
            1e-5,
            "The threshold for the stopping criterion: training stops when the objective improved "
            "by no more than this fraction over the last ${period} iterations.",
        ),
        _p(
            "linesearch",
            _linesearch,
            "MoreThuente",
            "The line search algorithm used in L-BFGS updates: MoreThuente, Backtracking or StrongBacktracking.",
            None,
        ),
        _p("max_linesearch", _to_int, 20, "The maximum number of trials for the line search algorithm.", 1),
    ],
    "l2sgd": _FEATURE
    + [
        _p("c2", _to_float, 1.0, "Coefficient for L2 regularization."),
        _p("max_iterations", _to_int, 1000, "The maximum number of iterations (epochs) for SGD optimization."),
        _p("period", _to_int, 10, "The duration of iterations to test the stopping criterion.", 1),
        _p(
            "delta",
            _to_float,
            1e-6,
            "The threshold for the stopping criterion: training stops when the objective improved "
            "by no more than this fraction over the last ${period} epochs.",
        ),
        _p("calibration.eta", _to_float, 0.1, "The initial value of learning rate (eta) used for calibration."),
        _p("calibration.rate", _to_float, 2.0, "The rate of increase/decrease of learning rate for calibration."),
        _p("calibration.samples", _to_float, 1000.0, "The number of instances used for calibration."),
        _p("calibration.candidates", _to_int, 10, "The number of candidates of learning rate.", 1),
        _p("calibration.max_trials", _to_int, 20, "The maximum number of trials of learning rates for calibration.", 1),
    ],
    "ap": _FEATURE
    + [
        _p("max_iterations", _to_int, 100, "The maximum number of iterations."),
        _p("epsilon", _to_float, 0.0, "The stopping criterion (the ratio of incorrect label predictions)."),
    ],
    "pa": _FEATURE
    + [
        _p(
            "type",
            _to_int,
            1,
            "The strategy for updating feature weights: "
            "0 (PA without slack variables), 1 (PA type I) or 2 (PA type II).",
        ),
        _p("c", _to_float, 1.0, "The aggressiveness parameter (used only for PA-I and PA-II)."),
        _p(
            "error_sensitive",
            _to_bool,
            True,
            "Include the square root of predicted incorrect labels into the optimization routine.",
        ),
        _p("averaging", _to_bool, True, "Compute the average of feature weights at all updates."),
        _p("max_iterations", _to_int, 100, "The maximum number of iterations."),
        _p("epsilon", _to_float, 0.0, "The stopping criterion (the ratio of incorrect label predictions)."),
    ],
    "arow": _FEATURE
    + [
        _p("variance", _to_float, 1.0, "The initial variance of every feature weight."),
        _p("gamma", _to_float, 1.0, "Tradeoff parameter."),
        _p("max_iterations", _to_int, 100, "The maximum number of iterations."),
        _p("epsilon", _to_float, 0.0, "The stopping criterion (the mean loss)."),
    ],
}

#: CRFsuite's spellings of the algorithm names.
ALIASES = {
    "lbfgs": "lbfgs",
    "l2sgd": "l2sgd",
    "ap": "ap",
    "averaged-perceptron": "ap",
    "pa": "pa",
    "passive-aggressive": "pa",
    "arow": "arow",
}


def canonical_algorithm(algorithm: object) -> str:
    """The algorithm's short name (``lbfgs``, ``l2sgd``, ``ap``, ``pa``, ``arow``)."""
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a str, got {type(algorithm).__name__}")
    name = ALIASES.get(algorithm.lower())
    if name is None:
        raise ValueError(f"unknown training algorithm {algorithm!r}: expected one of lbfgs, l2sgd, ap, pa, arow")
    return name


def table(algorithm: str) -> dict[str, Param]:
    """The parameters of ``algorithm`` by name."""
    return {p.name: p for p in ALGORITHMS[algorithm]}


def resolve_n_jobs(n_jobs: object) -> int:
    """scikit-learn's convention: None = 1 thread, -1 = every core, -2 = all but one..."""
    import os

    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int):
        raise TypeError(f"n_jobs must be an int or None, got {type(n_jobs).__name__}")
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning: use None (1 thread), a positive count, or -1 (every core)")
    if n_jobs > 0:
        return n_jobs
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores + 1 + n_jobs)
