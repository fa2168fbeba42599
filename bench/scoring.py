"""Scores computed by the harness itself, the same way for every tool.

Token accuracy for tagging; for word segmentation, word precision, recall and
F1 as the SIGHAN Bakeoff scorer counts them (a word is right when its span of
characters is), from B/M/E/S tags or from segmented text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


def read_tags(path: Path) -> list[list[str]]:
    """Tag sequences from a file of one tag per line (its last TAB field), a blank
    line after each sequence; ``#`` lines (probabilities) are skipped."""
    sequences: list[list[str]] = []
    current: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                if current:
                    sequences.append(current)
                current = []
            elif not line.startswith("#"):
                current.append(line.split("\t")[-1])
    if current:
        sequences.append(current)
    return sequences


def _check_shapes(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predicted sequences for {len(gold)} gold ones")
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sequence {i + 1}: {len(p)} predicted labels for {len(g)} gold ones")


def token_accuracy(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """The share of items whose predicted label is the gold one."""
    _check_shapes(gold, predicted)
    total = sum(len(g) for g in gold)
    if total == 0:
        raise ValueError("no items to score")
    right = sum(a == b for g, p in zip(gold, predicted, strict=True) for a, b in zip(g, p, strict=True))
    return right / total


def word_spans(tags: Iterable[str]) -> list[tuple[int, int]]:
    """Word spans ``[start, end)`` of a B/M/E/S sequence: a word starts at B or S
    (or after a word ended) and ends at E or S (or where the sequence ends)."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    i = -1
    for i, tag in enumerate(tags):
        if tag in ("B", "S") and start is not None:
            spans.append((start, i))
            start = None
        if start is None:
            start = i
        if tag in ("E", "S"):
            spans.append((start, i + 1))
            start = None
    if start is not None:
        spans.append((start, i + 1))
    return spans


def text_spans(words: Iterable[str]) -> list[tuple[int, int]]:
    """Character spans of the words of one segmented line."""
    spans: list[tuple[int, int]] = []
    at = 0
    for w in words:
        spans.append((at, at + len(w)))
        at += len(w)
    return spans


def prf(gold: Iterable[set[tuple[int, int]]], predicted: Iterable[list[tuple[int, int]]]) -> dict[str, float]:
    """Word precision, recall and F1 over paired span lists."""
    right = n_gold = n_pred = 0
    for g, p in zip(gold, predicted, strict=True):
        right += sum(1 for s in p if s in g)
        n_gold += len(g)
        n_pred += len(p)
    precision = right / n_pred if n_pred else 0.0
    recall = right / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if right else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def tag_word_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Word P/R/F1 of predicted B/M/E/S tag sequences against gold ones."""
    _check_shapes(gold, predicted)
    return prf((set(word_spans(g)) for g in gold), (word_spans(p) for p in predicted))


def segmentation_scores(gold_path: Path, pred_path: Path, dictionary: Path | None = None) -> dict[str, float]:
    """Word P/R/F1 of a segmented file against the gold one (same lines, same
    characters), and with a training word list the recall of out-of-vocabulary words."""
    gold_lines = gold_path.read_text(encoding="utf-8").splitlines()
    pred_lines = pred_path.read_text(encoding="utf-8").splitlines()
    if len(gold_lines) != len(pred_lines):
        raise ValueError(f"{pred_path}: {len(pred_lines)} lines, gold {gold_path} has {len(gold_lines)}")
    known = set(dictionary.read_text(encoding="utf-8").split()) if dictionary else None
    gold_sets, pred_lists = [], []
    oov_total = oov_right = 0
    for number, (g, p) in enumerate(zip(gold_lines, pred_lines, strict=True), 1):
        gw, pw = g.split(), p.split()
        if "".join(gw) != "".join(pw):
            raise ValueError(f"{pred_path}:{number}: characters differ from the gold line")
        gs = set(text_spans(gw))
        ps = text_spans(pw)
        gold_sets.append(gs)
        pred_lists.append(ps)
        if known is not None:
            pset = set(ps)
            for word, span in zip(gw, text_spans(gw), strict=True):
                if word not in known:
                    oov_total += 1
                    oov_right += span in pset
    scores = prf(gold_sets, pred_lists)
    if known is not None:
        scores["oov_recall"] = oov_right / oov_total if oov_total else 0.0
    return scores
