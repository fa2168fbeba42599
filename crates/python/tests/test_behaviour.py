"""What a Python user expects around the calls: the GIL is released while
training, the package works after fork, Ctrl-C interrupts training promptly
without leaving a file behind."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from chaincrf import sklearn_crfsuite

from conftest import make_corpus


def test_training_releases_the_gil() -> None:
    X, y = make_corpus(3000, seed=3)
    crf = sklearn_crfsuite.CRF(c2=0.01, max_iterations=40, epsilon=0.0, delta=0.0)
    worker = threading.Thread(target=crf.fit, args=(X, y))
    ticks = 0
    worker.start()
    # The worker spends the first moments in Python-level feature reading;
    # what follows is native training, during which this loop must keep running.
    while worker.is_alive():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    assert crf.classes_ is not None
    assert ticks > 50, f"the main thread ran only {ticks} times during training"


def _child(queue: Any, X: Any, y: Any, expected: Any) -> None:
    crf = sklearn_crfsuite.CRF(c2=0.1, max_iterations=15, n_jobs=2).fit(X, y)
    queue.put(list(crf.predict(X[:20])) == expected)


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX")
def test_train_and_tag_after_fork() -> None:
    X, y = make_corpus(200, seed=4)
    # Train with threads in the parent first, so that any thread pool exists before the fork.
    parent = sklearn_crfsuite.CRF(c2=0.1, max_iterations=15, n_jobs=2).fit(X, y)
    expected = list(parent.predict(X[:20]))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    children = [ctx.Process(target=_child, args=(queue, X, y, expected)) for _ in range(2)]
    for c in children:
        c.start()
    for c in children:
        c.join(timeout=120)
        assert not c.is_alive(), "a forked child hung"
        assert c.exitcode == 0
    assert [queue.get(timeout=5) for _ in children] == [True, True]


INTERRUPTED = textwrap.dedent(
    """
    import signal
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import make_corpus
    from chaincrf import pycrfsuite

    # A process started from a background job of a non-interactive shell
    # inherits SIGINT ignored, and Python then installs no handler for it:
    # Ctrl-C is what this test is about, so it gets Python's default handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    class Announce(pycrfsuite.BaseTrainer):
        def message(self, line):
            if line.startswith("***** Iteration #1 "):
                print("training", flush=True)

    # Long enough (several seconds) that the signal lands mid-training even
    # when the test process is slow to send it.
    X, y = make_corpus(60000, seed=5)
    trainer = Announce(params={{"c2": 1e-4, "epsilon": 0.0, "delta": 0.0, "period": 1000}}, n_jobs=1)
    for xseq, yseq in zip(X, y):
        trainer.append(xseq, yseq)
    try:
        trainer.train({model!r})
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    print("finished", flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery is POSIX")
def test_ctrl_c_interrupts_training_without_a_file(tmp_path: Path) -> None:
    model = tmp_path / "model.crfsuite"
    script = INTERRUPTED.format(tests=str(Path(__file__).parent), model=str(model))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "training", line
    time.sleep(0.2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    elapsed = time.monotonic() - sent
    assert proc.returncode == 3, out
    assert "interrupted" in out
    assert elapsed < 5, f"training took {elapsed:.1f} s to stop"
    assert os.listdir(tmp_path) == []
