"""Command line of the harness: ``python3 -m bench prepare|run|report|plot|all``.

::

    python3 -m bench all --quick                 # everything tiny, in a couple of minutes
    python3 -m bench prepare --pku               # venv, builds, converted and exported data
    python3 -m bench run chunking pku-short      # the named suites
    python3 -m bench report                      # Markdown tables of the results folder
    python3 -m bench plot                        # SVG plots (matplotlib, when installed)

Scratch files (venv, builds of the peers, data, models, logs) live in the work
folder (``--work``, default ``/tmp/chaincrf-bench``), never in the repository;
the small per-run JSON records go to ``bench/runs/<date>-<machine>/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench import plot as plotting
from bench import report as reporting
from bench import suites
from bench.tools import ALGORITHMS, Env

ROOT = Path(__file__).resolve().parent.parent
SUITES = ("chunking", "pku-short", "pku-capped", "cws", "curve")
# The peers built from their own crates under bench/ (outside the workspace).
PEERS = {"crfs": "chaincrf-bench-crfs-peer", "jieba": "chaincrf-bench-jieba-peer"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def default_chaincrf() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "chaincrf"


def default_runs(quick: bool, machine: str | None) -> Path:
    name = machine or os.environ.get("BENCH_MACHINE") or socket.gethostname().split(".")[0]
    day = datetime.date.today().isoformat()
    return ROOT / "bench" / "runs" / f"{day}-{name}{'-quick' if quick else ''}"


def make_env(args: argparse.Namespace) -> Env:
    # --quick keeps its own scratch folder: its small PKU copy must never stand in for the real one.
    work = Path(args.work or ("/tmp/chaincrf-bench-quick" if args.quick else "/tmp/chaincrf-bench")).resolve()
    if work == ROOT or ROOT in work.parents:
        raise SystemExit(f"--work {work} is inside the repository; data and models must stay out of it")
    runs = Path(args.runs) if args.runs else default_runs(args.quick, args.machine)
    crfs = Path(args.crfs) if args.crfs else work / "crfs-target" / "release" / PEERS["crfs"]
    jieba = Path(args.jieba) if args.jieba else work / "jieba-target" / "release" / PEERS["jieba"]
    python = Path(args.python) if args.python else work / "venv" / "bin" / "python"
    chaincrf = Path(args.chaincrf or default_chaincrf()).resolve()
    return Env(ROOT, work, runs.resolve(), chaincrf, python, crfs, jieba)


def data_dir(args: argparse.Namespace) -> Path:
    value = args.data or os.environ.get("CHAINCRF_DATA")
    if not value:
        raise SystemExit("set CHAINCRF_DATA (or --data) to the folder holding crfpp-examples/, pku-199801/, icwb2/")
    return Path(value)


def pku_data(args: argparse.Namespace, env: Env) -> Path:
    """The PKU files: the data folder's, or with --quick the small copy prepare made."""
    return env.work / "tiny-data" if args.quick else data_dir(args)


def _run_quiet(command: list[str], log_file: Path, **kwargs: object) -> bool:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w", encoding="utf-8") as f:
        return subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, check=False, **kwargs).returncode == 0  # type: ignore[call-overload,no-any-return]


def cmd_prepare(args: argparse.Namespace) -> None:
    env = make_env(args)
    data = data_dir(args)
    env.work.mkdir(parents=True, exist_ok=True)
    if not args.no_venv and not env.python.exists():
        log(f"creating {env.work / 'venv'} (python-crfsuite, matplotlib)")
        subprocess.run([sys.executable, "-m", "venv", str(env.work / "venv")], check=True)
        if not _run_quiet([str(env.python), "-m", "pip", "install", "python-crfsuite"], env.work / "logs" / "pip.log"):
            raise SystemExit(f"pip install python-crfsuite failed; see {env.work / 'logs' / 'pip.log'}")
        if not _run_quiet([str(env.python), "-m", "pip", "install", "matplotlib"], env.work / "logs" / "pip-mpl.log"):
            log("note: matplotlib did not install; `plot` will skip")
    if not args.no_build:
        log("building chaincrf (cargo build --release -p chaincrf-cli)")
        subprocess.run(
            ["cargo", "build", "--release", "-p", "chaincrf-cli", "-j", str(args.jobs)], cwd=ROOT, check=True
        )
    peers = args.peers.split(",") if args.peers is not None else (["crfs"] if args.quick else list(PEERS))
    for peer in filter(None, peers):
        if peer not in PEERS:
            raise SystemExit(f"unknown peer {peer!r}; the peers are {', '.join(PEERS)}")
        build_peer(env, peer, args.jobs)
    log("converting CRF++'s chunking sample to CRFsuite attributes")
    suites.prepare_chunking(env, data)
    if args.pku or args.quick:
        if not env.chaincrf.exists():
            raise SystemExit(f"no chaincrf at {env.chaincrf}")
        if args.quick:
            log("quick: the PKU suites run on the first 300 sentences of 199801 and 100 test lines")
            data = suites.tiny_pku(env, data)
        suites.prepare_pku(env, data, log)


