"""The measured tools: how each one trains and tags, as child processes.

Every function here runs one tool once and returns a run record (a plain
dict, written as JSON by :func:`save`). A tool that cannot run a request
(an algorithm not in this chaincrf build, a peer that did not build) gives a
record with ``status`` ``"unavailable"`` and the reason, never a number.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from bench import measure
from bench.scoring import read_tags, tag_word_scores, token_accuracy

ALGORITHMS = ("lbfgs", "l2sgd", "ap", "pa", "arow")
ONLINE = ("l2sgd", "ap", "pa", "arow")


@dataclass
class Env:
    """Where things are: the repository, scratch space, results and the tools."""

    root: Path
    work: Path
    runs: Path
    chaincrf: Path
    python: Path
    crfs: Path | None
    jieba: Path | None = None

    def scratch(self, *parts: str) -> Path:
        path = self.work.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def save(env: Env, record: dict[str, object]) -> Path:
    """Writes one run's record to ``runs/<suite>/<name>.json`` (atomically)."""
    path = env.runs / str(record["suite"]) / f"{record['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_jsonl(path: Path) -> list[dict[str, object]]:
    """The rows of a JSON-lines file (``chaincrf train --progress-jsonl``)."""
    rows = []
    if not path.exists():
        return rows
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{number}: not JSON: {e}") from None
    return rows


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _unavailable(record: dict[str, object], message: str) -> dict[str, object]:
    record.update(status="unavailable", message=message)
    return record


def _failed(record: dict[str, object], what: str, stderr: Path) -> dict[str, object]:
    record.update(status="failed", message=f"{what} failed: {_tail(stderr)}")
    return record


@dataclass
class Job:
    """One training request: the data, the algorithm and its cap, what to score."""

    train: Path
    test: Path | None
    gold: list[list[str]] | None
    algorithm: str
    cap: int | None
    words: bool = False


def _score(record: dict[str, object], job: Job, tags: Path) -> None:
    if job.gold is None:
        return
    predicted = read_tags(tags)
    record["accuracy"] = token_accuracy(job.gold, predicted)
    record["test_items"] = sum(map(len, job.gold))
    if job.words:
        record["words"] = tag_word_scores(job.gold, predicted)


def _peer_tag(
    record: dict[str, object],
    job: Job,
    command: list[str],
    tags: Path,
    inside: Path | None,
    stderr: Path,
    what: str,
    child_env: dict[str, str] | None = None,
) -> dict[str, object]:
    """Runs a peer's tagging command (which writes ``tags``, and its own timing as
    JSON into ``inside``, or on stdout when ``inside`` is None), then scores it."""
    stdout = None
    if inside is None:
        inside = tags.with_suffix(".json")
        stdout = inside
    t = measure.run(command, stdout=stdout, stderr=stderr, env=child_env)
    record["tag"] = t.as_dict()
    if t.returncode != 0:
        return _failed(record, what, stderr)
    record["tag"]["inside"] = json.loads(inside.read_text(encoding="utf-8"))  # type: ignore[index]
    _score(record, job, tags)
    record["status"] = "ok"
    return record


def chaincrf_available(env: Env, algorithm: str) -> str | None:
    """None when this chaincrf build trains ``algorithm``, else the reason it does not."""
    if not env.chaincrf.exists():
        return f"no chaincrf binary at {env.chaincrf} (run `python3 -m bench prepare`)"
    err = env.scratch("logs", f"help-params-{algorithm}.txt")
    m = measure.run([str(env.chaincrf), "train", "--algorithm", algorithm, "--help-params"], stderr=err)
    if m.returncode != 0:
        return f"`chaincrf train --algorithm {algorithm} --help-params` failed: {_tail(err, 2)}"
    return None


