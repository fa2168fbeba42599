"""chaincrf.sklearn_crfsuite: sklearn-crfsuite's estimator API."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chaincrf import sklearn_crfsuite
from chaincrf.sklearn_crfsuite import metrics

ARGS = [
    "algorithm",
    "min_freq",
    "all_possible_states",
    "all_possible_transitions",
    "c1",
    "c2",
    "max_iterations",
    "num_memories",
    "epsilon",
    "period",
    "delta",
    "linesearch",
    "max_linesearch",
    "calibration_eta",
    "calibration_rate",
    "calibration_samples",
    "calibration_candidates",
    "calibration_max_trials",
    "pa_type",
    "c",
    "error_sensitive",
    "averaging",
    "variance",
    "gamma",
    "verbose",
    "model_filename",
    "keep_tempfiles",
    "trainer_cls",
    "n_jobs",
]


def fitted(corpus: Any, **kwargs: Any) -> sklearn_crfsuite.CRF:
    X, y = corpus
    crf = sklearn_crfsuite.CRF(c1=0.05, c2=0.01, max_iterations=50, **kwargs)
    return crf.fit(X, y)


def test_constructor_signature_is_sklearn_crfsuites() -> None:
    sig = inspect.signature(sklearn_crfsuite.CRF.__init__)
    assert list(sig.parameters)[1:] == ARGS
    defaults = {name: p.default for name, p in sig.parameters.items() if name != "self"}
    assert defaults["verbose"] is False and defaults["keep_tempfiles"] is False
    assert all(defaults[a] is None for a in ARGS if a not in ("verbose", "keep_tempfiles"))


def test_every_argument_is_stored_and_cloned() -> None:
    from sklearn.base import clone

    values = {name: f"v-{name}" for name in ARGS}
    crf = sklearn_crfsuite.CRF(**values)
    assert crf.get_params() == values
    again = clone(crf)
    assert again.get_params() == values
    assert "c1='v-c1'" in repr(crf)
    crf.set_params(c2=0.5)
    assert crf.c2 == 0.5


def test_unfitted_attributes_are_none() -> None:
    crf = sklearn_crfsuite.CRF()
    for attr in [
        "classes_",
        "size_",
        "num_attributes_",
        "attributes_",
        "state_features_",
        "transition_features_",
        "training_log_",
        "tagger_",
    ]:
        assert getattr(crf, attr) is None, attr
    with pytest.raises(ValueError, match="not fitted"):
        crf.predict([[{"a": 1}]])


def test_fit_predict_and_attributes(corpus: Any, test_corpus: Any) -> None:
    crf = fitted(corpus)
    Xt, yt = test_corpus
    assert sorted(crf.classes_) == ["CAP", "NUM", "O"]
    pred = crf.predict(Xt)
    assert isinstance(pred, np.ndarray) and pred.dtype == object and len(pred) == len(Xt)
    assert all(isinstance(p, list) for p in pred)
    assert crf.score(Xt, yt) > 0.97
    assert metrics.flat_accuracy_score(yt, pred) == crf.score(Xt, yt)
    assert crf.predict_single(Xt[0]) == list(pred[0])
    marg = crf.predict_marginals(Xt)
    assert len(marg) == len(Xt)
    for seq, labels in zip(marg, pred):
        for position, best in zip(seq, labels):
            assert set(position) == set(crf.classes_)
            assert abs(sum(position.values()) - 1.0) < 1e-9
            assert max(position, key=position.get) == best or max(position.values()) < 0.6
    assert crf.predict_marginals_single(Xt[0]) == marg[0]
    assert crf.size_ > 0
    assert crf.num_attributes_ == len(crf.attributes_)
    assert "bias" in crf.attributes_ and "suffix:at" in crf.attributes_
    assert all(isinstance(k, tuple) and len(k) == 2 for k in crf.state_features_)
    assert all(a in crf.attributes_ and y in crf.classes_ for a, y in crf.state_features_)
    assert all(a in crf.classes_ and b in crf.classes_ for a, b in crf.transition_features_)
    assert crf.tagger_.labels() == crf.classes_
    log = crf.training_log_
    assert log.last_iteration is log.iterations[-1]
    assert 1 <= len(log.iterations) <= 50
    first = log.iterations[0]
    for key in ["num", "loss", "feature_norm", "error_norm", "active_features", "time"]:
        assert key in first, key
    assert first["num"] == 1
    assert log.iterations[-1]["loss"] < first["loss"]


def test_dev_data_scores_each_iteration(corpus: Any, test_corpus: Any) -> None:
    X, y = corpus
    Xt, yt = test_corpus
    crf = sklearn_crfsuite.CRF(max_iterations=10).fit(X, y, X_dev=Xt, y_dev=yt)
    last = crf.training_log_.last_iteration
    assert last["item_accuracy"].denominator > 0
    assert 0 <= last["item_accuracy_float"] <= 1 and 0 <= last["instance_accuracy_float"] <= 1
    assert set(last["scores"]) <= set(crf.classes_)
    with pytest.raises(ValueError, match="both X_dev and y_dev"):
        crf.fit(X, y, X_dev=Xt)


def test_results_do_not_depend_on_n_jobs(corpus: Any, test_corpus: Any) -> None:
    Xt, _ = test_corpus
    one = fitted(corpus, n_jobs=None)
    two = fitted(corpus, n_jobs=2)
    every = fitted(corpus, n_jobs=-1)
    assert one.state_features_ == two.state_features_ == every.state_features_
    assert one.transition_features_ == two.transition_features_
    assert list(one.predict(Xt)) == list(two.predict(Xt))
    assert list(one.predict_marginals(Xt)) == list(every.predict_marginals(Xt))


def test_pickle_carries_the_model(corpus: Any, test_corpus: Any) -> None:
    Xt, _ = test_corpus
    crf = fitted(corpus)
    again = pickle.loads(pickle.dumps(crf))
    assert list(again.predict(Xt)) == list(crf.predict(Xt))
    assert again.state_features_ == crf.state_features_
    assert again.get_params() == crf.get_params()
    unfitted = pickle.loads(pickle.dumps(sklearn_crfsuite.CRF(c1=0.3)))
    assert unfitted.c1 == 0.3 and unfitted.classes_ is None


def test_model_filename_saves_and_loads(corpus: Any, test_corpus: Any, tmp_path: Path) -> None:
    Xt, _ = test_corpus
    path = tmp_path / "m.crf"
    crf = fitted(corpus, model_filename=str(path))
    assert path.exists() and path.stat().st_size == crf.size_
    loaded = sklearn_crfsuite.CRF(model_filename=str(path))
    assert list(loaded.predict(Xt)) == list(crf.predict(Xt))
    assert loaded.classes_ == crf.classes_


def test_cross_validation_in_worker_processes(corpus: Any) -> None:
    from sklearn.model_selection import cross_val_score

    from chaincrf.sklearn_crfsuite import scorers

    X, y = corpus
    crf = sklearn_crfsuite.CRF(c2=0.1, max_iterations=20)
    scores = cross_val_score(crf, X, y, cv=3, n_jobs=2, scoring=scorers.flat_accuracy)
    assert len(scores) == 3 and min(scores) > 0.9
    seq = cross_val_score(crf, X, y, cv=2, n_jobs=2, scoring=scorers.sequence_accuracy)
    assert min(seq) > 0.5


def test_grid_search(corpus: Any) -> None:
    from sklearn.model_selection import GridSearchCV

    X, y = corpus
    search = GridSearchCV(sklearn_crfsuite.CRF(max_iterations=10), {"c2": [0.01, 1.0]}, cv=2, scoring=None)
    search.fit(X, y)
    assert search.best_params_["c2"] in (0.01, 1.0)


def test_verbose_prints_each_iteration(corpus: Any, capsys: pytest.CaptureFixture[str]) -> None:
    X, y = corpus
    sklearn_crfsuite.CRF(max_iterations=5, verbose=True).fit(X, y)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("Iter ")]
    assert len(lines) == 5 and "loss=" in lines[0]
    sklearn_crfsuite.CRF(max_iterations=5).fit(X, y)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("linesearch", ["Backtracking", "StrongBacktracking"])
@pytest.mark.parametrize("c1", [0.0, 0.05])
def test_backtracking_line_searches_fit(corpus: Any, test_corpus: Any, linesearch: str, c1: float) -> None:
    X, y = corpus
    Xt, yt = test_corpus
    reference = sklearn_crfsuite.CRF(c1=c1, c2=0.01, max_iterations=50).fit(X, y)
    crf = sklearn_crfsuite.CRF(c1=c1, c2=0.01, max_iterations=50, linesearch=linesearch).fit(X, y)
    assert crf.get_params()["linesearch"] == linesearch
    assert crf.score(Xt, yt) > 0.97
    assert abs(crf.score(Xt, yt) - reference.score(Xt, yt)) < 0.02
    log = crf.training_log_
    assert log.iterations[-1]["loss"] < log.iterations[0]["loss"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"algorithm": "sgd"}, "Bad arguments"),
        ({"c1": "abc"}, "parameter c1"),
        ({"c2": -1.0}, "parameter c2"),
        ({"max_iterations": 1.5}, "max_iterations"),
        ({"algorithm": "l2sgd", "c1": 0.1}, "Parameter not found: c1"),
        ({"linesearch": "Fast"}, "linesearch"),
        ({"n_jobs": 0}, "n_jobs"),
    ],
)
def test_bad_parameters(corpus: Any, kwargs: dict[str, Any], fragment: str) -> None:
    X, y = corpus
    with pytest.raises(ValueError, match=fragment):
        sklearn_crfsuite.CRF(**kwargs).fit(X, y)


def test_bad_training_data(corpus: Any) -> None:
    X, y = corpus
    crf = sklearn_crfsuite.CRF(max_iterations=2)
    with pytest.raises(ValueError, match="X has 150 sequences but y has 149"):
        crf.fit(X, y[:-1])
    with pytest.raises(ValueError, match=r"X\[0\], y\[0\]: The numbers of items and labels differ"):
        crf.fit([X[0]], [y[0] + ["O"]])
    with pytest.raises(TypeError, match=r"X\[0\], y\[0\]: label 0 must be a str"):
        crf.fit([X[0]], [[1] * len(X[0])])
    with pytest.raises(TypeError, match="X must be a list of sequences"):
        crf.fit("abc", y)
    with pytest.raises(ValueError, match="not finite"):
        crf.fit([[{"a": float("nan")}]], [["O"]])
    with pytest.raises(ValueError, match="no training data"):
        crf.fit([], [])


def test_metrics() -> None:
    y_true = [["a", "b"], ["a"]]
    y_pred = [["a", "a"], ["a"]]
    assert metrics.flat_accuracy_score(y_true, y_pred) == pytest.approx(2 / 3)
    assert metrics.sequence_accuracy_score(y_true, y_pred) == 0.5
    assert metrics.flat_f1_score(y_true, y_pred, average="macro", zero_division=0) == pytest.approx(0.4)
    assert metrics.flat_precision_score(y_true, y_pred, average="micro", zero_division=0) == pytest.approx(2 / 3)
    assert metrics.flat_recall_score(y_true, y_pred, average="micro") == pytest.approx(2 / 3)
    assert metrics.flat_fbeta_score(y_true, y_pred, beta=1, average="micro") == pytest.approx(2 / 3)
    assert "precision" in metrics.flat_classification_report(y_true, y_pred, zero_division=0)
    assert sklearn_crfsuite.utils.flatten([[1, 2], [3]]) == [1, 2, 3]
    with pytest.raises(ValueError, match="sequence 0"):
        metrics.flat_accuracy_score([["a"]], [["a", "b"]])
