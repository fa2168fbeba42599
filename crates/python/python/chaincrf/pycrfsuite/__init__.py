"""python-crfsuite's API on chaincrf: ``from chaincrf import pycrfsuite``.

``ItemSequence``, ``Trainer`` (``append``, ``select``, ``set_params``,
``get_params``, ``params``, ``set``, ``get``, ``help``, ``clear``,
``train(model, holdout=-1)``, the ``message`` and ``on_*`` hooks,
``logparser``) and ``Tagger`` (``open``, ``open_inmemory``, ``close``,
``labels``, ``tag``, ``probability``, ``marginal``, ``set``, ``info``) behave
as python-crfsuite's, with the same exceptions. Differences:

* training releases the GIL and ``Trainer(n_jobs=...)`` trains L-BFGS on
  several threads (``None`` = 1, ``-1`` = every core) with the same result on
  any count; Ctrl-C stops training with ``KeyboardInterrupt`` and writes no
  model file;
* a parameter value CRFsuite would silently read as 0 (``set("c2", "abc")``),
  a NaN feature weight or a ``str`` given as an item raises ``ValueError`` /
  ``TypeError``;
* models are written in chaincrf's format.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Iterable, Optional, Union

from .. import _models, _native, _params
from .._native import ItemSequence
from ._dumpparser import ParsedDump
from ._logparser import LabelScore, TrainLogParser

__all__ = [
    "BaseTrainer",
    "CRFSuiteError",
    "ItemSequence",
    "LabelScore",
    "ParsedDump",
    "Tagger",
    "TrainLogParser",
    "Trainer",
]


class CRFSuiteError(Exception):
    """Training failed (python-crfsuite raises it for CRFsuite's error codes)."""

    def __init__(self, message: Union[str, int]) -> None:
        self.code = message
        super().__init__(str(message))


def _intbool(text: str) -> bool:
    return bool(int(text))


_DISPLAY = {
    "lbfgs": "L-BFGS",
    "l2sgd": "Stochastic Gradient Descent (SGD)",
    "ap": "Averaged perceptron",
    "pa": "Passive Aggressive",
    "arow": "Adaptive Regularization of Weights (AROW)",
}


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:f}"
    return str(value)


