"""Scorers for scikit-learn's ``cross_val_score``, ``GridSearchCV`` and the like."""

from __future__ import annotations

try:
    from sklearn.metrics import make_scorer
except ImportError as e:
    raise ImportError(
        "chaincrf.sklearn_crfsuite.scorers needs scikit-learn, which is not installed: "
        "pip install scikit-learn (or chaincrf[sklearn])"
    ) from e

from . import metrics

__all__ = ["flat_accuracy", "sequence_accuracy"]

flat_accuracy = make_scorer(metrics.flat_accuracy_score)
sequence_accuracy = make_scorer(metrics.sequence_accuracy_score)
