"""chaincrf.pycrfsuite: python-crfsuite's Trainer, Tagger and their errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from chaincrf import pycrfsuite


def trained(corpus: Any, tmp_path: Path, **params: Any) -> Path:
    X, y = corpus
    trainer = pycrfsuite.Trainer(verbose=False)
    for xseq, yseq in zip(X, y):
        trainer.append(xseq, yseq)
    trainer.set_params({"c1": 0.01, "c2": 0.01, "max_iterations": 30, **params})
    path = tmp_path / "model.crfsuite"
    trainer.train(str(path))
    return path


def test_parameters_match_python_crfsuite() -> None:
    original = pytest.importorskip("pycrfsuite")
    ours = pycrfsuite.Trainer(verbose=False)
    theirs = original.Trainer(verbose=False)
    for algorithm in ["lbfgs", "l2sgd", "ap", "pa", "arow", "averaged-perceptron", "passive-aggressive"]:
        ours.select(algorithm)
        theirs.select(algorithm)
        assert ours.params() == theirs.params(), algorithm
        assert ours.get_params() == theirs.get_params(), algorithm


def test_parameter_errors() -> None:
    trainer = pycrfsuite.Trainer(verbose=False)
    with pytest.raises(ValueError, match="Bad arguments"):
        trainer.select("sgd")
    with pytest.raises(ValueError, match="Bad arguments"):
        trainer.select("lbfgs", type="hmm")
    with pytest.raises(ValueError, match="Parameter not found: foo"):
        trainer.set("foo", 1)
    with pytest.raises(ValueError, match="parameter c2: expected a number"):
        trainer.set("c2", "abc")
    with pytest.raises(ValueError, match="Parameter not found"):
        trainer.get("foo")
    with pytest.raises(ValueError, match="Parameter not found"):
        trainer.help("foo")
    assert "L2" in trainer.help("c2")
    trainer.set("c2", "0.5")
    trainer.set("feature.possible_transitions", True)
    assert trainer.get("c2") == 0.5 and trainer.get("feature.possible_transitions") is True
    trainer.select("pa")
    assert trainer.get_params()["type"] == 1
    with pytest.raises(ValueError, match="Parameter not found: c2"):
        trainer.set("c2", 1.0)


def test_train_and_tag(corpus: Any, test_corpus: Any, tmp_path: Path) -> None:
    path = trained(corpus, tmp_path)
    Xt, yt = test_corpus
    tagger = pycrfsuite.Tagger()
    with tagger.open(str(path)):
        assert sorted(tagger.labels()) == ["CAP", "NUM", "O"]
        right = total = 0
        for xseq, yseq in zip(Xt, yt):
            pred = tagger.tag(xseq)
            right += sum(a == b for a, b in zip(pred, yseq))
            total += len(yseq)
            p_best = tagger.probability(pred)
            assert 0 < p_best <= 1
            for t in range(len(xseq)):
                ms = [tagger.marginal(y, t) for y in tagger.labels()]
                assert math.isclose(sum(ms), 1.0, abs_tol=1e-9)
                assert tagger.marginal(pred[t], t) >= p_best - 1e-9
        assert right / total > 0.97
        seq = pycrfsuite.ItemSequence(Xt[0])
        assert tagger.tag(seq) == tagger.tag(Xt[0])
        tagger.set(Xt[1])
        assert tagger.tag() == tagger.tag(Xt[1])
        info = tagger.info()
        assert set(info.labels) == set(tagger.labels())
        assert int(info.header["num_attrs"]) == len(info.attributes)
        assert all(w != 0 for w in info.state_features.values())
        with pytest.raises(ValueError, match="out of range"):
            tagger.marginal("O", 99)
        with pytest.raises(ValueError, match="label"):
            tagger.marginal("nope", 0)
        with pytest.raises(ValueError, match="numbers of items and labels differ"):
            tagger.probability(["O"] * 99)
    # contextlib.closing closed it.
    with pytest.raises(ValueError, match="not opened"):
        tagger.labels()
    with open(path, "rb") as f:
        data = f.read()
    other = pycrfsuite.Tagger()
    other.open_inmemory(data)
    fresh = pycrfsuite.Tagger()
    fresh.open(str(path))
    assert other.tag(Xt[0]) == fresh.tag(Xt[0])


def test_tagger_errors(tmp_path: Path) -> None:
    tagger = pycrfsuite.Tagger()
    with pytest.raises(ValueError, match="not opened"):
        tagger.labels()
    with pytest.raises(ValueError, match="not opened"):
        tagger.tag([{"a": 1}])
    with pytest.raises(RuntimeError, match="closed"):
        tagger.info()
    with pytest.raises(FileNotFoundError):
        tagger.open(str(tmp_path / "missing"))
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="Invalid model"):
        tagger.open(str(junk))
    with pytest.raises(ValueError, match="Invalid model"):
        tagger.open_inmemory(b"")
    with pytest.raises(TypeError):
        tagger.open_inmemory("text")  # type: ignore[arg-type]


def test_hooks_and_log(corpus: Any) -> None:
    X, y = corpus
    seen: list[dict[str, Any]] = []
    lines: list[str] = []

    class Hooked(pycrfsuite.Trainer):
        def on_iteration(self, log: str, info: dict[str, Any]) -> None:
            assert log.startswith("***** Iteration #")
            seen.append(info)

        def on_start(self, log: str) -> None:
            pass

        def on_featgen_progress(self, log: str, percent: int) -> None:
            pass

        def on_featgen_end(self, log: str) -> None:
            pass

        def on_prepared(self, log: str) -> None:
            pass

        def on_optimization_end(self, log: str) -> None:
            pass

        def on_end(self, log: str) -> None:
            pass

    trainer = Hooked(params={"max_iterations": 7})
    for xseq, yseq in zip(X[:100], y[:100]):
        trainer.append(xseq, yseq)
    for xseq, yseq in zip(X[100:], y[100:]):
        trainer.append(xseq, yseq, group=1)
    trainer.train("", holdout=1)
    assert [i["num"] for i in seen] == list(range(1, len(seen) + 1)) and 1 <= len(seen) <= 7
    for key in ["loss", "feature_norm", "error_norm", "active_features", "linesearch_trials", "time"]:
        assert key in seen[0], key
    assert "item_accuracy_float" in seen[-1] and seen[-1]["scores"]
    parser = trainer.logparser
    assert parser.featgen_num_features > 0 and parser.training_seconds is not None
    assert parser.iterations == seen

    class Quiet(pycrfsuite.BaseTrainer):
        def message(self, message: str) -> None:
            lines.append(message)

    quiet = Quiet(params={"max_iterations": 3})
    quiet.append(X[0], y[0])
    quiet.train("")
    text = "".join(lines)
    assert "***** Iteration #1 *****" in text and "Loss: " in text
    assert len(quiet) == 1
    quiet.clear()
    assert len(quiet) == 0
    with pytest.raises(ValueError, match="no training data"):
        quiet.train("")


def test_verbose_trainer_prints_the_log(corpus: Any, capsys: pytest.CaptureFixture[str]) -> None:
    X, y = corpus
    trainer = pycrfsuite.Trainer(params={"max_iterations": 2})
    trainer.append(X[0], y[0])
    trainer.train("")
    out = capsys.readouterr().out
    assert "Feature generation" in out and "***** Iteration #2 *****" in out


def test_unwritable_model_path_is_an_os_error(corpus: Any, tmp_path: Path) -> None:
    X, y = corpus
    trainer = pycrfsuite.Trainer(verbose=False, params={"max_iterations": 2})
    trainer.append(X[0], y[0])
    with pytest.raises(OSError):
        trainer.train(str(tmp_path / "no-such-dir" / "m.crfsuite"))


def test_a_failed_append_leaves_the_trainer_as_it_was(corpus: Any, tmp_path: Path) -> None:
    """Attributes go straight into the trainer's store as they are read, so an
    append that fails half-way (a bad value in the middle of a sequence, or
    one label too few) must take back all it added, new attribute names
    included: the model is then byte for byte the one trained without it."""
    X, y = corpus
    clean = trained(corpus, tmp_path)
    trainer = pycrfsuite.Trainer(verbose=False)
    for i, (xseq, yseq) in enumerate(zip(X, y)):
        if i == 3:
            bad = [dict(item) for item in xseq]
            bad[0]["never-seen-before"] = 1.0
            bad[-1]["value"] = float("nan")
            with pytest.raises(ValueError, match="not finite"):
                trainer.append(bad, yseq)
            with pytest.raises(ValueError, match="numbers of items and labels differ"):
                trainer.append([{"another-new-name": 1.0}, *xseq], yseq)
            with pytest.raises(TypeError):
                trainer.append([*xseq[:-1], 5], yseq)
            assert len(trainer) == 3
        trainer.append(xseq, yseq)
    trainer.set_params({"c1": 0.01, "c2": 0.01, "max_iterations": 30})
    path = tmp_path / "again.crfsuite"
    trainer.train(str(path))
    assert path.read_bytes() == clean.read_bytes()
    info = pycrfsuite.Tagger()
    info.open(str(path))
    names = set(info.info().attributes)
    assert "never-seen-before" not in names and "another-new-name" not in names
