"""Running one measured child process: wall time, CPU time and peak RSS.

CPU time comes from ``os.wait4`` on the child. Peak RSS does not: Linux
carries a process's high-water mark across ``execve``, so a child forked from
this (large) Python process would report at least the harness's own size.
The command therefore runs under GNU ``/usr/bin/time -f %M`` where it exists
(a small parent, as the old bash benchmark did); elsewhere ``ru_maxrss`` is
used and the record says so (``rss_source``).

With ``watch`` (a progress log the child appends one line to per iteration),
the child's CPU seconds are also sampled each time a line appears
(``cpu_marks``): chaincrf's progress rows carry wall-clock seconds, CRFsuite's
carry ``clock()`` (process CPU) seconds, and on a shared, loaded machine only
CPU time compares the two fairly.
"""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measured:
    """What the operating system says about one finished child process."""

    command: list[str]
    returncode: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    load_before: float
    rss_source: str
    cpu_marks: list[float] | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "command": shlex.join(self.command),
            "returncode": self.returncode,
            "wall_seconds": self.wall_seconds,
            "cpu_seconds": self.cpu_seconds,
            "peak_rss_mib": self.peak_rss_mib,
            "load_before": self.load_before,
            "rss_source": self.rss_source,
        }


def load_average() -> float:
    """The one-minute load average (0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


TIME = "/usr/bin/time"
nan = float("nan")


def _gnu_time() -> bool:
    return shutil.which(TIME) is not None


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
WATCH_INTERVAL = 0.02


def tree_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (all its threads) and of its running
    descendants, from ``/proc`` (Linux; None elsewhere or once it is gone)."""
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            if p == pid:
                return None
            continue
        # Fields after the parenthesized command name: utime and stime are the 12th and 13th.
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / _TICKS
        stack += [int(c) for c in children]
    return total


def _complete_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _wait_watching(pid: int, watch: Path, marks: list[float]) -> tuple[int, resource.struct_rusage]:
    """Waits for ``pid``; whenever ``watch`` has gained lines, appends the child
    tree's CPU seconds once per new line to ``marks``."""
    seen, size = 0, -1
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        try:
            now = watch.stat().st_size
        except FileNotFoundError:
            now = 0
        if now != size:
            size = now
            lines = _complete_lines(watch)
            if lines > seen:
                cpu = tree_cpu_seconds(pid)
                if cpu is not None:
                    marks += [cpu] * (lines - seen)
                    seen = lines
        time.sleep(WATCH_INTERVAL)


def run(
    command: list[str],
    *,
    stdout: Path | None = None,
    stderr: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    watch: Path | None = None,
) -> Measured:
    """Runs ``command`` to its end, its output into the given files (or discarded);
    with ``watch``, samples its CPU time at each new line of that file."""
    load = load_average()
    command = [str(c) for c in command]
    use_time = _gnu_time()
    rss_file = None
    launched = command
    if use_time:
        fd, name = tempfile.mkstemp(prefix="bench-rss-", suffix=".txt")
        os.close(fd)
        rss_file = Path(name)
        launched = [TIME, "-f", "%M %U %S", "-o", str(rss_file), *command]
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL
    err = open(stderr, "wb") if stderr else subprocess.DEVNULL
    try:
        started = time.perf_counter()
        child = subprocess.Popen(launched, stdout=out, stderr=err, env=env, cwd=cwd)
        marks: list[float] = []
        if watch is not None:
            status, usage = _wait_watching(child.pid, watch, marks)
        else:
            _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        rss_kib, cpu = float(usage.ru_maxrss), usage.ru_utime + usage.ru_stime
        if rss_file is not None:
            # GNU time writes "Command exited with non-zero status N" first on failure.
            lines = [line for line in rss_file.read_text().splitlines() if line.strip()]
            fields = lines[-1].split() if lines else []
            rss_kib, cpu = (float(fields[0]), float(fields[1]) + float(fields[2])) if len(fields) == 3 else (nan, nan)
    finally:
        for f in (out, err):
            if not isinstance(f, int):
                f.close()
        if rss_file is not None:
            rss_file.unlink(missing_ok=True)
    return Measured(
        command=command,
        returncode=child.returncode,
        wall_seconds=wall,
        cpu_seconds=cpu,
        peak_rss_mib=rss_kib / 1024.0,
        load_before=load,
        rss_source="gnu-time" if use_time else "wait4 (includes the harness's size)",
        cpu_marks=marks if watch is not None else None,
    )
