"""Token-level metrics on lists of label sequences (scikit-learn's metrics on
the flattened labels) and sequence accuracy."""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable, Sequence

from .utils import flatten

__all__ = [
    "flat_accuracy_score",
    "flat_classification_report",
    "flat_f1_score",
    "flat_fbeta_score",
    "flat_precision_score",
    "flat_recall_score",
    "sequence_accuracy_score",
]


def _sklearn_metrics() -> Any:
    """``sklearn.metrics``, or an ImportError that says how to get it."""
    try:
        from sklearn import metrics
    except ImportError as e:
        raise ImportError(
            "chaincrf.sklearn_crfsuite.metrics uses scikit-learn's metrics, which is not installed: "
            "pip install scikit-learn (or chaincrf[sklearn])"
        ) from e
    return metrics


def _flat(func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)
    def wrapper(y_true: Sequence[Sequence[Any]], y_pred: Sequence[Sequence[Any]], *args: Any, **kwargs: Any) -> Any:
        if len(y_true) != len(y_pred):
            raise ValueError(f"y_true has {len(y_true)} sequences but y_pred has {len(y_pred)}")
        for i, (a, b) in enumerate(zip(y_true, y_pred)):
            if len(a) != len(b):
                raise ValueError(f"sequence {i}: {len(a)} true labels but {len(b)} predicted")
        return func(flatten(y_true), flatten(y_pred), *args, **kwargs)

    return wrapper


@_flat
def flat_accuracy_score(y_true: Any, y_pred: Any) -> float:
    """Accuracy over all positions of all sequences."""
    metrics = _sklearn_metrics()

    return float(metrics.accuracy_score(y_true, y_pred))


@_flat
def flat_precision_score(y_true: Any, y_pred: Any, **kwargs: Any) -> Any:
    """scikit-learn's ``precision_score`` over all positions."""
    metrics = _sklearn_metrics()

    return metrics.precision_score(y_true, y_pred, **kwargs)


@_flat
def flat_recall_score(y_true: Any, y_pred: Any, **kwargs: Any) -> Any:
    """scikit-learn's ``recall_score`` over all positions."""
    metrics = _sklearn_metrics()

    return metrics.recall_score(y_true, y_pred, **kwargs)


@_flat
def flat_f1_score(y_true: Any, y_pred: Any, **kwargs: Any) -> Any:
    """scikit-learn's ``f1_score`` over all positions."""
    metrics = _sklearn_metrics()

    return metrics.f1_score(y_true, y_pred, **kwargs)


@_flat
def flat_fbeta_score(y_true: Any, y_pred: Any, beta: float, **kwargs: Any) -> Any:
    """scikit-learn's ``fbeta_score`` over all positions."""
    metrics = _sklearn_metrics()

    return metrics.fbeta_score(y_true, y_pred, beta=beta, **kwargs)


@_flat
def flat_classification_report(y_true: Any, y_pred: Any, labels: Any = None, **kwargs: Any) -> Any:
    """scikit-learn's ``classification_report`` over all positions."""
    metrics = _sklearn_metrics()

    return metrics.classification_report(y_true, y_pred, labels=labels, **kwargs)


def sequence_accuracy_score(y_true: Sequence[Sequence[Any]], y_pred: Sequence[Sequence[Any]]) -> float:
    """The fraction of sequences predicted entirely right."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} sequences but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        return 0.0
    right = sum(1 for a, b in zip(y_true, y_pred) if list(a) == list(b))
    return right / len(y_true)
