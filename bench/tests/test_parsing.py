"""The harness's readers: CRFsuite data and logs, CRF++ templates, tag files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import data
from bench.crfsuite_peer import parse_log
from bench.scoring import read_tags, segmentation_scores, tag_word_scores, token_accuracy, word_spans
from bench.tools import read_jsonl


def test_fields_follow_crfsuite_escapes() -> None:
    assert data.parse_field("a") == ("a", 1.0)
    assert data.parse_field("a:2") == ("a", 2.0)
    assert data.parse_field(r"U00\:x") == ("U00:x", 1.0)
    assert data.parse_field(r"U00\:x:0.5") == ("U00:x", 0.5)
    assert data.parse_field(r"a\\:2") == ("a\\", 2.0)
    assert data.parse_field(r"a\\\:b") == (r"a\:b", 1.0)
    with pytest.raises(ValueError, match="not a number"):
        data.parse_field("a:b")


def test_write_then_read_keeps_names_and_values(tmp_path: Path) -> None:
    sequences: list[data.Sequence] = [
        ([["U00:x", "back\\slash"], {"w": 0.25, "colon:name": 2.0}], ["B:NP", "I-NP"]),
        ([["only"]], ["O"]),
    ]
    path = tmp_path / "d.crfsuite"
    assert data.write_crfsuite(path, sequences) == 2
    assert list(data.read_crfsuite(path)) == sequences


def test_bad_value_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.crfsuite"
    path.write_text("B\ta\n\nO\tb:x\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.crfsuite:3: .*not a number"):
        list(data.read_crfsuite(path))


def test_template_expands_as_crfpp_does(tmp_path: Path) -> None:
    template = tmp_path / "template"
    template.write_text("# comment\nU00:%x[-1,0]\nU01:%x[0,0]/%x[1,1]\n\nB\n", encoding="utf-8")
    rows = [["He", "PRP", "B-NP"], ["reckons", "VBZ", "B-VP"]]
    templates = data.read_template(template)
    ((items, labels),) = data.columns_to_sequences([rows], templates)
    assert labels == ["B-NP", "B-VP"]
    assert items == [["U00:_B-1", "U01:He/VBZ"], ["U00:He", "U01:reckons/_B+1"]]
    template.write_text("B01:%x[0,0]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="template:1"):
        data.read_template(template)


LBFGS_LOG = """Feature generation
Number of features: 14314
L-BFGS optimization
***** Iteration #1 *****
Loss: 2062.965369
Feature norm: 1.000000
Error norm: 343.660748
Active features: 14314
Line search trials: 2
Line search step: 0.1
Seconds required for this iteration: 0.010

***** Iteration #2 *****
Loss: 1442.882611
Feature norm: 2.000000
Error norm: 227.684847
Active features: 14314
Line search trials: 1
Line search step: 1.0
Seconds required for this iteration: 0.005

L-BFGS resulted in convergence
Total seconds required for training: 0.020
"""

AP_LOG = """***** Iteration #1 *****
Loss: 120.000000
Feature norm: 10.0
Seconds required for this iteration: 0.002

***** Iteration #2 *****
Loss: 60.000000
Feature norm: 12.0
Seconds required for this iteration: 0.003
"""


def test_crfsuite_log_gives_chaincrf_rows() -> None:
    out = parse_log(LBFGS_LOG, "lbfgs")
    assert out["features"] == 14314
    assert out["iterations"] == 2
    assert out["evaluations"] == 4
    assert out["seconds"] == pytest.approx(0.020)
    rows = out["progress"]
    assert [r["iteration"] for r in rows] == [1, 2]
    assert rows[1]["objective"] == pytest.approx(1442.882611)
    assert rows[0]["gradient_norm"] == pytest.approx(343.660748)
    assert [r["seconds"] for r in rows] == pytest.approx([0.010, 0.015])
    assert [r["cpu_seconds"] for r in rows] == pytest.approx([0.010, 0.015])
    assert [r["evaluations"] for r in rows] == [3, 4]
    ap = parse_log(AP_LOG, "ap")
    assert ap["evaluations"] is None
    assert [r["gradient_norm"] for r in ap["progress"]] == [None, None]
    assert ap["final_objective"] == pytest.approx(60.0)
    assert ap["seconds"] == pytest.approx(0.005)


def test_progress_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"iteration": 1}\n\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"p\.jsonl:3"):
        read_jsonl(path)


def test_scores() -> None:
    assert word_spans(["B", "E", "S", "B", "M", "E"]) == [(0, 2), (2, 3), (3, 6)]
    assert word_spans(["M", "B", "M"]) == [(0, 1), (1, 3)]
    gold = [["B", "E", "S"], ["S"]]
    assert token_accuracy(gold, [["B", "E", "B"], ["S"]]) == pytest.approx(0.75)
    scores = tag_word_scores(gold, [["S", "S", "S"], ["S"]])
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="sequence 1"):
        token_accuracy(gold, [["B"], ["S"]])


def test_tag_files_and_segmentations(tmp_path: Path) -> None:
    tags = tmp_path / "tags.txt"
    tags.write_text("# 0.5\nx\tB\nE\n\n\nS\n", encoding="utf-8")
    assert read_tags(tags) == [["B", "E"], ["S"]]
    gold, pred, words = tmp_path / "gold", tmp_path / "pred", tmp_path / "words"
    gold.write_text("ab  c\nde\n", encoding="utf-8")
    pred.write_text("a b c\nde\n", encoding="utf-8")
    words.write_text("ab\nc\n", encoding="utf-8")
    scores = segmentation_scores(gold, pred, words)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["oov_recall"] == pytest.approx(1.0)
    pred.write_text("ab c\nxe\n", encoding="utf-8")
    with pytest.raises(ValueError, match="pred:2"):
        segmentation_scores(gold, pred)
