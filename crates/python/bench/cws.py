"""Benchmarks of chaincrf.cws against the command line and jieba (docs/benchmarks.md).

    python crates/python/bench/cws.py --model pku.model --cli target/release/chaincrf \\
        --data $CHAINCRF_DATA [--reps 3] [--threads 2]

Rows, each a median of --reps runs alternated with its reference in one process
run (the machine may be shared: compare ratios, not absolute numbers):

* ``cut_many`` over the PKU test text repeated to 3M+ characters against
  ``chaincrf cws segment --threads N`` on the same file (its own reported
  segmenting time, model loading excluded; output checked equal), per round
  and as medians, and both in CPU seconds (``cut_many``: the process's CPU
  during the call; the CLI: its whole CPU minus that of the same command on an
  empty input);
* ``cut`` (and ``tokenize``) one PKU test line at a time in a Python loop, against jieba's
  ``lcut`` (default dictionary, HMM on) when jieba is installed and spacy-pkuseg's
  ``cut`` with the model folder given by ``--pkuseg-model``, with each one's
  word F1 on the Bakeoff gold;
* RSS of a fresh Python process after importing chaincrf and loading the model.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from chaincrf.cws import Segmenter


def f1(gold: list[list[str]], pred: list[list[str]]) -> float:
    def spans(words: list[str]) -> set[tuple[int, int]]:
        out, pos = set(), 0
        for w in words:
            out.add((pos, pos + len(w)))
            pos += len(w)
        return out

    correct = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        gs, ps = spans(g), spans(p)
        correct += len(gs & ps)
        n_gold += len(gs)
        n_pred += len(ps)
    precision, recall = correct / n_pred, correct / n_gold
    return 2 * precision * recall / (precision + recall)


def timed(fn: Callable[[], object]) -> float:
    """Seconds of one call; the result is freed after the clock stops (the
    CLI's reported time does not include freeing its output either)."""
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    del result
    return seconds


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli_run(args: argparse.Namespace, src: Path, out: Path) -> tuple[float, float]:
    """The CLI's own segmenting seconds and its whole CPU seconds."""
    cpu = children_cpu()
    done = subprocess.run(
        [args.cli, "cws", "segment", "--model", args.model, "--threads", str(args.threads), str(src)]
        + ["-o", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    cpu = children_cpu() - cpu
    m = re.search(r"in ([0-9.]+)s \(", done.stderr)
    assert m, done.stderr
    return float(m.group(1)), cpu


def rss_of_loaded_model(model: str) -> tuple[float, float]:
    code = (
        "import sys; from chaincrf.cws import Segmenter; s = Segmenter(sys.argv[1]); s.cut('共同创造美好的新世纪');"
        "f = dict(l.split(':', 1) for l in open('/proc/self/status'));"
        "print(int(f['VmRSS'].split()[0]), int(f['VmHWM'].split()[0]))"
    )
    out = subprocess.run([sys.executable, "-c", code, model], capture_output=True, text=True, check=True).stdout
    rss, hwm = (int(x) / 1024 for x in out.split())
    return rss, hwm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--cli", required=True, help="the chaincrf binary")
    ap.add_argument("--data", required=True, help="the shared data folder ($CHAINCRF_DATA)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--pkuseg-model",
        help="a spacy-pkuseg model folder (its pretrained ones download from GitHub; "
        "train one on the same corpus with spacy_pkuseg.train): adds its row",
    )
    args = ap.parse_args()

    test = Path(args.data, "icwb2", "pku_test.utf8").read_text(encoding="utf-8").splitlines()
    gold = [g.split() for g in Path(args.data, "icwb2", "pku_test_gold.utf8").read_text(encoding="utf-8").splitlines()]
    test_chars = sum(len(t) for t in test)
    seg = Segmenter(args.model)

    # 1. cut_many vs the CLI on 3M+ characters.
    repeat = -(-3_000_000 // test_chars)
    big = test * repeat
    big_chars = test_chars * repeat
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "big.txt")
        src.write_text("\n".join(big) + "\n", encoding="utf-8")
        out = Path(tmp, "out.txt")
        empty = Path(tmp, "empty.txt")
        empty.write_text("", encoding="utf-8")
        py_times, cli_times, py_cpu, cli_cpu, startup_cpu = [], [], [], [], []
        loads = [os.getloadavg()]
        for _ in range(args.reps):
            cpu = time.process_time()
            py_times.append(timed(lambda: seg.cut_many(big, threads=args.threads)))
            py_cpu.append(time.process_time() - cpu)
            seconds, cpu = cli_run(args, src, out)
            cli_times.append(seconds)
            cli_cpu.append(cpu)
            startup_cpu.append(cli_run(args, empty, Path(tmp, "empty.out"))[1])
        loads.append(os.getloadavg())
        assert out.read_text(encoding="utf-8") == seg.segment_lines(big), "CLI and Python outputs differ"
        assert seg.cut_many(big, threads=args.threads) == [line.split() for line in seg.segment_lines(big).splitlines()]
    py_t, cli_t = statistics.median(py_times), statistics.median(cli_times)
    print(f"input: PKU test x{repeat} = {len(big)} lines, {big_chars} characters; {args.threads} threads")
    print("load average before / after: " + " / ".join(", ".join(f"{x:.2f}" for x in la) for la in loads))
    print(f"cut_many          {big_chars / py_t / 1e6:6.2f} M chars/s  (median {py_t:.3f} s of {args.reps})")
    print(f"cws segment (CLI) {big_chars / cli_t / 1e6:6.2f} M chars/s  (median {cli_t:.3f} s)")
    print(f"ratio cut_many / CLI: {cli_t / py_t:.2f}")
    rounds = ", ".join(f"{p:.3f}/{c:.3f}={c / p:.2f}" for p, c in zip(py_times, cli_times))
    print(f"rounds (cut_many s / CLI s = ratio): {rounds}")
    # CPU seconds, which a loaded host moves less than wall time: the CLI's
    # whole process minus the same command on an empty input (start-up and
    # model load), cut_many's process CPU during the call (every thread).
    cli_seg_cpu = statistics.median(cli_cpu) - statistics.median(startup_cpu)
    print(
        f"CPU seconds: cut_many median {statistics.median(py_cpu):.3f}, CLI segmenting {cli_seg_cpu:.3f} "
        f"(whole {statistics.median(cli_cpu):.3f} - empty input {statistics.median(startup_cpu):.3f}); "
        f"CPU ratio CLI / cut_many {cli_seg_cpu / statistics.median(py_cpu):.2f}"
    )

    # 2. cut in a Python loop, one line at a time, against jieba.
    def loop_ours() -> None:
        cut = seg.cut
        for t in test:
            cut(t)

    def loop_tokenize() -> None:
        tokenize = seg.tokenize
        for t in test:
            tokenize(t)

    def tokenize_words(t: str) -> list[str]:
        return [w for w, _, _ in seg.tokenize(t)]

    contenders: list[tuple[str, Callable[[], None], Callable[[str], list[str]]]] = [
        ("chaincrf cut", loop_ours, seg.cut),
        ("chaincrf tokenize", loop_tokenize, tokenize_words),
    ]
    try:
        import jieba

        jieba.setLogLevel(60)
        jieba.initialize()

        def loop_jieba() -> None:
            for t in test:
                jieba.lcut(t)

        def jieba_words(t: str) -> list[str]:
            return [w for w in jieba.lcut(t) if w.strip()]

        contenders.append((f"jieba {jieba.__version__} lcut", loop_jieba, jieba_words))
    except ImportError:
        print("jieba is not installed: its row is left out")
    if args.pkuseg_model:
        import spacy_pkuseg

        pku = spacy_pkuseg.pkuseg(model_name=args.pkuseg_model)

        def loop_pkuseg() -> None:
            for t in test:
                pku.cut(t)

        def pkuseg_words(t: str) -> list[str]:
            return [w for w in pku.cut(t) if w.strip()]

        version = importlib.metadata.version("spacy-pkuseg")
        contenders.append((f"spacy-pkuseg {version} cut", loop_pkuseg, pkuseg_words))
    times: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    for _ in range(args.reps):
        for name, fn, _ in contenders:
            times[name].append(timed(fn))
    print(f"one line at a time: PKU test, {len(test)} lines, {test_chars} characters, 1 thread")
    for name, _, words in contenders:
        t = statistics.median(times[name])
        score = f1(gold, [words(line) for line in test])
        print(f"{name:<20} {test_chars / t / 1e6:6.3f} M chars/s  (median {t:.3f} s)  F1 {score:.4f}")

    # 3. Memory.
    rss, hwm = rss_of_loaded_model(args.model)
    print(f"python process with the model loaded: RSS {rss:.0f} MiB (peak {hwm:.0f} MiB)")


if __name__ == "__main__":
    main()