def build_peer(env: Env, peer: str, jobs: int) -> bool:
    """Builds ``bench/<peer>-peer`` (its own crate, outside the workspace) into
    WORK/<peer>-target; a failure is recorded in WORK/<peer>-build.json, and that
    peer's runs are then marked unavailable with the reason."""
    log(f"building the {peer} peer (bench/{peer}-peer, outside the workspace)")
    manifest = ROOT / "bench" / f"{peer}-peer" / "Cargo.toml"
    target = {**os.environ, "CARGO_TARGET_DIR": str(env.work / f"{peer}-target")}
    build_log = env.work / "logs" / f"{peer}-build.log"
    command = ["cargo", "build", "--release", "--locked", "-j", str(jobs), "--manifest-path", str(manifest)]
    ok = _run_quiet(command, build_log, env=target)
    tail = "\n".join(build_log.read_text(errors="replace").splitlines()[-5:])
    status = env.work / f"{peer}-build.json"
    status.write_text(json.dumps({"ok": ok, "message": "" if ok else f"cargo build failed: {tail}"}))
    if not ok:
        log(f"note: the {peer} peer did not build; its runs will be marked unavailable ({build_log})")
    return ok


def _versions(env: Env) -> dict[str, object]:
    def out(command: list[str], **kwargs: object) -> str:
        try:
            r = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
        except OSError:
            return "?"
        return str(r.stdout).strip() or "?"

    revision = out(["git", "describe", "--always", "--dirty"], cwd=ROOT)
    pycrfsuite = out([str(env.python), "-c", "import importlib.metadata as m; print(m.version('python-crfsuite'))"])

    def locked(peer: str, crate: str) -> str:
        lock = ROOT / "bench" / f"{peer}-peer" / "Cargo.lock"
        packages = lock.read_text().split("[[package]]") if lock.exists() else []
        return next((p.split('version = "')[1].split('"')[0] for p in packages if f'name = "{crate}"' in p), "?")

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "?"
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "revision": revision,
        "pycrfsuite": pycrfsuite,
        "crfs": locked("crfs", "crfs"),
        "jieba-rs": locked("jieba", "jieba-rs"),
        "python": platform.python_version(),
        "chaincrf": str(env.chaincrf),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def caps_from(args: argparse.Namespace) -> suites.Caps:
    caps = suites.QUICK if args.quick else suites.FULL
    changes = {}
    if args.iterations is not None:
        changes["lbfgs_iterations"] = args.iterations or None
    for name in ("epochs", "orders", "repetitions", "short_iterations"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    return suites.Caps(**{**caps.__dict__, **changes})


def cmd_run(args: argparse.Namespace) -> None:
    env = make_env(args)
    chosen = args.suites or list(SUITES)
    for s in chosen:
        if s not in SUITES:
            raise SystemExit(f"unknown suite {s!r}; the suites are {', '.join(SUITES)}")
    caps = caps_from(args)
    env.runs.mkdir(parents=True, exist_ok=True)
    (env.runs / "machine.json").write_text(json.dumps(_versions(env), indent=1) + "\n", encoding="utf-8")
    algorithms = args.algorithms.split(",") if args.algorithms else list(ALGORITHMS)
    tools = args.tools.split(",") if args.tools else list(suites.TOOLS)
    for s in chosen:
        if not args.keep:
            shutil.rmtree(env.runs / s, ignore_errors=True)
        log(f"suite {s} -> {env.runs / s}")
        if s == "chunking":
            suites.chunking(env, caps, algorithms, tools, log)
        elif s == "pku-capped":
            suites.pku_capped(env, caps, algorithms, tools, log)
        elif s == "pku-short":
            suites.pku_short(env, caps, tools, log)
        elif s == "cws":
            suites.cws(env, pku_data(args, env), caps, log)
        elif s == "curve":
            suites.curve(env, pku_data(args, env), caps, tools, log)


def cmd_report(args: argparse.Namespace) -> None:
    env = make_env(args)
    text = reporting.report(env.runs)
    (env.runs / "report.md").write_text(text + "\n", encoding="utf-8")
    print(text)


def cmd_plot(args: argparse.Namespace) -> None:
    env = make_env(args)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if env.python.exists() and not os.environ.get("BENCH_PLOT_CHILD"):
            # The bench venv (made by prepare) has matplotlib: plot there.
            command = [str(env.python), "-m", "bench", "plot", "--runs", str(env.runs), "--work", str(env.work)]
            subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "BENCH_PLOT_CHILD": "1"})
            return
    for path in plotting.plot(env.runs):
        log(f"wrote {path}")