class BaseTrainer:
    """The trainer: a data set and a training algorithm with its parameters.

    Parameters
    ----------
    algorithm : {'lbfgs', 'l2sgd', 'ap', 'pa', 'arow'}, optional
        The training algorithm (see :meth:`select`); L-BFGS by default.
    params : dict, optional
        Parameters, as :meth:`set_params` takes them.
    verbose : bool
        Whether the log is printed during training. Default True.
    n_jobs : int, optional
        Threads for L-BFGS training: None = 1, -1 = every core.
    """

    _PARAMETER_TYPES = {
        "feature.minfreq": float,
        "feature.possible_states": _intbool,
        "feature.possible_transitions": _intbool,
        "c1": float,
        "c2": float,
        "max_iterations": int,
        "num_memories": int,
        "epsilon": float,
        "period": int,
        "delta": float,
        "linesearch": str,
        "max_linesearch": int,
        "calibration.eta": float,
        "calibration.rate": float,
        "calibration.samples": float,
        "calibration.candidates": int,
        "calibration.max_trials": int,
        "type": int,
        "c": float,
        "error_sensitive": _intbool,
        "averaging": _intbool,
        "variance": float,
        "gamma": float,
    }

    def __init__(
        self,
        algorithm: Optional[str] = None,
        params: Optional[dict[str, Any]] = None,
        verbose: bool = True,
        n_jobs: Optional[int] = None,
    ) -> None:
        self._data = _native.Trainer()
        self._algorithm = "lbfgs"
        self._values: dict[str, Any] = {}
        self.select("lbfgs")
        if algorithm is not None:
            self.select(algorithm)
        if params is not None:
            self.set_params(params)
        self.verbose = verbose
        self.n_jobs = n_jobs
        self.logparser = TrainLogParser()
        self.model_: Optional[_native.Model] = None
        # Set by a one-shot caller (sklearn_crfsuite.CRF.fit): the appended data
        # is released once compiled, and the trainer is empty after train().
        self._release_data = False

    # -- data ---------------------------------------------------------------

    def append(self, xseq: Any, yseq: Iterable[str], group: int = 0) -> None:
        """Appends a sequence (items and their labels) to the data set, in ``group``."""
        if isinstance(group, bool) or not isinstance(group, int):
            raise TypeError(f"group must be an int, got {type(group).__name__}")
        self._data.append(xseq, yseq, group)

    def clear(self) -> None:
        """Removes every appended sequence."""
        self._data.clear()

    # -- algorithm and parameters ------------------------------------------

    def select(self, algorithm: str, type: str = "crf1d") -> None:
        """Chooses the training algorithm; its parameters return to their defaults."""
        try:
            name = _params.canonical_algorithm(algorithm)
        except (TypeError, ValueError):
            name = None
        if name is None or type not in ("crf1d", "1d"):
            raise ValueError(f"Bad arguments: algorithm={algorithm!r}, type={type!r}")
        self._algorithm = name
        self._values = {p.name: p.default for p in _params.ALGORITHMS[name]}

    @property
    def algorithm(self) -> str:
        """The selected algorithm's short name."""
        return self._algorithm

    def params(self) -> list[str]:
        """Names of the selected algorithm's parameters."""
        return list(self._values)

    def set_params(self, params: dict[str, Any]) -> None:
        """Sets several parameters ``{name: value}``."""
        for name, value in params.items():
            self.set(name, value)

    def get_params(self) -> dict[str, Any]:
        """Every parameter of the selected algorithm ``{name: value}``."""
        return {name: self.get(name) for name in self.params()}

    def set(self, name: str, value: Any) -> None:
        """Sets a parameter (CRFsuite's name, e.g. ``"c2"`` or ``"feature.minfreq"``)."""
        table = _params.table(self._algorithm)
        if name not in table:
            raise ValueError(
                f"Parameter not found: {name} = {value} (the {self._algorithm} algorithm has: {', '.join(table)})"
            )
        self._values[name] = table[name].check(value)

    def get(self, name: str) -> Any:
        """The value of a parameter."""
        if name not in self._values:
            raise ValueError(f"Parameter not found: {name}")
        return self._values[name]

    def help(self, name: str) -> str:
        """The description of a parameter."""
        table = _params.table(self._algorithm)
        if name not in table:
            raise ValueError(f"Parameter not found: {name}")
        return table[name].help

    # -- training ------------------------------------------------------------

    def message(self, message: str) -> None:
        """Receives the training log, line by line; prints it when ``verbose``."""
        if self.verbose:
            print(message, end="")

    def _before_train(self) -> None:
        pass

    def train(self, model: Union[str, os.PathLike[str]], holdout: int = -1) -> None:
        """Trains on the data set (all groups but ``holdout``) and writes ``model``.

        An empty ``model`` name writes no file (the trained model stays in
        ``model_``). The file is written through a temporary file and a rename,
        so an interrupted run never leaves a partial model.
        """
        if isinstance(holdout, bool) or not isinstance(holdout, int):
            raise TypeError(f"holdout must be an int, got {type(holdout).__name__}")
        path = os.fspath(model)
        threads = _params.resolve_n_jobs(self.n_jobs)
        self._before_train()
        log = _LogWriter(self.message, self._algorithm, self._values)
        log.start()
        keep = not self._release_data
        fitted, summary = self._data.train(self._algorithm, dict(self._values), threads, holdout, log.event, keep)
        log.end(summary, fitted)
        parser = getattr(self, "logparser", None)
        if isinstance(parser, TrainLogParser) and parser.featgen_num_features is None:
            # The count is known once training has chosen its features.
            parser.featgen_num_features = summary["num_features"]
        started = time.perf_counter()
        if path:
            fitted.save(path)
        log.stored(time.perf_counter() - started)
        self.model_ = fitted

    def __len__(self) -> int:
        return len(self._data)


