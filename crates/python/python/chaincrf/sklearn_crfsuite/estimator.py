"""``CRF``: a scikit-learn estimator for linear-chain CRFs, sklearn-crfsuite's API.

Every constructor argument is stored under its own name, so scikit-learn's
``get_params``, ``set_params``, ``clone`` and ``repr`` work, and so does
``cross_val_score(..., n_jobs=k)`` (the estimator pickles with its model).
The model lives in memory; ``model_filename`` also saves it there after
``fit``, and a ``CRF(model_filename=...)`` that is not fitted loads it.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import numpy as np

from .. import _models, _native, _params, pycrfsuite
from .trainer import LinePerIterationTrainer

try:  # scikit-learn's base class when it is installed (clone, tags, repr)
    from sklearn.base import BaseEstimator as _Base
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    import inspect

    class _Base:  # type: ignore[no-redef]
        """get_params / set_params by constructor signature (scikit-learn's convention)."""

        @classmethod
        def _get_param_names(cls) -> list[str]:
            sig = inspect.signature(cls.__init__)
            return sorted(p for p in sig.parameters if p != "self")

        def get_params(self, deep: bool = True) -> dict[str, Any]:
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params: Any) -> Any:
            for name, value in params.items():
                if name not in self._get_param_names():
                    raise ValueError(f"Invalid parameter {name!r} for estimator {type(self).__name__}")
                setattr(self, name, value)
            return self

        def __repr__(self) -> str:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v is not None)
            return f"{type(self).__name__}({args})"


__all__ = ["CRF"]

# Constructor argument -> CRFsuite parameter name.
_CRFSUITE_NAMES = {
    "min_freq": "feature.minfreq",
    "all_possible_states": "feature.possible_states",
    "all_possible_transitions": "feature.possible_transitions",
    "c1": "c1",
    "c2": "c2",
    "max_iterations": "max_iterations",
    "num_memories": "num_memories",
    "epsilon": "epsilon",
    "period": "period",
    "delta": "delta",
    "linesearch": "linesearch",
    "max_linesearch": "max_linesearch",
    "calibration_eta": "calibration.eta",
    "calibration_rate": "calibration.rate",
    "calibration_samples": "calibration.samples",
    "calibration_candidates": "calibration.candidates",
    "calibration_max_trials": "calibration.max_trials",
    "pa_type": "type",
    "c": "c",
    "error_sensitive": "error_sensitive",
    "averaging": "averaging",
    "variance": "variance",
    "gamma": "gamma",
}


