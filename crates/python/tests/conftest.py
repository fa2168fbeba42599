"""Shared data for the tests: a small synthetic tagging task, and CRF++'s
chunking sample from $CHAINCRF_DATA when it is set."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

WORDS = ["the", "a", "cat", "dog", "saw", "ran", "big", "red", "on", "mat", "and", "with"]
NAMES = ["Alice", "Bob", "Paris", "London", "Carol"]


def _label(word: str) -> str:
    if word.isdigit():
        return "NUM"
    if word[0].isupper():
        return "CAP"
    return "O"


def word_features(sentence: list[str], i: int) -> dict[str, Any]:
    w = sentence[i]
    f: dict[str, Any] = {
        "bias": 1.0,
        "w": w.lower(),
        "suffix": w[-2:],
        "istitle": w.istitle(),
        "isdigit": w.isdigit(),
        "len": len(w) / 10,
    }
    if i > 0:
        f["-1"] = {"w": sentence[i - 1].lower()}
    else:
        f["BOS"] = True
    return f


def make_corpus(n: int, seed: int) -> tuple[list[list[dict[str, Any]]], list[list[str]]]:
    rng = random.Random(seed)
    X, y = [], []
    for _ in range(n):
        length = rng.randint(1, 9)
        sent = []
        for _ in range(length):
            r = rng.random()
            if r < 0.15:
                sent.append(str(rng.randint(0, 2000)))
            elif r < 0.3:
                sent.append(rng.choice(NAMES))
            else:
                sent.append(rng.choice(WORDS))
        X.append([word_features(sent, i) for i in range(len(sent))])
        y.append([_label(w) for w in sent])
    return X, y


@pytest.fixture(scope="session")
def corpus() -> tuple[list[Any], list[list[str]]]:
    return make_corpus(150, seed=1)


@pytest.fixture(scope="session")
def test_corpus() -> tuple[list[Any], list[list[str]]]:
    return make_corpus(60, seed=2)


def data_dir() -> Path:
    root = os.environ.get("CHAINCRF_DATA")
    if not root:
        pytest.skip("CHAINCRF_DATA is not set: real-data test skipped")
    path = Path(root)
    if not path.is_dir():
        pytest.skip(f"CHAINCRF_DATA={root} is not a directory: real-data test skipped")
    return path


def read_columns(path: Path) -> list[list[list[str]]]:
    sentences: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if current:
                sentences.append(current)
                current = []
            continue
        current.append(line.split())
    if current:
        sentences.append(current)
    return sentences


def chunk_features(s: list[list[str]], i: int) -> dict[str, Any]:
    w, p = s[i][0], s[i][1]
    f: dict[str, Any] = {
        "bias": 1.0,
        "w": w.lower(),
        "suf3": w[-3:],
        "suf2": w[-2:],
        "istitle": w.istitle(),
        "isdigit": w.isdigit(),
        "pos": p,
        "pos2": p[:2],
    }
    if i > 0:
        f["-1"] = {"w": s[i - 1][0].lower(), "pos": s[i - 1][1]}
    else:
        f["BOS"] = True
    if i < len(s) - 1:
        f["+1"] = {"w": s[i + 1][0].lower(), "pos": s[i + 1][1]}
    else:
        f["EOS"] = True
    return f


@pytest.fixture(scope="session")
def chunking() -> tuple[Any, Any, Any, Any]:
    """CRF++'s chunking sample as sklearn-crfsuite feature dicts."""
    d = data_dir() / "crfpp-examples" / "chunking"
    if not (d / "train.data").exists():
        pytest.skip(f"{d}/train.data not found: real-data test skipped")
    train = read_columns(d / "train.data")
    test = read_columns(d / "test.data")

    def xy(sents: list[list[list[str]]]) -> tuple[Any, Any]:
        return (
            [[chunk_features(s, i) for i in range(len(s))] for s in sents],
            [[row[-1] for row in s] for s in sents],
        )

    return (*xy(train), *xy(test))