class _LogWriter:
    """Turns the native progress reports into CRFsuite's log lines."""

    def __init__(self, emit: Any, algorithm: str, values: dict[str, Any]) -> None:
        self.emit = emit
        self.algorithm = algorithm
        self.values = values
        self.head = "Iteration" if algorithm == "lbfgs" else "Epoch"

    def lines(self, *lines: str) -> None:
        for line in lines:
            self.emit(line)

    def start(self) -> None:
        self.lines("Feature generation\n", "type: CRF1d\n")
        for name in ("feature.minfreq", "feature.possible_states", "feature.possible_transitions"):
            self.emit(f"{name}: {_format_value(self.values[name])}\n")

    def event(self, info: dict[str, Any]) -> None:
        if info["event"] == "prepared":
            for i in range(51):
                self.emit(str(i // 5) if i % 5 == 0 else ".")
            self.emit("\n")
            if "num_features" in info:
                self.emit(f"Number of features: {info['num_features']}\n")
            self.lines(
                f"Seconds required: {info['seconds']:.3f}\n",
                "\n",
                f"{_DISPLAY[self.algorithm]} optimization\n",
            )
            for name, value in self.values.items():
                if not name.startswith("feature."):
                    self.emit(f"{name}: {_format_value(value)}\n")
            self.emit("\n")
            return
        self.lines(
            f"***** {self.head} #{info['num']} *****\n",
            f"Loss: {info['loss']:f}\n",
            f"Feature norm: {info['feature_norm']:f}\n",
        )
        error_norm = info.get("error_norm")
        if error_norm is not None and error_norm == error_norm:  # online algorithms have none
            self.emit(f"Error norm: {error_norm:f}\n")
        self.emit(f"Active features: {info['active_features']}\n")
        if self.algorithm == "lbfgs":
            self.emit(f"Line search trials: {info['linesearch_trials']}\n")
        self.emit(f"Seconds required for this iteration: {info['time']:.3f}\n")
        if "label_counts" in info:
            self.holdout(info)
        self.emit("\n")

    def holdout(self, info: dict[str, Any]) -> None:
        self.emit("Performance by label (#match, #model, #ref) (precision, recall, F1):\n")
        precisions, recalls, f1s = [], [], []
        for label, match, model, ref in info["label_counts"]:
            if match == model == ref == 0:
                self.emit(f"    {label}: (0, 0, 0) (******, ******, ******)\n")
                continue
            p = match / model if model else 0.0
            r = match / ref if ref else 0.0
            f = 2 * p * r / (p + r) if p + r > 0 else 0.0
            precisions.append(p)
            recalls.append(r)
            f1s.append(f)
            self.emit(f"    {label}: ({match}, {model}, {ref}) ({p:.4f}, {r:.4f}, {f:.4f})\n")
        n = max(1, len(f1s))
        self.emit(
            f"Macro-average precision, recall, F1: ({sum(precisions) / n:f}, {sum(recalls) / n:f}, {sum(f1s) / n:f})\n"
        )
        items = info["item_accuracy"]
        instances = info["instance_accuracy"]
        self.lines(
            f"Item accuracy: {items[0]} / {items[1]}\n",
            f"Instance accuracy: {instances[0]} / {instances[1]}\n",
        )

    def end(self, summary: dict[str, Any], model: _native.Model) -> None:
        self.lines(
            f"{_DISPLAY[self.algorithm]} terminated: {summary['termination']}\n",
            f"Total seconds required for training: {summary['seconds']:.3f}\n",
            "\n",
            "Storing the model\n",
            f"Number of active attributes: {model.num_attributes()}\n",
            f"Number of active labels: {len(model.labels())}\n",
        )

    def stored(self, seconds: float) -> None:
        self.lines(f"Seconds required: {seconds:.3f}\n", "\n")


class Trainer(BaseTrainer):
    """The trainer with python-crfsuite's hooks: the log goes to ``logparser`` and,
    when ``verbose``, to ``on_start``, ``on_featgen_progress``, ``on_featgen_end``,
    ``on_prepared``, ``on_prepare_error``, ``on_iteration(log, info)``,
    ``on_optimization_end`` and ``on_end``, which print it by default."""

    def _before_train(self) -> None:
        self.logparser = TrainLogParser()

    def message(self, message: str) -> None:
        event = self.logparser.feed(message)
        if not self.verbose or event is None:
            return
        log = self.logparser.last_log
        if event == "start":
            self.on_start(log)
        elif event == "featgen_progress":
            self.on_featgen_progress(log, self.logparser.featgen_percent)
        elif event == "featgen_end":
            self.on_featgen_end(log)
        elif event == "prepared":
            self.on_prepared(log)
        elif event == "prepare_error":
            self.on_prepare_error(log)
        elif event == "iteration":
            self.on_iteration(log, self.logparser.last_iteration or {})
        elif event == "optimization_end":
            self.on_optimization_end(log)
        elif event == "end":
            self.on_end(log)

    def on_start(self, log: str) -> None:
        print(log, end="")

    def on_featgen_progress(self, log: str, percent: int) -> None:
        print(log, end="")

    def on_featgen_end(self, log: str) -> None:
        print(log, end="")

    def on_prepared(self, log: str) -> None:
        print(log, end="")

    def on_prepare_error(self, log: str) -> None:
        print(log, end="")

    def on_iteration(self, log: str, info: dict[str, Any]) -> None:
        print(log, end="")

    def on_optimization_end(self, log: str) -> None:
        print(log, end="")

    def on_end(self, log: str) -> None:
        print(log, end="")


class Tagger:
    """Predicts label sequences with a model (python-crfsuite's ``Tagger``)."""

    def __init__(self) -> None:
        self._model: Optional[_native.Model] = None
        self._opened = False
        self._xseq: Optional[ItemSequence] = None
        self._marginals: Optional[list[list[float]]] = None

    def open(self, name: Union[str, os.PathLike[str]]) -> contextlib.closing:  # type: ignore[type-arg]
        """Opens a model file (OSError when unreadable, ValueError when not a model)."""
        self._set_model(_models.load_file(os.fspath(name)))
        return contextlib.closing(self)

    def open_inmemory(self, value: bytes) -> contextlib.closing:  # type: ignore[type-arg]
        """Opens a model from the bytes of a model file."""
        if not isinstance(value, bytes):
            raise TypeError(f"expected bytes, {type(value).__name__} found")
        self._set_model(_models.load_bytes(value, "<bytes>"))
        return contextlib.closing(self)

    def _set_model(self, model: _native.Model) -> None:
        self._model = model
        self._opened = True
        self._xseq = None
        self._marginals = None

    def close(self) -> None:
        """Closes the model."""
        self._model = None
        self._xseq = None
        self._marginals = None

    def _require(self) -> _native.Model:
        if self._model is None:
            raise ValueError("The tagger is not opened")
        return self._model

    def labels(self) -> list[str]:
        """The model's labels."""
        return self._require().labels()

    def set(self, xseq: Any) -> None:
        """Sets the item sequence that ``tag``, ``probability`` and ``marginal`` use."""
        self._require()
        self._xseq = xseq if isinstance(xseq, ItemSequence) else ItemSequence(xseq)
        self._marginals = None

    def tag(self, xseq: Any = None) -> list[str]:
        """The best label sequence of ``xseq`` (or of the sequence last set)."""
        model = self._require()
        if xseq is not None:
            self.set(xseq)
        if self._xseq is None:
            return []
        return model.tag(self._xseq)

    def probability(self, yseq: Iterable[str]) -> float:
        """``P(yseq | xseq)`` for the sequence last set."""
        model = self._require()
        return model.probability(self._xseq if self._xseq is not None else [], yseq)

    def marginal(self, y: str, pos: int) -> float:
        """The marginal probability of label ``y`` at position ``pos`` of the sequence last set."""
        model = self._require()
        labels = model.labels()
        if y not in labels:
            raise ValueError(f"Failed to find the label {y!r}")
        if self._marginals is None:
            self._marginals = model.marginals(self._xseq if self._xseq is not None else [])
        n = len(self._marginals)
        if isinstance(pos, bool) or not isinstance(pos, int):
            raise TypeError(f"pos must be an int, got {type(pos).__name__}")
        if not 0 <= pos < n:
            raise ValueError(f"The position {pos} is out of range of {n}")
        return self._marginals[pos][labels.index(y)]

    def dump(self, filename: Optional[str] = None) -> None:
        """Writes the model's parameters as text (to stdout without ``filename``)."""
        info = self.info()
        lines = ["FILEHEADER = {"]
        lines += [f"  {k}: {v}" for k, v in info.header.items()]
        lines += ["}", "", "LABELS = {"]
        lines += [f"  {i:>5}: {name}" for name, i in info.labels.items()]
        lines += ["}", "", "ATTRIBUTES = {"]
        lines += [f"  {i:>5}: {name}" for name, i in info.attributes.items()]
        lines += ["}", "", "TRANSITIONS = {"]
        lines += [f"  ({a}) --> ({b}): {w:f}" for (a, b), w in info.transitions.items()]
        lines += ["}", "", "STATE_FEATURES = {"]
        lines += [f"  ({a}) --> ({b}): {w:f}" for (a, b), w in info.state_features.items()]
        lines += ["}", ""]
        text = "\n".join(lines) + "\n"
        if filename is None:
            print(text, end="")
        else:
            with open(filename, "w", encoding="utf-8") as f:
                f.write(text)

    def info(self) -> ParsedDump:
        """The model's labels, attributes, transition and state weights."""
        if self._model is None:
            raise RuntimeError("Tagger is closed")
        model = self._model
        dump = ParsedDump()
        labels = model.labels()
        attributes = model.attributes()
        states = model.state_features()
        transitions = model.transition_features()
        dump.header = {
            "size": str(model.size()),
            "num_labels": str(len(labels)),
            "num_attrs": str(len(attributes)),
            "num_features": str(len(states) + len(transitions)),
        }
        dump.labels = {name: str(i) for i, name in enumerate(labels)}
        dump.attributes = {name: str(i) for i, name in enumerate(attributes)}
        dump.transitions = {(a, b): w for a, b, w in transitions}
        dump.state_features = {(a, y): w for a, y, w in states}
        return dump