class CRF(_Base):
    """A linear-chain CRF with scikit-learn's fit/predict interface.

    The arguments are sklearn-crfsuite's (``None`` means CRFsuite's default
    for the algorithm); see ``chaincrf.pycrfsuite.Trainer.help`` for each.
    ``n_jobs`` is the number of training and prediction threads (None = 1,
    -1 = every core); results are identical on any count. ``keep_tempfiles``
    is accepted for compatibility (no temporary files are written).
    ``trainer_cls`` replaces the ``pycrfsuite.Trainer`` subclass used for
    training (its hooks receive the log).
    """

    def __init__(
        self,
        algorithm: Optional[str] = None,
        min_freq: Optional[float] = None,
        all_possible_states: Optional[bool] = None,
        all_possible_transitions: Optional[bool] = None,
        c1: Optional[float] = None,
        c2: Optional[float] = None,
        max_iterations: Optional[int] = None,
        num_memories: Optional[int] = None,
        epsilon: Optional[float] = None,
        period: Optional[int] = None,
        delta: Optional[float] = None,
        linesearch: Optional[str] = None,
        max_linesearch: Optional[int] = None,
        calibration_eta: Optional[float] = None,
        calibration_rate: Optional[float] = None,
        calibration_samples: Optional[float] = None,
        calibration_candidates: Optional[int] = None,
        calibration_max_trials: Optional[int] = None,
        pa_type: Optional[int] = None,
        c: Optional[float] = None,
        error_sensitive: Optional[bool] = None,
        averaging: Optional[bool] = None,
        variance: Optional[float] = None,
        gamma: Optional[float] = None,
        verbose: bool = False,
        model_filename: Optional[str] = None,
        keep_tempfiles: bool = False,
        trainer_cls: Optional[type] = None,
        n_jobs: Optional[int] = None,
    ) -> None:
        self.algorithm = algorithm
        self.min_freq = min_freq
        self.all_possible_states = all_possible_states
        self.all_possible_transitions = all_possible_transitions
        self.c1 = c1
        self.c2 = c2
        self.max_iterations = max_iterations
        self.num_memories = num_memories
        self.epsilon = epsilon
        self.period = period
        self.delta = delta
        self.linesearch = linesearch
        self.max_linesearch = max_linesearch
        self.calibration_eta = calibration_eta
        self.calibration_rate = calibration_rate
        self.calibration_samples = calibration_samples
        self.calibration_candidates = calibration_candidates
        self.calibration_max_trials = calibration_max_trials
        self.pa_type = pa_type
        self.c = c
        self.error_sensitive = error_sensitive
        self.averaging = averaging
        self.variance = variance
        self.gamma = gamma
        self.verbose = verbose
        self.model_filename = model_filename
        self.keep_tempfiles = keep_tempfiles
        self.trainer_cls = trainer_cls
        self.n_jobs = n_jobs
        self.training_log_: Optional[pycrfsuite.TrainLogParser] = None
        self._model: Optional[_native.Model] = None
        self._tagger: Optional[pycrfsuite.Tagger] = None
        self._info_cached: Optional[pycrfsuite.ParsedDump] = None

    # -- training -----------------------------------------------------------

    def _get_trainer(self) -> pycrfsuite.BaseTrainer:
        params = {}
        for arg, name in _CRFSUITE_NAMES.items():
            value = getattr(self, arg)
            if value is not None:
                params[name] = value
        cls = self.trainer_cls or LinePerIterationTrainer
        return cls(algorithm=self.algorithm, params=params, verbose=self.verbose, n_jobs=self.n_jobs)

    def fit(
        self,
        X: Sequence[Any],
        y: Sequence[Sequence[str]],
        X_dev: Optional[Sequence[Any]] = None,
        y_dev: Optional[Sequence[Sequence[str]]] = None,
    ) -> CRF:
        """Trains on feature sequences ``X`` (python-crfsuite's formats) and label
        sequences ``y``; ``X_dev``/``y_dev`` are held-out data scored after each
        iteration (see ``training_log_``)."""
        if (X_dev is None) != (y_dev is None):
            raise ValueError("Pass both X_dev and y_dev to use the holdout data")
        _check_lengths("X", X, "y", y)
        if X_dev is not None and y_dev is not None:
            _check_lengths("X_dev", X_dev, "y_dev", y_dev)
        trainer = self._get_trainer()
        for i, (xseq, yseq) in enumerate(zip(X, y)):
            try:
                trainer.append(xseq, yseq)
            except (TypeError, ValueError) as e:
                raise type(e)(f"X[{i}], y[{i}]: {e}") from None
        if X_dev is not None and y_dev is not None:
            for i, (xseq, yseq) in enumerate(zip(X_dev, y_dev)):
                try:
                    trainer.append(xseq, yseq, 1)
                except (TypeError, ValueError) as e:
                    raise type(e)(f"X_dev[{i}], y_dev[{i}]: {e}") from None
        path = os.fspath(self.model_filename) if self.model_filename is not None else ""
        # The trainer is used once: let it release the appended data as soon as
        # it is compiled, which lowers the fit's peak memory.
        if isinstance(trainer, pycrfsuite.BaseTrainer):
            trainer._release_data = True
        trainer.train(path, holdout=-1 if X_dev is None else 1)
        self._set_model(getattr(trainer, "model_", None))
        self.training_log_ = getattr(trainer, "logparser", None)
        return self

    def _set_model(self, model: Optional[_native.Model]) -> None:
        self._model = model
        self._tagger = None
        self._info_cached = None

    # -- prediction ---------------------------------------------------------

    def _require_model(self) -> _native.Model:
        model = self._loaded_model()
        if model is None:
            raise ValueError("this CRF is not fitted yet: call fit() first (or pass model_filename)")
        return model

    def _loaded_model(self) -> Optional[_native.Model]:
        if self._model is None and self.model_filename is not None and os.path.exists(self.model_filename):
            self._model = _models.load_file(os.fspath(self.model_filename))
        return self._model

    def _threads(self) -> int:
        return _params.resolve_n_jobs(self.n_jobs)

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        """The predicted label sequences, as an object array of lists."""
        tags = self._require_model().tag_many(X, self._threads())
        out = np.empty(len(tags), dtype=object)
        for i, t in enumerate(tags):
            out[i] = t
        return out

    def predict_single(self, xseq: Any) -> list[str]:
        """The predicted labels of one sequence."""
        return self._require_model().tag(xseq)

    def predict_marginals(self, X: Sequence[Any]) -> np.ndarray:
        """For each sequence, a list of ``{label: probability}`` dicts, one per position."""
        rows = self._require_model().marginal_dicts(X, self._threads())
        out = np.empty(len(rows), dtype=object)
        for i, r in enumerate(rows):
            out[i] = r
        return out

    def predict_marginals_single(self, xseq: Any) -> list[dict[str, float]]:
        """``{label: probability}`` per position of one sequence."""
        return self._require_model().marginal_dicts([xseq], 1)[0]

    def score(self, X: Sequence[Any], y: Sequence[Sequence[str]]) -> float:
        """Token accuracy of the predictions on ``X`` against ``y``."""
        from .metrics import flat_accuracy_score

        return flat_accuracy_score(y, self.predict(X))

    # -- fitted attributes --------------------------------------------------

    @property
    def tagger_(self) -> Optional[pycrfsuite.Tagger]:
        """A ``pycrfsuite.Tagger`` on the model (None before fit)."""
        if self._tagger is None:
            model = self._loaded_model()
            if model is None:
                return None
            tagger = pycrfsuite.Tagger()
            tagger._set_model(model)
            self._tagger = tagger
        return self._tagger

    @property
    def _info(self) -> Optional[pycrfsuite.ParsedDump]:
        tagger = self.tagger_
        if tagger is None:
            return None
        if self._info_cached is None:
            self._info_cached = tagger.info()
        return self._info_cached

    @property
    def classes_(self) -> Optional[list[str]]:
        """The labels."""
        tagger = self.tagger_
        return None if tagger is None else tagger.labels()

    @property
    def size_(self) -> Optional[int]:
        """Size of the model file, in bytes."""
        info = self._info
        return None if info is None else int(info.header["size"])

    @property
    def num_attributes_(self) -> Optional[int]:
        """Number of attributes in the model."""
        info = self._info
        return None if info is None else int(info.header["num_attrs"])

    @property
    def attributes_(self) -> Optional[list[str]]:
        """The attributes, by id."""
        info = self._info
        if info is None:
            return None
        attrs: list[str] = [""] * len(info.attributes)
        for name, i in info.attributes.items():
            attrs[int(i)] = name
        return attrs

    @property
    def state_features_(self) -> Optional[dict[tuple[str, str], float]]:
        """``{(attribute, label): weight}``."""
        info = self._info
        return None if info is None else info.state_features

    @property
    def transition_features_(self) -> Optional[dict[tuple[str, str], float]]:
        """``{(label_from, label_to): weight}``."""
        info = self._info
        return None if info is None else info.transitions

    # -- pickling -----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        model = state.pop("_model", None)
        state["_model_bytes"] = None if model is None else model.to_bytes()
        state["_tagger"] = None
        state["_info_cached"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        data = state.pop("_model_bytes", None)
        self.__dict__.update(state)
        self._model = None if data is None else _native.Model.from_bytes(data)
        self._tagger = None
        self._info_cached = None


def _check_lengths(xname: str, X: Any, yname: str, y: Any) -> None:
    for name, v in ((xname, X), (yname, y)):
        if isinstance(v, (str, bytes, dict)) or not hasattr(v, "__len__"):
            raise TypeError(f"{name} must be a list of sequences, got {type(v).__name__}")
    if len(X) != len(y):
        raise ValueError(f"{xname} has {len(X)} sequences but {yname} has {len(y)}")
