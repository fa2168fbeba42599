"""Items are read exactly as python-crfsuite reads them; hostile input is a
TypeError or ValueError naming the problem."""

from __future__ import annotations

import math
import pickle

import pytest

from chaincrf import pycrfsuite

NESTED = [
    {"a": {"b": 2, "c": "d"}, "e": ["f", "g"], "h": True, "i": b"j", "k": 3, "l": False, "m": {"n": {"o": 0.5}}},
    ["x", "y", b"z"],
    {"s": {"t", "u"}},
    {},
]


def test_nested_features_follow_pycrfsuite() -> None:
    items = pycrfsuite.ItemSequence(NESTED).items()
    assert items[0] == {
        "a:b": 2.0,
        "a:c:d": 1.0,
        "e:f": 1.0,
        "e:g": 1.0,
        "h": 1.0,
        "i:j": 1.0,
        "k": 3.0,
        "l": 0.0,
        "m:n:o": 0.5,
    }
    assert items[1] == {"x": 1.0, "y": 1.0, "z": 1.0}
    assert items[2] == {"s:t": 1.0, "s:u": 1.0}
    assert items[3] == {}
    assert len(pycrfsuite.ItemSequence(NESTED)) == 4


def test_same_items_as_python_crfsuite() -> None:
    original = pytest.importorskip("pycrfsuite")
    assert pycrfsuite.ItemSequence(NESTED).items() == original.ItemSequence(NESTED).items()


def test_item_sequence_pickles() -> None:
    seq = pycrfsuite.ItemSequence(NESTED)
    again = pickle.loads(pickle.dumps(seq))
    assert again.items() == seq.items()


@pytest.mark.parametrize(
    ("xseq", "error", "fragment"),
    [
        ("abc", TypeError, "list of items"),
        ({"a": 1}, TypeError, "list of items"),
        (5, TypeError, "list of items"),
        (["word"], TypeError, "item must be a dict"),
        ([{"a": None}], TypeError, "value must be a number"),
        ([{"a": (1, 2)}], TypeError, "value must be a number"),
        ([{1: 1.0}], TypeError, "feature names must be str"),
        ([[1, 2]], TypeError, "feature names must be str"),
        ([{"a": math.nan}], ValueError, "not finite"),
        ([{"a": math.inf}], ValueError, "not finite"),
        ([{b"\xff": 1}], ValueError, "not UTF-8"),
        ([{"a": 1}, 3], TypeError, "item 1"),
    ],
)
def test_hostile_items(xseq: object, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        pycrfsuite.ItemSequence(xseq)
