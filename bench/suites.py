"""The benchmark suites: which runs, in which order, on which data.

Runs of different tools alternate (tool A, B, C, then A, B, C again), so that
a drift of the shared machine's speed hits every tool alike; the report takes
medians over the repetitions. The online algorithms, whose result depends on
the order of the training sequences, run on several shuffled copies of the
training file (the same copies for every tool).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import data as crfdata
from bench import measure
from bench.scoring import segmentation_scores
from bench.tools import Env, Job, chaincrf_available, read_jsonl, run_chaincrf, run_crfs, run_crfsuite, save

Log = Callable[[str], None]


@dataclass
class Caps:
    """How long each run is."""

    lbfgs_iterations: int | None
    epochs: int
    orders: int
    repetitions: int
    short_iterations: int
    curve_caps: list[int]
    curve_sgd_epochs: int
    curve_sgd_caps: list[int]
    segment_repeat: int
    test_sequences: int | None = None


QUICK = Caps(3, 2, 2, 2, 2, [1, 2], 1, [1, 2], 1, test_sequences=300)
FULL = Caps(50, 10, 3, 3, 20, [5, 10, 20, 40, 80], 10, [1, 10, 20, 40], 20)

TOOLS = ("crfsuite", "chaincrf-t1", "chaincrf-t2", "crfs")


def _record(suite: str, name: str, tool: str, algorithm: str, **extra: object) -> dict[str, object]:
    return {"suite": suite, "name": name, "tool": tool, "algorithm": algorithm, **extra}


def _one(
    env: Env, tool: str, record: dict[str, object], job: Job, unavailable: dict[str, str | None]
) -> dict[str, object]:
    """Runs one tool (``crfsuite``, ``crfs`` or ``chaincrf-tN``) on the job."""
    if tool == "crfsuite":
        return run_crfsuite(env, record, job)
    if tool == "crfs":
        return run_crfs(env, record, job)
    threads = int(tool.removeprefix("chaincrf-t"))
    record["threads"] = threads
    if job.algorithm not in unavailable:
        unavailable[job.algorithm] = chaincrf_available(env, job.algorithm)
    reason = unavailable[job.algorithm]
    if reason is None:
        return run_chaincrf(env, record, job, threads=threads)
    record.update(status="unavailable", message=reason)
    return record


def compare(
    env: Env,
    suite: str,
    train: Path,
    test: Path | None,
    caps: Caps,
    algorithms: list[str],
    tools: list[str],
    log: Log,
    *,
    words: bool = False,
) -> None:
    """Each algorithm against python-crfsuite's (and crfs's) same algorithm.

    L-BFGS: ``repetitions`` alternating runs of every tool (chaincrf on 1 and
    2 threads) on the file's order, capped at ``lbfgs_iterations``. Online
    algorithms: one run per tool on each of ``orders`` shuffled copies,
    ``epochs`` epochs each, chaincrf on one thread (they are sequential).
    """
    if test is not None and caps.test_sequences:
        head = list(crfdata.read_crfsuite(test))[: caps.test_sequences]
        test = env.scratch("data", f"{suite}-test-first{caps.test_sequences}.crfsuite")
        crfdata.write_crfsuite(test, head)
    gold = [ys for _, ys in crfdata.read_crfsuite(test)] if test is not None else None
    sequences: list[crfdata.Sequence] | None = None  # read only when a shuffled copy must be written
    unavailable: dict[str, str | None] = {}
    for algorithm in algorithms:
        if algorithm == "lbfgs":
            plan = [(rep, None, train) for rep in range(1, caps.repetitions + 1)]
            cap = caps.lbfgs_iterations
            run_tools = tools
        else:
            plan = []
            for order in range(1, caps.orders + 1):
                path = env.scratch("data", f"{suite}-train-order{order}.crfsuite")
                if not path.exists() or path.stat().st_mtime < train.stat().st_mtime:
                    if sequences is None:
                        sequences = list(crfdata.read_crfsuite(train))
                    crfdata.write_crfsuite(path, crfdata.shuffled(sequences, seed=order))
                plan.append((1, order, path))
            cap = caps.epochs
            run_tools = [t for t in tools if t != "chaincrf-t2"]
        for rep, order, path in plan:
            for tool in run_tools:
                name = f"{algorithm}-{tool}" + (f"-order{order}" if order else f"-rep{rep}")
                record = _record(suite, name, tool, algorithm, repetition=rep, order=order, cap=cap)
                record["test_sequences"] = len(gold) if gold is not None else None
                log(f"{suite}: {name}")
                job = Job(path, test, gold, algorithm, cap, words)
                record = _one(env, tool, record, job, unavailable)
                if record.get("status") != "ok":
                    log(f"  {record['status']}: {record.get('message')}")
                save(env, record)


def chunking(env: Env, caps: Caps, algorithms: list[str], tools: list[str], log: Log) -> None:
    """CRF++'s chunking sample (77 training sentences), converted by ``prepare``."""
    train = env.work / "data" / "chunking-train.crfsuite"
    test = env.work / "data" / "chunking-test.crfsuite"
    if not train.exists():
        raise SystemExit(f"{train} is missing: run `python3 -m bench prepare` first")
    compare(env, "chunking", train, test, caps, algorithms, tools, log)


