"""Regenerates the CRFsuite model fixtures of tests/crfsuite_models.rs.

python-crfsuite (CRFsuite 0.12) trains small models on generated attribute
data, then tags held-out data; its labels, marginals and the weights it reports
(Tagger.info()) are written as JSON beside the models, so the Rust tests can
check that chaincrf reads the same weights and tags exactly as CRFsuite does.

Usage (from this directory, python-crfsuite installed):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install python-crfsuite
    /tmp/venv/bin/python generate.py

Everything is seeded: running it again rewrites the same data and, with the
same python-crfsuite build, the same models.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pycrfsuite

HERE = Path(__file__).resolve().parent

Item = dict[str, float]


def escape(name: str) -> str:
    """Escapes a name for CRFsuite's text format (`\\` and `:`)."""
    return name.replace("\\", "\\\\").replace(":", "\\:")


def value_text(value: float) -> str:
    """The shortest text that reads back as exactly `value`."""
    return repr(value)


def make_sequences(
    rng: random.Random, labels: list[str], count: int, vocabulary: list[str]
) -> list[tuple[list[Item], list[str]]]:
    """Sequences from a small Markov chain over `labels`: each label prefers
    some words, the previous label shapes the next, and a few attributes carry
    real values (a length, a signed score) so non-unit values are exercised."""
    k = len(labels)
    sequences = []
    for _ in range(count):
        n = rng.randint(1, 9)
        ys: list[str] = []
        xs: list[Item] = []
        words: list[str] = []
        y = rng.randrange(k)
        for t in range(n):
            if t > 0:
                y = (y + rng.choice([0, 0, 1, 1, 2])) % k
            preferred = vocabulary[(y * 3 + rng.randrange(4)) % len(vocabulary)]
            word = preferred if rng.random() < 0.7 else rng.choice(vocabulary)
            item: Item = {
                "bias": 1.0,
                f"w={word}": 1.0,
                f"suffix={word[-2:]}": 1.0,
                "len": round(len(word) / 7.0 + rng.uniform(-0.05, 0.05), 6),
                "score": rng.uniform(-1.5, 1.5) + (0.8 if y % 2 == 0 else -0.8),
            }
            if t > 0:
                item[f"w[-1]={words[-1]}"] = 1.0
            if rng.random() < 0.2:
                item["rare:x"] = 0.5
            words.append(word)
            xs.append(item)
            ys.append(labels[y])
        sequences.append((xs, ys))
    return sequences


def write_data(path: Path, sequences: list[tuple[list[Item], list[str]]]) -> None:
    """Writes CRFsuite attribute data (what `chaincrf tag` reads)."""
    lines = []
    for xs, ys in sequences:
        for item, label in zip(xs, ys):
            fields = [escape(label)]
            for name, value in item.items():
                text = escape(name)
                fields.append(text if value == 1.0 else f"{text}:{value_text(value)}")
            lines.append("\t".join(fields))
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def train(
    name: str,
    algorithm: str,
    params: dict[str, object],
    sequences: list[tuple[list[Item], list[str]]],
) -> Path:
    trainer = pycrfsuite.Trainer(verbose=False)
    for xs, ys in sequences:
        trainer.append(pycrfsuite.ItemSequence(xs), ys)
    trainer.select(algorithm)
    trainer.set_params(params)
    path = HERE / f"{name}.crfsuite"
    trainer.train(str(path))
    return path


def expected(
    model: Path, sequences: list[tuple[list[Item], list[str]]]
) -> dict[str, object]:
    """python-crfsuite's view of `model`: its weights and, for each test
    sequence, the Viterbi labels and every label's marginal at every position."""
    tagger = pycrfsuite.Tagger()
    tagger.open(str(model))
    labels = tagger.labels()
    info = tagger.info()
    predictions = []
    for xs, _ in sequences:
        tagger.set(pycrfsuite.ItemSequence(xs))
        predicted = tagger.tag()
        marginals = [[tagger.marginal(y, t) for y in labels] for t in range(len(xs))]
        predictions.append({"labels": predicted, "marginals": marginals})
    tagger.close()
    return {
        "labels": labels,
        "state_features": sorted(
            [a, y, w] for (a, y), w in info.state_features.items()
        ),
        "transitions": sorted([a, b, w] for (a, b), w in info.transitions.items()),
        "num_attributes": len(info.attributes),
        "predictions": predictions,
    }


def main() -> None:
    rng = random.Random(20261207)
    vocabulary = [
        "the",
        "cat",
        "sat",
        "on",
        "mat",
        "über",
        "naïve",
        "a:b",
        "back\\slash",
        "x",
        "running",
        "fast",
    ]
    configs = [
        # L1 + L2: many weights exactly zero, so CRFsuite drops those features
        # and attributes; several labels, one with a colon in its name.
        (
            "l1",
            "lbfgs",
            {"c1": 0.4, "c2": 0.01, "max_iterations": 60},
            ["B-NP", "I-NP", "O", "V:x"],
        ),
        # Every attribute x label pair and every transition (dense weights).
        (
            "dense",
            "l2sgd",
            {
                "c2": 0.5,
                "max_iterations": 15,
                "feature.possible_states": True,
                "feature.possible_transitions": True,
            },
            ["A", "B", "C"],
        ),
        # Averaged perceptron, more labels, non-ASCII label.
        ("ap", "ap", {"max_iterations": 8}, ["N", "V", "ADJ", "DET", "Ü", "P"]),
    ]
    for name, algorithm, params, labels in configs:
        train_set = make_sequences(rng, labels, 60, vocabulary)
        test_set = make_sequences(rng, labels, 25, vocabulary)
        # Attributes the model never saw must be ignored when tagging.
        test_set[0][0][0]["never-seen"] = 3.0
        model = train(name, algorithm, params, train_set)
        write_data(HERE / f"{name}.test", test_set)
        with open(HERE / f"{name}.expected.json", "w", encoding="utf-8") as f:
            json.dump(
                expected(model, test_set), f, ensure_ascii=False, separators=(",", ":")
            )
            f.write("\n")
        print(f"{name}: {model.stat().st_size} bytes")


if __name__ == "__main__":
    main()