def run_chaincrf(
    env: Env, record: dict[str, object], job: Job, *, threads: int, extra: list[str] | None = None
) -> dict[str, object]:
    """``chaincrf train --format crfsuite`` then ``chaincrf tag``; progress and
    summary come from ``--progress-jsonl`` and ``--summary-json``, each progress
    row also gets ``cpu_seconds``, sampled by the harness as the row appears."""
    name = str(record["name"])
    model = env.scratch("models", f"{name}.model")
    progress = env.scratch("progress", f"{name}.jsonl")
    summary = env.scratch("progress", f"{name}.summary.json")
    stderr = env.scratch("logs", f"{name}.log")
    for stale in (progress, summary):
        stale.unlink(missing_ok=True)
    command = [str(env.chaincrf), "train", "--format", "crfsuite", "--algorithm", job.algorithm]
    command += ["--threads", str(threads), "--progress-jsonl", str(progress), "--summary-json", str(summary)]
    if job.cap is not None:
        command += ["--max-iterations", str(job.cap)]
    command += [*(extra or []), "--model", str(model), str(job.train)]
    m = measure.run(command, stderr=stderr, watch=progress)
    record["train"] = m.as_dict()
    if m.returncode != 0:
        reason = _tail(stderr, 3)
        if "not available in this build" in reason:
            return _unavailable(record, reason.splitlines()[-1].removeprefix("chaincrf: error: "))
        return _failed(record, "chaincrf train", stderr)
    record["progress"] = rows = read_jsonl(progress)
    # The process's CPU seconds when each row appeared (the rows' own `seconds`
    # are wall-clock); a row written just before the process ended may have none.
    for row, cpu in zip(rows, m.cpu_marks or [], strict=False):
        row["cpu_seconds"] = cpu
    record["summary"] = json.loads(summary.read_text(encoding="utf-8"))
    if job.test is not None:
        tags = env.scratch("tags", f"{name}.txt")
        tag_err = env.scratch("logs", f"{name}.tag.log")
        t = measure.run([str(env.chaincrf), "tag", "--model", str(model), str(job.test)], stdout=tags, stderr=tag_err)
        record["tag"] = t.as_dict()
        if t.returncode != 0:
            return _failed(record, "chaincrf tag", tag_err)
        _score(record, job, tags)
    record["status"] = "ok"
    return record


def _python_env(env: Env) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(env.root) + os.pathsep + out.get("PYTHONPATH", "")
    return out


def run_crfsuite(env: Env, record: dict[str, object], job: Job) -> dict[str, object]:
    """python-crfsuite in a child process (:mod:`bench.crfsuite_peer`), CRFsuite's defaults."""
    name = str(record["name"])
    if not env.python.exists():
        return _unavailable(record, f"no Python with python-crfsuite at {env.python} (run prepare)")
    model = env.scratch("models", f"{name}.crfsuite")
    out = env.scratch("progress", f"{name}.crfsuite.json")
    stderr = env.scratch("logs", f"{name}.log")
    peer = [str(env.python), "-m", "bench.crfsuite_peer"]
    command = [*peer, "train", str(job.train), str(model), str(out), "--algorithm", job.algorithm]
    if job.cap is not None:
        command += ["--set", f"max_iterations={job.cap}"]
    m = measure.run(command, stderr=stderr, env=_python_env(env))
    record["train"] = m.as_dict()
    if m.returncode != 0:
        return _failed(record, "python-crfsuite training", stderr)
    result = json.loads(out.read_text(encoding="utf-8"))
    record["progress"] = result.pop("progress")
    record["summary"] = result
    if job.test is None:
        record["status"] = "ok"
        return record
    tags, inside = env.scratch("tags", f"{name}.txt"), env.scratch("progress", f"{name}.tag.json")
    command = [*peer, "tag", str(model), str(job.test), str(tags), str(inside)]
    return _peer_tag(record, job, command, tags, inside, stderr, "python-crfsuite tagging", _python_env(env))


def run_crfs(env: Env, record: dict[str, object], job: Job) -> dict[str, object]:
    """crfs 0.4 through ``bench/crfs-peer`` (CRFsuite's defaults, a fixed shuffle seed)."""
    name = str(record["name"])
    if env.crfs is None or not env.crfs.exists():
        reason = "the crfs peer is not built"
        status = env.work / "crfs-build.json"
        if status.exists():
            reason += ": " + json.loads(status.read_text(encoding="utf-8")).get("message", "")
        return _unavailable(record, reason)
    model = env.scratch("models", f"{name}.crfs")
    out = env.scratch("progress", f"{name}.crfs.json")
    stderr = env.scratch("logs", f"{name}.log")
    command = [str(env.crfs), "train", job.algorithm, str(job.train), str(model), str(job.cap or 0)]
    m = measure.run(command, stdout=out, stderr=stderr)
    record["train"] = m.as_dict()
    if m.returncode != 0:
        return _failed(record, "crfs training", stderr)
    record["progress"] = []
    record["summary"] = json.loads(out.read_text(encoding="utf-8"))
    if job.test is None:
        record["status"] = "ok"
        return record
    tags = env.scratch("tags", f"{name}.txt")
    command = [str(env.crfs), "tag", str(model), str(job.test), str(tags)]
    return _peer_tag(record, job, command, tags, None, stderr, "crfs tagging")
