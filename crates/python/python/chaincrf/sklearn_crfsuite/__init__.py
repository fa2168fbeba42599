"""sklearn-crfsuite's API on chaincrf: ``from chaincrf import sklearn_crfsuite``.

``CRF`` takes sklearn-crfsuite 0.5.0's arguments (plus ``n_jobs``), and the
``metrics``, ``scorers`` and ``utils`` submodules are there too (``metrics``
and ``scorers`` need scikit-learn).
"""

from __future__ import annotations

import importlib
from typing import Any

from . import metrics, utils
from .estimator import CRF

__all__ = ["CRF", "metrics", "scorers", "utils"]


def __getattr__(name: str) -> Any:
    # scorers imports scikit-learn when it loads; load it on first use.
    if name == "scorers":
        return importlib.import_module(".scorers", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
