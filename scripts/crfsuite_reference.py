#!/usr/bin/env python3
"""Reference accuracies of python-crfsuite's five training algorithms on
CRF++'s chunking sample, for chaincrf-train's accuracy test.

The attributes are CRF++'s: the sample's own template (U00-U22 over the
word and POS columns; B = label-pair transitions) expanded as CRF++ does,
out-of-sequence rows included (``_B-1``, ``_B+1``, ...). chaincrf reads
the same template, so both sides train on the same attributes; the record
holds their count, which the Rust test checks.

For ``lbfgs`` and ``l2sgd`` one run is recorded (``l2sgd`` shuffles with
C's ``rand()``, fixed for the process). For ``ap``, ``pa`` and ``arow``,
whose result depends on the visiting order, the mean over ``--orders``
runs, each appending the training sequences in another shuffled order.
Every algorithm runs with CRFsuite's defaults (``feature.possible_states``
and ``possible_transitions`` off, no frequency cutoff).

Per-epoch seconds come from timing ``Trainer.train`` at two epoch caps on
the same data and dividing the difference by the epochs between them.

Usage::

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install python-crfsuite
    CHAINCRF_DATA=../shared/data /tmp/venv/bin/python scripts/crfsuite_reference.py \\
        > crates/train/tests/crfsuite_reference.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import pycrfsuite

Sequence = list[list[str]]
MACRO = re.compile(r"%x\[\s*(-?\d+)\s*,\s*(\d+)\s*\]")


def read_columns(path: Path) -> list[Sequence]:
    """CRF++ column data: rows of whitespace-separated columns, blank lines between sequences."""
    sequences: list[Sequence] = []
    rows: Sequence = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(line.split())
        elif rows:
            sequences.append(rows)
            rows = []
    if rows:
        sequences.append(rows)
    return sequences


def read_unigram_templates(path: Path) -> tuple[list[str], bool]:
    """The U templates, and whether a B template (label pairs) is present."""
    unigrams: list[str] = []
    bigram = False
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("U"):
            unigrams.append(line)
        elif line.startswith("B"):
            if MACRO.search(line):
                raise ValueError(
                    f"{path}: bigram templates with macros are not supported: {line!r}"
                )
            bigram = True
        else:
            raise ValueError(f"{path}: not a U or B template: {line!r}")
    return unigrams, bigram


def expand(template: str, rows: Sequence, t: int) -> str:
    """A template at position t, CRF++'s way (``_B-k`` / ``_B+k`` outside the sequence)."""

    def cell(m: re.Match[str]) -> str:
        row, col = int(m.group(1)), int(m.group(2))
        i = t + row
        if i < 0:
            return f"_B-{-i}"
        if i >= len(rows):
            return f"_B+{i - len(rows) + 1}"
        return rows[i][col]

    return MACRO.sub(cell, template)


def attributes(templates: list[str], rows: Sequence) -> list[list[str]]:
    return [[expand(tpl, rows, t) for tpl in templates] for t in range(len(rows))]


def labels(rows: Sequence) -> list[str]:
    return [r[-1] for r in rows]


def train(
    algorithm: str,
    data: list[tuple[list[list[str]], list[str]]],
    params: dict[str, float | int],
    model: str,
) -> float:
    """Trains a model file; returns the CPU seconds ``train`` took (the machine may be shared)."""
    trainer = pycrfsuite.Trainer(verbose=False)
    trainer.select(algorithm)
    trainer.set_params(params)
    for xseq, yseq in data:
        trainer.append(xseq, yseq)
    started = time.process_time()
    trainer.train(model)
    return time.process_time() - started


def accuracy(model: str, test: list[tuple[list[list[str]], list[str]]]) -> float:
    tagger = pycrfsuite.Tagger()
    tagger.open(model)
    correct = total = 0
    for xseq, yseq in test:
        predicted = tagger.tag(xseq)
        correct += sum(p == y for p, y in zip(predicted, yseq))
        total += len(yseq)
    tagger.close()
    return correct / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--orders", type=int, default=24, help="shuffled orders for ap, pa and arow"
    )
    args = parser.parse_args()
    root = os.environ.get("CHAINCRF_DATA")
    if not root:
        print("set CHAINCRF_DATA to the shared data folder", file=sys.stderr)
        return 2
    folder = Path(root) / "crfpp-examples" / "chunking"
    templates, bigram = read_unigram_templates(folder / "template")
    if not bigram:
        raise ValueError("the chunking template is expected to have a B line")
    train_rows = read_columns(folder / "train.data")
    test_rows = read_columns(folder / "test.data")
    train_data = [(attributes(templates, r), labels(r)) for r in train_rows]
    test_data = [(attributes(templates, r), labels(r)) for r in test_rows]
    distinct = {a for xseq, _ in train_data for item in xseq for a in item}

    online = {"ap", "pa", "arow"}
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = str(Path(tmp) / "model.crfsuite")
        for algorithm in ["lbfgs", "l2sgd", "ap", "pa", "arow"]:
            runs = args.orders if algorithm in online else 1
            accuracies = []
            for seed in range(runs):
                data = list(train_data)
                if algorithm in online:
                    random.Random(seed).shuffle(data)
                train(algorithm, data, {}, model)
                accuracies.append(accuracy(model, test_data))
            entry: dict[str, object] = {
                "runs": runs,
                "mean_token_accuracy": sum(accuracies) / runs,
                "min_token_accuracy": min(accuracies),
                "max_token_accuracy": max(accuracies),
            }
            if algorithm != "lbfgs":
                # Per-epoch time: the difference between two epoch caps, with
                # the early stops off so that both runs reach their cap
                # (l2sgd's delta test; arow stops at an epoch without mistakes).
                never: dict[str, dict[str, float | int]] = {
                    "l2sgd": {"delta": -1.0},
                    "arow": {"epsilon": -1.0},
                }
                extra = never.get(algorithm, {})
                low, high = 10, 110
                timings = []
                for _ in range(3):
                    a = train(
                        algorithm, train_data, {"max_iterations": low, **extra}, model
                    )
                    b = train(
                        algorithm, train_data, {"max_iterations": high, **extra}, model
                    )
                    timings.append((b - a) / (high - low))
                entry["seconds_per_epoch"] = sorted(timings)[1]
            results[algorithm] = entry
    record = {
        "tool": f"python-crfsuite {importlib.metadata.version('python-crfsuite')}",
        "data": "crfpp-examples/chunking (train.data, test.data, template)",
        "train_sequences": len(train_data),
        "train_tokens": sum(len(y) for _, y in train_data),
        "test_tokens": sum(len(y) for _, y in test_data),
        "attributes": len(distinct),
        "labels": len({y for _, ys in train_data for y in ys}),
        "algorithms": results,
    }
    json.dump(record, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
