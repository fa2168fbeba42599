"""chaincrf's spaCy tokenizer, found through the entry point (no import of chaincrf)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
from cws_data import SENTENCES, write_corpus

spacy = pytest.importorskip("spacy", reason="spaCy is not installed (scripts/test.sh installs it)")

TEXTS = [
    "共同创造美好的新世纪",
    "  我们 热爱和平  ",
    "北京\t是中国的首都\n\n今天天气很好",
    "😀中国人民😀 共同创造历史 ",
    "",
    " ",
]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from chaincrf import cws

    folder = tmp_path_factory.mktemp("spacy-model")
    path = folder / "tiny.model"
    cws.train(write_corpus(folder), path, progress=False, lexicon_folds=2, threads=1)
    return path


def blank(model: Path, **extra: object) -> spacy.language.Language:
    tokenizer = {"@tokenizers": "chaincrf.ChineseTokenizer.v1", "model": str(model), **extra}
    return spacy.blank("zh", config={"nlp": {"tokenizer": tokenizer}})


def test_entry_point_registers_the_tokenizer() -> None:
    assert "chaincrf.ChineseTokenizer.v1" in spacy.registry.tokenizers.get_all()


def test_docs_hold_our_words_with_spacy_whitespace(model: Path) -> None:
    from chaincrf.cws import Segmenter

    nlp = blank(model)
    seg = Segmenter(model)
    for text in TEXTS + [s.replace(" ", "") for s in SENTENCES]:
        doc = nlp(text)
        assert doc.text == text
        assert [t.text for t in doc if not t.is_space] == seg.cut(text)
        for token in doc:
            assert text[token.idx : token.idx + len(token)] == token.text
        for word, start, end in seg.tokenize(text):
            span = doc.char_span(start, end)
            assert span is not None and len(span) == 1 and span.text == word
    doc = nlp("我们 热爱和平")
    assert [(t.text, t.whitespace_) for t in doc] == [("我们", " "), ("热爱", ""), ("和平", "")]


def test_pipe_batches_and_agrees_with_call(model: Path) -> None:
    nlp = blank(model, threads=2)
    texts = TEXTS * 30
    expected = [[t.text for t in nlp(text)] for text in texts]
    assert [[t.text for t in d] for d in nlp.tokenizer.pipe(texts, batch_size=7)] == expected
    assert [[t.text for t in d] for d in nlp.pipe(texts, batch_size=16)] == expected


def test_pipe_with_two_processes(model: Path) -> None:
    nlp = blank(model)
    texts = TEXTS * 20
    expected = [[t.text for t in nlp(text)] for text in texts]
    got = [[t.text for t in d] for d in nlp.pipe(texts, n_process=2, batch_size=10)]
    assert got == expected


def test_user_dict_and_keep_latin_settings(model: Path, tmp_path: Path) -> None:
    words = tmp_path / "user.dict"
    words.write_text("的新世\n", encoding="utf-8")
    nlp = blank(model, user_dict=str(words), keep_latin=True)
    assert "的新世" in [t.text for t in nlp("共同创造美好的新世纪")]


def test_to_disk_carries_the_model(model: Path, tmp_path: Path) -> None:
    words = tmp_path / "user.dict"
    words.write_text("的新世\n", encoding="utf-8")
    own = tmp_path / "own.model"
    shutil.copy(model, own)
    nlp = blank(own, user_dict=str(words))
    nlp.tokenizer.segmenter.add_word("造美")
    expected = [[t.text for t in nlp(text)] for text in TEXTS + ["共同创造美好的新世纪"]]
    saved = tmp_path / "pipeline"
    nlp.to_disk(saved)
    assert (saved / "tokenizer" / "model.chaincrf").exists()
    own.unlink()
    words.unlink()  # the pipeline must not need the original files
    back = spacy.load(saved)
    assert [[t.text for t in back(text)] for text in TEXTS + ["共同创造美好的新世纪"]] == expected
    again = spacy.blank("zh", config=nlp.config).from_bytes(nlp.to_bytes())
    assert [[t.text for t in again(text)] for text in TEXTS] == expected[: len(TEXTS)]
    copied = pickle.loads(pickle.dumps(nlp.tokenizer))
    assert [t.text for t in copied("共同创造美好的新世纪")] == expected[-1]


def test_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    nlp = blank(tmp_path / "nowhere.model")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.model"):
        nlp("共同创造")
