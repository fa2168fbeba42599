"""Agreement with python-crfsuite on CRF++'s chunking sample ($CHAINCRF_DATA):
the same accuracy, within 0.5 points, from the same data and parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chaincrf import pycrfsuite
from chaincrf.sklearn_crfsuite import metrics


def _train_and_tag(module: Any, chunking: Any, model: Path, params: dict[str, Any]) -> list[list[str]]:
    X, y, Xt, _ = chunking
    trainer = module.Trainer(verbose=False)
    for xseq, yseq in zip(X, y):
        trainer.append(xseq, yseq)
    trainer.set_params(params)
    trainer.train(str(model))
    tagger = module.Tagger()
    tagger.open(str(model))
    return [tagger.tag(xseq) for xseq in Xt]


@pytest.mark.parametrize("params", [{"c1": 0.1, "c2": 0.1, "max_iterations": 100}, {"c2": 1.0}])
def test_lbfgs_accuracy_matches_python_crfsuite(chunking: Any, tmp_path: Path, params: dict[str, Any]) -> None:
    original = pytest.importorskip("pycrfsuite")
    _, _, _, yt = chunking
    ours = metrics.flat_accuracy_score(yt, _train_and_tag(pycrfsuite, chunking, tmp_path / "ours", params))
    theirs = metrics.flat_accuracy_score(yt, _train_and_tag(original, chunking, tmp_path / "theirs", params))
    assert abs(ours - theirs) <= 0.005, (ours, theirs)
    assert ours > 0.85
