"""A spaCy tokenizer for Chinese on chaincrf's segmenter.

Registered as ``chaincrf.ChineseTokenizer.v1`` through the
``spacy_tokenizers`` entry point, so spaCy finds it without
``import chaincrf``::

    nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {
        "@tokenizers": "chaincrf.ChineseTokenizer.v1", "model": "pku.model"}}})
    [t.text for t in nlp("共同创造美好的新世纪")]

``model`` is a model file (None: the default model, see
``chaincrf.cws.Segmenter.default``); ``user_dict`` a dictionary file;
``keep_latin`` as in ``chaincrf.cws.Segmenter``. Tokens are the segmenter's
words; whitespace follows spaCy's convention (one space after a word is the
word's ``whitespace_``, any other whitespace is a token of its own), so
``doc.text`` is the input and every token's ``idx`` its offset there.

``nlp.to_disk`` saves the model file and the user dictionary inside the
pipeline's ``tokenizer`` folder and ``from_disk`` loads them from there, so
a saved pipeline works on a machine without the original files.
``tokenizer.pipe`` (and so ``nlp.pipe``) segments each batch on several
threads; ``nlp.pipe(texts, n_process=2)`` works too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable, Optional, Union

import srsly
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import ensure_path, from_bytes, to_bytes
from spacy.vocab import Vocab

from .cws import Segmenter, _restore

__all__ = ["ChineseTokenizer", "create_tokenizer"]

_MODEL_FILE = "model.chaincrf"
_DICT_FILE = "user_dict.txt"
_CFG_FILE = "cfg.json"


def create_tokenizer(
    model: Optional[str] = None,
    user_dict: Optional[str] = None,
    keep_latin: bool = False,
    threads: Optional[int] = None,
) -> Callable[[Language], ChineseTokenizer]:
    """The ``chaincrf.ChineseTokenizer.v1`` factory (see the module docs)."""

    def make(nlp: Language) -> ChineseTokenizer:
        return ChineseTokenizer(nlp.vocab, model=model, user_dict=user_dict, keep_latin=keep_latin, threads=threads)

    return make


def _doc(vocab: Vocab, text: str, tokens: list[tuple[str, int, int]]) -> Doc:
    words: list[str] = []
    spaces: list[bool] = []
    pos = 0
    for word, start, end in tokens:
        if start > pos:
            _gap(text[pos:start], words, spaces)
        words.append(word)
        spaces.append(False)
        pos = end
    if pos < len(text):
        _gap(text[pos:], words, spaces)
    return Doc(vocab, words=words, spaces=spaces)


def _gap(gap: str, words: list[str], spaces: list[bool]) -> None:
    """Whitespace between words: a single space after a word goes into its
    ``whitespace_``; the rest becomes a token."""
    if words and not spaces[-1] and gap[0] == " ":
        spaces[-1] = True
        gap = gap[1:]
    if gap:
        words.append(gap)
        spaces.append(False)


class ChineseTokenizer:
    """Turns text into a ``Doc`` of chaincrf's words."""

    def __init__(
        self,
        vocab: Vocab,
        model: Optional[str] = None,
        user_dict: Optional[str] = None,
        keep_latin: bool = False,
        threads: Optional[int] = None,
        segmenter: Optional[Segmenter] = None,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.user_dict = user_dict
        self.keep_latin = keep_latin
        self.threads = threads
        # Loaded on first use: a pipeline read with spacy.load() replaces it
        # from its own folder, where the configured path may not exist.
        self._segmenter = segmenter

    @property
    def segmenter(self) -> Segmenter:
        if self._segmenter is None:
            if self.model is None:
                self._segmenter = Segmenter.default(user_dict=self.user_dict, keep_latin=self.keep_latin)
            else:
                self._segmenter = Segmenter(self.model, user_dict=self.user_dict, keep_latin=self.keep_latin)
        return self._segmenter

    def __call__(self, text: str) -> Doc:
        return _doc(self.vocab, text, self.segmenter.tokenize(text))

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        """Docs of ``texts`` in order, each batch segmented on several threads."""
        batch: list[str] = []
        for text in texts:
            batch.append(text)
            if len(batch) >= batch_size:
                yield from self._batch(batch)
                batch = []
        if batch:
            yield from self._batch(batch)

    def _batch(self, texts: list[str]) -> Iterator[Doc]:
        for text, tokens in zip(texts, self.segmenter.tokenize_many(texts, self.threads)):
            yield _doc(self.vocab, text, tokens)

    # -- serialization --------------------------------------------------------

    def _cfg(self) -> dict[str, Any]:
        return {"keep_latin": self.keep_latin, "threads": self.threads}

    def _set(self, model: bytes, dict_text: str, cfg: dict[str, Any]) -> None:
        self.keep_latin = bool(cfg.get("keep_latin", False))
        self.threads = cfg.get("threads")
        self._segmenter = _restore(model, dict_text, self.keep_latin, self.model)

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        model, dict_text, _ = self.segmenter._native.state()
        serializers = {
            "cfg": lambda: srsly.json_dumps(self._cfg()),
            "model": lambda: model,
            "user_dict": lambda: dict_text,
        }
        return to_bytes(serializers, exclude)

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = ()) -> ChineseTokenizer:
        parts: dict[str, Any] = {}
        deserializers = {
            "cfg": lambda b: parts.__setitem__("cfg", srsly.json_loads(b)),
            "model": lambda b: parts.__setitem__("model", b),
            "user_dict": lambda b: parts.__setitem__("user_dict", b),
        }
        from_bytes(data, deserializers, exclude)
        if "model" in parts:
            self._set(parts["model"], parts.get("user_dict", ""), parts.get("cfg", {}))
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = ()) -> None:
        """Writes the model file, the user dictionary and the settings into ``path``."""
        path = ensure_path(path)
        exclude = set(exclude)
        model, dict_text, _ = self.segmenter._native.state()
        path.mkdir(parents=True, exist_ok=True)
        if "model" not in exclude:
            (path / _MODEL_FILE).write_bytes(model)
        if "user_dict" not in exclude:
            (path / _DICT_FILE).write_text(dict_text, encoding="utf-8")
        if "cfg" not in exclude:
            (path / _CFG_FILE).write_text(json.dumps(self._cfg()), encoding="utf-8")

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = ()) -> ChineseTokenizer:
        """Loads what :meth:`to_disk` wrote (a folder without a model file
        keeps the configured model)."""
        path = ensure_path(path)
        exclude = set(exclude)
        cfg_file, dict_file, model_file = path / _CFG_FILE, path / _DICT_FILE, path / _MODEL_FILE
        if "cfg" not in exclude and cfg_file.exists():
            cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
            self.keep_latin = bool(cfg.get("keep_latin", False))
            self.threads = cfg.get("threads")
        if "model" in exclude or not model_file.exists():
            return self
        seg = Segmenter(model_file, keep_latin=self.keep_latin)
        if "user_dict" not in exclude and dict_file.exists():
            seg.load_user_dict(dict_file)
        self._segmenter = seg
        return self