def _pku(env: Env) -> tuple[Path, Path]:
    train = env.work / "data" / "pku-train.crfsuite"
    test = env.work / "data" / "pku-test.crfsuite"
    if not train.exists():
        raise SystemExit(f"{train} is missing: run `python3 -m bench prepare --pku` first")
    return train, test


def pku_capped(env: Env, caps: Caps, algorithms: list[str], tools: list[str], log: Log) -> None:
    """PKU character tagging (``cws export --no-lexicon``), every algorithm capped."""
    train, test = _pku(env)
    compare(env, "pku-capped", train, test, caps, algorithms, tools, log, words=True)


def pku_short(env: Env, caps: Caps, tools: list[str], log: Log) -> None:
    """Short L-BFGS runs on PKU: seconds per evaluation and peak RSS, no tagging."""
    train, _ = _pku(env)
    short = Caps(**{**caps.__dict__, "lbfgs_iterations": caps.short_iterations})
    compare(env, "pku-short", train, None, short, ["lbfgs"], tools, log)


def cws(env: Env, data: Path, caps: Caps, log: Log) -> None:
    """``chaincrf cws train`` with its defaults, then ``cws segment``: F1 on the PKU
    test set and characters per second on it repeated, 1 and 2 threads."""
    corpus = data / "pku-199801" / "199801.txt"
    test_raw, test_gold = (data / "icwb2" / "pku_test.utf8", data / "icwb2" / "pku_test_gold.utf8")
    words = data / "icwb2" / "pku_training_words.utf8"
    model = env.scratch("models", "cws.model")
    progress, summary = (env.scratch("progress", "cws-train.jsonl"), env.scratch("progress", "cws-train.summary.json"))
    log("cws: train")
    command = [str(env.chaincrf), "cws", "train", "--corpus", str(corpus), "--model", str(model)]
    command += ["--progress-jsonl", str(progress), "--summary-json", str(summary)]
    m = measure.run(command, stderr=env.scratch("logs", "cws-train.log"))
    record = _record("cws", "train", "chaincrf", "cws-default", train=m.as_dict())
    if m.returncode != 0:
        record.update(status="failed", message=(env.work / "logs" / "cws-train.log").read_text()[-500:])
        save(env, record)
        return
    record.update(status="ok", progress=read_jsonl(progress), summary=json.loads(summary.read_text()))
    record["model_bytes"] = model.stat().st_size
    save(env, record)
    segmenters = {
        "chaincrf-t1": [str(env.chaincrf), "cws", "segment", "--model", str(model), "--threads", "1"],
        "chaincrf-t2": [str(env.chaincrf), "cws", "segment", "--model", str(model), "--threads", "2"],
    }
    if env.jieba is not None and env.jieba.exists():
        segmenters["jieba"] = [str(env.jieba)]
    else:
        log("cws: no jieba-rs peer built (prepare --peers jieba); its rows are left out")

    def segment(tool: str, source: Path, out: Path, log_name: str) -> tuple[measure.Measured, Path]:
        # chaincrf takes `INPUT -o OUTPUT`, the jieba peer `INPUT OUTPUT` (its timing JSON on stdout).
        inside = env.scratch("seg", f"{log_name}.json")
        if tool == "jieba":
            m = measure.run([*segmenters[tool], str(source), str(out)], stdout=inside)
        else:
            m = measure.run([*segmenters[tool], str(source), "-o", str(out)], stderr=env.scratch("logs", log_name))
        return m, inside

    for tool in segmenters:
        out = env.scratch("seg", f"test-{tool}.txt")
        m, _ = segment(tool, test_raw, out, f"cws-test-{tool}")
        record = _record("cws", f"score-{tool}", tool, "score", segment=m.as_dict())
        record.update(status="failed" if m.returncode else "ok")
        if m.returncode == 0:
            record["scores"] = segmentation_scores(test_gold, out, words)
        save(env, record)
    repeated = env.scratch("seg", "test-repeat.txt")
    text = test_raw.read_text(encoding="utf-8")
    repeated.write_text(text * caps.segment_repeat, encoding="utf-8")
    chars = sum(len(line.rstrip("\r\n")) for line in text.splitlines()) * caps.segment_repeat
    outputs = {}
    for rep in range(1, caps.repetitions + 1):
        for tool in segmenters:
            name = f"segment-{tool}-rep{rep}"
            log(f"cws: {name}")
            out = env.scratch("seg", f"repeat-{tool}.txt")
            m, inside = segment(tool, repeated, out, f"cws-{name}")
            outputs[tool] = out
            record = _record("cws", name, tool, "segment", repetition=rep, chars=chars, segment=m.as_dict())
            record["status"] = "ok" if m.returncode == 0 else "failed"
            if tool == "jieba" and m.returncode == 0:
                record["inside"] = json.loads(inside.read_text(encoding="utf-8"))
            save(env, record)
    if outputs["chaincrf-t1"].read_bytes() != outputs["chaincrf-t2"].read_bytes():
        raise SystemExit("cws segment: 1 and 2 threads disagree")


