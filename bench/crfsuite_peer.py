"""The CRFsuite side: python-crfsuite training and tagging in a child process.

Run by the harness with the Python that has python-crfsuite (``prepare`` makes
it), so that wall time and peak RSS are this process's own::

    python -m bench.crfsuite_peer train DATA MODEL OUT.json --algorithm ap --set max_iterations=10
    python -m bench.crfsuite_peer tag MODEL DATA TAGS OUT.json

``train`` writes the per-iteration rows of CRFsuite's own log records with
chaincrf's ``--progress-jsonl`` keys, so the report reads both tools alike.
``tag`` writes one predicted label per line, a blank line after each sequence.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import sys
import time
from pathlib import Path

from bench.data import read_crfsuite

_HEADER = re.compile(r"\*+ (?:Iteration|Epoch) #(\d+) \*+")
_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9 ()\-]*?): (\S+)")
# CRFsuite's names for the figures chaincrf's progress rows carry.
_KEYS = {
    "Loss": "objective",
    "Error norm": "gradient_norm",
    "Active features": "active_features",
    "Line search trials": "line_search_trials",
    "Seconds required for this iteration": "iteration_seconds",
}


def parse_log(text: str, algorithm: str) -> dict[str, object]:
    """Progress rows and totals from CRFsuite's training log.

    Rows have chaincrf's keys (``algorithm``, ``iteration``, ``objective``,
    ``gradient_norm`` (``None`` where CRFsuite prints none), ``active_features``,
    ``seconds`` since training began, also as ``cpu_seconds``, since CRFsuite
    measures with ``clock()``; ``heldout`` = ``None``); ``evaluations``
    counts L-BFGS's function evaluations (one at the start, one per line-search
    trial), in total and, cumulatively, in each row, as chaincrf's rows do.
    """
    rows: list[dict[str, object]] = []
    current: dict[str, object] | None = None
    features = None
    total = None
    for line in text.splitlines():
        m = _HEADER.match(line.strip())
        if m:
            current = {
                "algorithm": algorithm,
                "iteration": int(m.group(1)),
                "objective": None,
                "gradient_norm": None,
                "active_features": None,
                "heldout": None,
            }
            rows.append(current)
            continue
        m = _FIELD.match(line.strip())
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        if key == "Number of features":
            features = int(value)
        elif key == "Total seconds required for training":
            total = float(value)
        elif current is not None and key in _KEYS:
            name = _KEYS[key]
            current[name] = int(value) if name in ("active_features", "line_search_trials") else float(value)
    rows = [r for r in rows if "iteration_seconds" in r]
    elapsed = 0.0
    evaluations = 1 if algorithm == "lbfgs" else None
    for r in rows:
        elapsed += float(r["iteration_seconds"])  # type: ignore[arg-type]
        r["seconds"] = elapsed
        # CRFsuite times its iterations with clock(): process CPU time.
        r["cpu_seconds"] = elapsed
        if evaluations is not None:
            evaluations += int(r.get("line_search_trials", 0))  # type: ignore[call-overload]
            r["evaluations"] = evaluations
    return {
        "progress": rows,
        "iterations": len(rows),
        "evaluations": evaluations,
        "features": features,
        "final_objective": rows[-1]["objective"] if rows else None,
        "seconds": total if total is not None else elapsed,
    }


def _value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def cmd_train(args: argparse.Namespace) -> None:
    import pycrfsuite

    log: list[str] = []

    class Trainer(pycrfsuite.Trainer):  # type: ignore[misc]
        def message(self, message: str) -> None:
            log.append(message)

    trainer = Trainer(algorithm=args.algorithm, verbose=False)
    started = time.perf_counter()
    sequences = items = 0
    for xs, ys in read_crfsuite(Path(args.data)):
        trainer.append(xs, ys)
        sequences += 1
        items += len(xs)
    read_seconds = time.perf_counter() - started
    params: dict[str, object] = {}
    for setting in args.set:
        name, sep, value = setting.partition("=")
        if not sep:
            raise ValueError(f"--set {setting!r}: expected NAME=VALUE")
        params[name] = _value(value)
    trainer.set_params(params)
    started = time.perf_counter()
    trainer.train(args.model)
    train_wall = time.perf_counter() - started
    result = parse_log("".join(log), args.algorithm)
    result.update(
        tool="crfsuite",
        version=importlib.metadata.version("python-crfsuite"),
        algorithm=args.algorithm,
        params={k: str(v) for k, v in params.items()},
        sequences=sequences,
        items=items,
        read_seconds=read_seconds,
        train_wall_seconds=train_wall,
    )
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")


def cmd_tag(args: argparse.Namespace) -> None:
    import pycrfsuite

    tagger = pycrfsuite.Tagger()
    started = time.perf_counter()
    tagger.open(args.model)
    load = time.perf_counter() - started
    sequences = [xs for xs, _ in read_crfsuite(Path(args.data))]
    started = time.perf_counter()
    predicted = [tagger.tag(xs) for xs in sequences]
    seconds = time.perf_counter() - started
    with open(args.tags, "w", encoding="utf-8") as f:
        for labels in predicted:
            f.write("".join(label + "\n" for label in labels) + "\n")
    out = {"items": sum(map(len, sequences)), "tag_seconds": seconds, "load_seconds": load}
    Path(args.out).write_text(json.dumps(out), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crfsuite_peer")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("data")
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--algorithm", default="lbfgs")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.set_defaults(run=cmd_train)
    p = sub.add_parser("tag")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("tags")
    p.add_argument("out")
    p.set_defaults(run=cmd_tag)
    args = parser.parse_args(argv)
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
