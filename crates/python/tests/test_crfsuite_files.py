"""Model files written by CRFsuite itself keep working: python-crfsuite trains
them here, and chaincrf's ``Tagger.open``, ``Tagger.open_inmemory`` and
``CRF(model_filename=...)`` read them and tag exactly as python-crfsuite does
(the same labels, marginals within 1e-9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chaincrf import pycrfsuite, sklearn_crfsuite

ALGORITHMS = [
    # L1: many features dropped, so many weights are 0 in the file.
    ("lbfgs", {"c1": 0.5, "c2": 0.01, "max_iterations": 60}),
    # Every attribute x label pair and every transition.
    ("lbfgs", {"c2": 1.0, "max_iterations": 40, "feature.possible_states": True, "feature.possible_transitions": True}),
    ("l2sgd", {"c2": 0.1, "max_iterations": 10}),
    ("ap", {"max_iterations": 5}),
]


def _train_with_python_crfsuite(original: Any, corpus: Any, path: Path, algorithm: str, params: dict[str, Any]) -> None:
    X, y = corpus
    trainer = original.Trainer(verbose=False)
    for xseq, yseq in zip(X, y):
        trainer.append(xseq, yseq)
    trainer.select(algorithm)
    trainer.set_params(params)
    trainer.train(str(path))


def _predictions(tagger: Any, X: list[Any]) -> list[tuple[list[str], list[list[float]]]]:
    labels = tagger.labels()
    out = []
    for xseq in X:
        tagger.set(xseq)
        predicted = tagger.tag()
        marginals = [[tagger.marginal(label, t) for label in labels] for t in range(len(xseq))]
        out.append((predicted, marginals))
    return out


@pytest.mark.parametrize("algorithm, params", ALGORITHMS)
def test_crfsuite_model_files_tag_as_python_crfsuite(
    corpus: Any, test_corpus: Any, tmp_path: Path, algorithm: str, params: dict[str, Any]
) -> None:
    original = pytest.importorskip("pycrfsuite")
    path = tmp_path / "crfsuite.model"
    _train_with_python_crfsuite(original, corpus, path, algorithm, params)
    Xt, _ = test_corpus

    theirs_tagger = original.Tagger()
    theirs_tagger.open(str(path))
    theirs = _predictions(theirs_tagger, Xt)
    ours_tagger = pycrfsuite.Tagger()
    ours_tagger.open(str(path))
    assert ours_tagger.labels() == theirs_tagger.labels()
    ours = _predictions(ours_tagger, Xt)
    for (our_labels, our_marginals), (their_labels, their_marginals) in zip(ours, theirs):
        assert our_labels == their_labels
        for our_row, their_row in zip(our_marginals, their_marginals):
            assert our_row == pytest.approx(their_row, abs=1e-9)

    in_memory = pycrfsuite.Tagger()
    in_memory.open_inmemory(path.read_bytes())
    assert [in_memory.tag(xseq) for xseq in Xt] == [labels for labels, _ in theirs]

    # The weights python-crfsuite reports (rounded to 6 decimals by its info()).
    their_info, our_info = theirs_tagger.info(), ours_tagger.info()
    for pair, weight in their_info.transitions.items():
        assert our_info.transitions.get(pair, 0.0) == pytest.approx(weight, abs=1e-6)
    for pair, weight in their_info.state_features.items():
        assert our_info.state_features.get(pair, 0.0) == pytest.approx(weight, abs=1e-6)

    crf = sklearn_crfsuite.CRF(model_filename=str(path))
    assert list(crf.predict(Xt)) == [labels for labels, _ in theirs]
    marginals = crf.predict_marginals(Xt)
    for seq, (_, their_marginals) in zip(marginals, theirs):
        for position, their_row in zip(seq, their_marginals):
            assert [position[label] for label in theirs_tagger.labels()] == pytest.approx(their_row, abs=1e-9)


def test_damaged_crfsuite_model_files_are_value_errors(corpus: Any, tmp_path: Path) -> None:
    original = pytest.importorskip("pycrfsuite")
    path = tmp_path / "crfsuite.model"
    _train_with_python_crfsuite(original, corpus, path, "lbfgs", {"max_iterations": 5})
    data = path.read_bytes()
    for cut in (10, 48, len(data) // 2, len(data) - 1):
        with pytest.raises(ValueError, match="not a valid CRFsuite model"):
            pycrfsuite.Tagger().open_inmemory(data[:cut])
    (tmp_path / "half.model").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        pycrfsuite.Tagger().open(str(tmp_path / "half.model"))