def curve(env: Env, data: Path, caps: Caps, tools: list[str], log: Log) -> None:
    """Dev F1 against training time: train on 199801 without every 20th sentence,
    capped at each of ``curve_caps`` L-BFGS iterations, 1 thread; score the held-out
    sentences. A third series is chaincrf with its SGD warm start."""
    train, dev = (env.work / "data" / "pku-curve-train.crfsuite", env.work / "data" / "pku-curve-dev.crfsuite")
    if not train.exists():
        raise SystemExit(f"{train} is missing: run `python3 -m bench prepare --pku` first")
    gold = [ys for _, ys in crfdata.read_crfsuite(dev)]
    unavailable: dict[str, str | None] = {}
    for cap in caps.curve_caps:
        for tool in [t for t in tools if t in ("crfsuite", "chaincrf-t1", "crfs")]:
            name = f"{tool}-cap{cap}"
            log(f"curve: {name}")
            record = _record("curve", name, tool, "lbfgs", cap=cap, series=tool)
            save(env, _one(env, tool, record, Job(train, dev, gold, "lbfgs", cap, True), unavailable))
    for cap in caps.curve_sgd_caps:
        name = f"chaincrf-sgd-cap{cap}"
        log(f"curve: {name}")
        record = _record("curve", name, "chaincrf-t1", "lbfgs", cap=cap, series="chaincrf-sgd", threads=1)
        record["sgd_epochs"] = caps.curve_sgd_epochs
        extra = ["--sgd-epochs", str(caps.curve_sgd_epochs)]
        job = Job(train, dev, gold, "lbfgs", cap, True)
        save(env, run_chaincrf(env, record, job, threads=1, extra=extra))


def prepare_chunking(env: Env, data: Path) -> None:
    """CRF++'s chunking sample under its own template, written as CRFsuite attributes."""
    folder = data / "crfpp-examples" / "chunking"
    templates = crfdata.read_template(folder / "template")
    for part in ("train", "test"):
        sequences = crfdata.columns_to_sequences(crfdata.read_columns(folder / f"{part}.data"), templates)
        crfdata.write_crfsuite(env.scratch("data", f"chunking-{part}.crfsuite"), sequences)


def prepare_pku(env: Env, data: Path, log: Log) -> None:
    """The PKU attributes of chaincrf's CWS extractor (``cws export --no-lexicon``):
    training corpus, test gold, and the dev-curve split (every 20th sentence held out)."""
    corpus = data / "pku-199801" / "199801.txt"
    # The export reads the gold file as a segmented corpus, named as one.
    gold = env.scratch("data", "pku_test_gold.txt")
    gold.write_bytes((data / "icwb2" / "pku_test_gold.utf8").read_bytes())
    jobs = [
        ("pku-train", corpus, []),
        ("pku-test", gold, []),
        ("pku-curve-train", corpus, ["--skip-every", "20"]),
        ("pku-curve-dev", corpus, ["--only-every", "20"]),
    ]
    for name, source, extra in jobs:
        out = env.scratch("data", f"{name}.crfsuite")
        log(f"prepare: cws export {name}")
        m = measure.run(
            [str(env.chaincrf), "cws", "export", "--corpus", str(source), "--no-lexicon", *extra, "-o", str(out)],
            stderr=env.scratch("logs", f"export-{name}.log"),
        )
        if m.returncode != 0:
            raise SystemExit(f"cws export {name} failed; see {env.work / 'logs' / f'export-{name}.log'}")


def tiny_pku(env: Env, data: Path, sentences: int = 300, test_lines: int = 100) -> Path:
    """A small copy of the PKU files (the first sentences of each) for ``--quick``:
    the PKU suites then run end to end in seconds. Returns its data folder."""
    tiny = env.work / "tiny-data"
    parts = [
        ("pku-199801/199801.txt", sentences),
        ("icwb2/pku_test.utf8", test_lines),
        ("icwb2/pku_test_gold.utf8", test_lines),
        ("icwb2/pku_training_words.utf8", None),
    ]
    for name, lines in parts:
        source, target = data / name, tiny / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as f:
            kept = f.readlines()[:lines] if lines else f.readlines()
        target.write_bytes(b"".join(kept))
    return tiny