def cmd_all(args: argparse.Namespace) -> None:
    args.pku = args.suites != ["chunking"]
    cmd_prepare(args)
    cmd_run(args)
    cmd_report(args)
    cmd_plot(args)


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--quick", action="store_true", help="tiny runs: 2-3 iterations; PKU suites on 300 sentences (minutes)"
    )
    common.add_argument(
        "--work",
        default=os.environ.get("BENCH_WORK"),
        help="scratch folder [default: $BENCH_WORK or /tmp/chaincrf-bench; --quick: /tmp/chaincrf-bench-quick]",
    )
    common.add_argument("--runs", help="results folder [default: bench/runs/<date>-<machine>[-quick]]")
    common.add_argument(
        "--machine", help="machine name in the results folder [default: $BENCH_MACHINE or the host name]"
    )
    common.add_argument("--chaincrf", help="chaincrf binary [default: $CARGO_TARGET_DIR or target, release/chaincrf]")
    common.add_argument("--python", help="Python with python-crfsuite [default: WORK/venv/bin/python]")
    common.add_argument("--crfs", help=f"crfs peer binary [default: WORK/crfs-target/release/{PEERS['crfs']}]")
    common.add_argument("--jieba", help=f"jieba-rs peer binary [default: WORK/jieba-target/release/{PEERS['jieba']}]")
    common.add_argument("--data", help="data folder [default: $CHAINCRF_DATA]")
    p = argparse.ArgumentParser(
        prog="python3 -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    def preparing(q: argparse.ArgumentParser) -> None:
        q.add_argument("--no-build", action="store_true", help="use the chaincrf binary as it is")
        q.add_argument("--no-venv", action="store_true", help="do not create the venv")
        q.add_argument("--peers", help="comma-separated peers to build: crfs, jieba [default: both; --quick: crfs]")
        q.add_argument("--jobs", type=int, default=2, help="cargo build jobs [default: 2]")

    def running(q: argparse.ArgumentParser) -> None:
        q.add_argument("suites", nargs="*", help=f"suites to run: {', '.join(SUITES)} [default: all]")
        q.add_argument("--algorithms", help=f"comma-separated subset of {','.join(ALGORITHMS)}")
        q.add_argument("--tools", help=f"comma-separated subset of {','.join(suites.TOOLS)}")
        q.add_argument("--iterations", type=int, help="L-BFGS iteration cap (0: none) [50; quick 3]")
        q.add_argument("--epochs", type=int, help="epoch cap of the online algorithms [10; quick 2]")
        q.add_argument("--orders", type=int, help="shuffled orders per online algorithm [3; quick 2]")
        q.add_argument("--repetitions", type=int, help="alternating repetitions of L-BFGS runs [3; quick 2]")
        q.add_argument("--short-iterations", type=int, help="L-BFGS iterations of pku-short [20; quick 2]")
        q.add_argument("--keep", action="store_true", help="keep the suite's earlier records (default: replace)")

    q = sub.add_parser("prepare", parents=[common], help="venv, builds, converted and exported data")
    preparing(q)
    q.add_argument("--pku", action="store_true", help="also export the PKU attributes (cws export --no-lexicon)")
    q.set_defaults(run=cmd_prepare)
    q = sub.add_parser("run", parents=[common], help="run suites, one JSON record per run")
    running(q)
    q.set_defaults(run=cmd_run)
    q = sub.add_parser("report", parents=[common], help="Markdown tables (also RUNS/report.md)")
    q.set_defaults(run=cmd_report)
    q = sub.add_parser("plot", parents=[common], help="SVG plots into RUNS/plots (needs matplotlib)")
    q.set_defaults(run=cmd_plot)
    q = sub.add_parser("all", parents=[common], help="prepare, run, report and plot")
    preparing(q)
    running(q)
    q.set_defaults(run=cmd_all)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.run(args)
    return 0
