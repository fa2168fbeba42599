"""POS-tagging benchmark: chaincrf.sklearn_crfsuite against sklearn-crfsuite.

The task of issue 15: ``199801.txt`` (PKU, People's Daily 1998-01), words to
their POS tags; the first 10,000 lines train, the next 1,000 test; feature
dicts in the sklearn-crfsuite tutorial's style (word, affixes, shape,
neighbours). Each fit runs in its own process (peak RSS is per process), and
the runs alternate between the packages.

    python bench/pos.py run --corpus 199801.txt --rounds 3 --out results.jsonl
    python bench/pos.py one --impl chaincrf --threads 2 --corpus 199801.txt   # one fit, JSON on stdout
    python bench/pos.py export --corpus 199801.txt pos.crfsuite   # the training part as CRFsuite data
    python bench/pos.py crfsuite pos.crfsuite --max-iterations 20  # python-crfsuite on that file, per-iteration log

The exported file is what `chaincrf train --format crfsuite` and python-crfsuite
both train on, so their objectives and seconds per iteration compare directly.

Both packages must be installed in the running interpreter.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def read_corpus(path: Path, start: int, count: int) -> list[list[tuple[str, str]]]:
    sentences = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n < start:
                continue
            if n >= start + count:
                break
            tokens = []
            for token in line.split():
                token = token.lstrip("[")
                if "]" in token:  # "电台/n]nt": the bracket closes a compound name
                    token = token[: token.rindex("]")]
                word, _, tag = token.rpartition("/")
                if word and tag:
                    tokens.append((word, tag))
            if tokens:
                sentences.append(tokens)
    return sentences


def shape(word: str) -> str:
    out = []
    for ch in word:
        s = "d" if ch.isdigit() else "a" if ch.isascii() and ch.isalpha() else "p" if not ch.isalnum() else "h"
        if not out or out[-1] != s:
            out.append(s)
    return "".join(out)


def word2features(sent: list[tuple[str, str]], i: int) -> dict[str, Any]:
    word = sent[i][0]
    features: dict[str, Any] = {
        "bias": 1.0,
        "word": word,
        "prefix1": word[:1],
        "prefix2": word[:2],
        "suffix1": word[-1:],
        "suffix2": word[-2:],
        "len": min(len(word), 5),
        "shape": shape(word),
        "isdigit": word.isdigit(),
    }
    if i > 0:
        prev = sent[i - 1][0]
        features.update({"-1:word": prev, "-1:suffix1": prev[-1:], "-1:shape": shape(prev)})
    else:
        features["BOS"] = True
    if i < len(sent) - 1:
        nxt = sent[i + 1][0]
        features.update({"+1:word": nxt, "+1:prefix1": nxt[:1], "+1:shape": shape(nxt)})
    else:
        features["EOS"] = True
    return features


def one(args: argparse.Namespace) -> None:
    corpus = Path(args.corpus)
    train = read_corpus(corpus, 0, args.train_lines)
    test = read_corpus(corpus, args.train_lines, args.test_lines)
    X = [[word2features(s, i) for i in range(len(s))] for s in train]
    y = [[t for _, t in s] for s in train]
    Xt = [[word2features(s, i) for i in range(len(s))] for s in test]
    yt = [[t for _, t in s] for s in test]
    params = {"algorithm": "lbfgs", "c1": args.c1, "c2": args.c2, "max_iterations": args.max_iterations}
    if args.impl == "chaincrf":
        from chaincrf import sklearn_crfsuite

        crf = sklearn_crfsuite.CRF(**params, n_jobs=args.threads)
    else:
        import sklearn_crfsuite  # type: ignore[import-not-found]

        crf = sklearn_crfsuite.CRF(**params)
    started, cpu = time.perf_counter(), time.process_time()
    crf.fit(X, y)
    fit, fit_cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    pred = crf.predict(Xt)
    predict = time.perf_counter() - started
    right = sum(a == b for p, g in zip(pred, yt) for a, b in zip(p, g))
    total = sum(len(g) for g in yt)
    print(
        json.dumps(
            {
                "impl": args.impl,
                "threads": args.threads if args.impl == "chaincrf" else 1,
                "fit_seconds": fit,
                "fit_cpu_seconds": fit_cpu,
                "predict_seconds": predict,
                "accuracy": right / total,
                "iterations": len(crf.training_log_.iterations),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "train_sentences": len(X),
                "test_tokens": total,
                "labels": len(crf.classes_),
            }
        )
    )


def escape(text: str) -> str:
    """An attribute name or value as CRFsuite data writes it (`\\` and `:` escaped)."""
    return text.replace("\\", "\\\\").replace(":", "\\:")


def item_attributes(features: dict[str, Any]) -> list[str]:
    """One item's attributes: `name=value` for strings, `name:weight` for numbers,
    `name` for True (False, weight 0, is left out)."""
    out = []
    for key, value in features.items():
        if isinstance(value, str):
            out.append(f"{escape(key)}={escape(value)}")
        elif isinstance(value, bool):
            if value:
                out.append(escape(key))
        else:
            out.append(f"{escape(key)}:{float(value)}")
    return out


def export(args: argparse.Namespace) -> None:
    train = read_corpus(Path(args.corpus), 0, args.train_lines)
    with open(args.output, "w", encoding="utf-8") as f:
        for s in train:
            for i, (_, tag) in enumerate(s):
                f.write("\t".join([tag, *item_attributes(word2features(s, i))]) + "\n")
            f.write("\n")


def parse_attribute(token: str) -> tuple[str, float]:
    """`name[:weight]` with `\\:` and `\\\\` escapes, as CRFsuite reads it."""
    name, weight, escaped = [], None, False
    for n, ch in enumerate(token):
        if escaped:
            name.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            weight = float(token[n + 1 :])
            break
        else:
            name.append(ch)
    return "".join(name), 1.0 if weight is None else weight


def crfsuite(args: argparse.Namespace) -> None:
    import pycrfsuite  # type: ignore[import-not-found]

    class Trainer(pycrfsuite.Trainer):  # type: ignore[misc]
        def on_iteration(self, log: str, info: dict[str, Any]) -> None:
            print(f"iter {info['num']:3d} loss {info['loss']:.6f} seconds {info['time']:.3f}", flush=True)

    # pycrfsuite reports iterations only with its own log on (printed too).
    trainer = Trainer(verbose=True)
    xs: list[dict[str, float]] = []
    ys: list[str] = []
    with open(args.data, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if xs:
                    trainer.append(pycrfsuite.ItemSequence(xs), ys)
                xs, ys = [], []
                continue
            label, *attributes = line.split("\t")
            ys.append(label)
            xs.append(dict(parse_attribute(a) for a in attributes))
    if xs:
        trainer.append(pycrfsuite.ItemSequence(xs), ys)
    trainer.set_params({"c1": args.c1, "c2": args.c2, "max_iterations": args.max_iterations})
    with tempfile.TemporaryDirectory() as folder:
        trainer.train(args.model or str(Path(folder) / "pos.crfsuite.model"))


def run(args: argparse.Namespace) -> None:
    configs = [("chaincrf", 1), ("sklearn-crfsuite", 1), ("chaincrf", 2)]
    results: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for impl, threads in configs:
            cmd = [sys.executable, __file__, "one", "--impl", impl, "--threads", str(threads)]
            cmd += ["--corpus", args.corpus, "--max-iterations", str(args.max_iterations)]
            cmd += ["--c1", str(args.c1), "--c2", str(args.c2)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            result["round"] = r
            results.append(result)
            print(json.dumps(result), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(result) + "\n")
    print(f"\nmachine: {platform.node()} {platform.machine()} {platform.python_version()}")
    print("| package | threads | fit s (median) | fit CPU s | predict s | peak RSS MiB | accuracy | iterations |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for impl, threads in configs:
        rows = [x for x in results if x["impl"] == impl and x["threads"] == threads]

        def med(key: str, rows: list[dict[str, Any]] = rows) -> float:
            return statistics.median(x[key] for x in rows)

        print(
            f"| {impl} | {threads} | {med('fit_seconds'):.2f} | {med('fit_cpu_seconds'):.2f} | "
            f"{med('predict_seconds'):.2f} | "
            f"{med('peak_rss_mib'):.0f} | {med('accuracy'):.4f} | {med('iterations'):.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("one", "run"):
        p = sub.add_parser(name)
        p.add_argument("--corpus", required=True)
        p.add_argument("--max-iterations", type=int, default=100)
        p.add_argument("--c1", type=float, default=0.1)
        p.add_argument("--c2", type=float, default=0.1)
        p.add_argument("--train-lines", type=int, default=10000)
        p.add_argument("--test-lines", type=int, default=1000)
    one_p = sub.choices["one"]
    one_p.add_argument("--impl", choices=["chaincrf", "sklearn-crfsuite"], required=True)
    one_p.add_argument("--threads", type=int, default=1)
    run_p = sub.choices["run"]
    run_p.add_argument("--rounds", type=int, default=3)
    run_p.add_argument("--out")
    export_p = sub.add_parser("export")
    export_p.add_argument("--corpus", required=True)
    export_p.add_argument("--train-lines", type=int, default=10000)
    export_p.add_argument("output")
    crfsuite_p = sub.add_parser("crfsuite")
    crfsuite_p.add_argument("data")
    crfsuite_p.add_argument("--max-iterations", type=int, default=20)
    crfsuite_p.add_argument("--c1", type=float, default=0.1)
    crfsuite_p.add_argument("--c2", type=float, default=0.1)
    crfsuite_p.add_argument("--model", help="where to keep the model (default: discarded)")
    args = parser.parse_args()
    {"one": one, "run": run, "export": export, "crfsuite": crfsuite}[args.command](args)


if __name__ == "__main__":
    main()
