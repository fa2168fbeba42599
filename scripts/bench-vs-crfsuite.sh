#!/usr/bin/env bash
# Benchmarks chaincrf against CRFsuite (through python-crfsuite) and jieba-rs on
# PKU word segmentation, on one machine in one run.
#
# Usage:
#   CHAINCRF_DATA=/path/to/data scripts/bench-vs-crfsuite.sh
#
# CHAINCRF_DATA is the folder holding pku-199801/199801.txt and
# icwb2/{pku_test.utf8,pku_test_gold.utf8,pku_training_words.utf8}.
#
# Optional environment:
#   BENCH_DIR            work folder (default: a new /tmp/chaincrf-bench.XXXXXX);
#                        everything the run makes stays there, never in the repo
#   SHORT_ITERATIONS     iterations of the short runs (default 20)
#   REPS                 repetitions of each short run (default 3)
#   FULL_MAX_ITERATIONS  cap for the full runs, the same for both tools
#                        (default: none, each tool's delta/epsilon stopping rule)
#   SEGMENT_REPEAT       copies of pku_test.utf8 in the throughput input (default 20)
#   FULL_TOOLS           which full runs the `full` stage (re)does (default
#                        "crfsuite chaincrf"); with one tool, the other's model,
#                        log and results are taken from BENCH_DIR as an earlier
#                        run left them (rerunning only chaincrf after a change
#                        saves CRFsuite's half hour)
#   CURVE_CAPS           iteration caps of the dev-curve runs (default "5 10 20 40 80")
#   CURVE_SGD_EPOCHS     SGD epochs before L-BFGS in the chaincrf-sgd series (default 10)
#   CURVE_SGD_CAPS       L-BFGS iteration caps after them (default "0 10 20 40")
#   CURVE_TOOLS          which dev-curve series the `curve` stage (re)does (default
#                        "crfsuite chaincrf chaincrf-sgd"); the others are taken
#                        from BENCH_DIR as an earlier run left them
#   STAGES               which stages to run (default: all, in this order):
#                        build export venv short full cws jieba curve plot report
#
# What it measures:
#   short   SHORT_ITERATIONS L-BFGS iterations, alternating CRFsuite / chaincrf
#           1 thread / chaincrf 2 threads, REPS times: seconds per function +
#           gradient evaluation, evaluations per iteration, peak RSS (medians).
#   full    one run of each tool until its stopping rule (or the cap), on 1
#           thread each: iterations, seconds, final loss, peak RSS, F1 on the
#           PKU test set, tagging throughput.
#   cws     `chaincrf cws train` with its defaults, then `cws segment` on 1
#           thread: F1, characters per second, model load time, peak RSS.
#   jieba   jieba-rs (default dictionary, HMM on) built in a throwaway Cargo
#           project under BENCH_DIR: F1 and characters per second.
#   curve   dev F1 against time: both tools train on 199801 without every 20th
#           sentence, on 1 thread, once per cap in CURVE_CAPS (a capped run is
#           the uncapped run stopped there), and each model's word F1 on the
#           held-out sentences is scored from its B/M/E/S tags. A third
#           series, chaincrf-sgd, is chaincrf with its SGD warm start
#           (CURVE_SGD_EPOCHS epochs, then CURVE_SGD_CAPS L-BFGS iterations):
#           the same objective and features, reached another way.
#   plot    objective against seconds and against iterations of both full
#           runs, and (after the curve stage) dev F1 against seconds:
#           docs/bench-loss.svg (PLOT_OUT).
#   report  markdown tables on standard output and in BENCH_DIR/report.md.
#
# Both trainers get the same input: `chaincrf cws export --no-lexicon` writes the
# attributes of chaincrf's CWS extractor in CRFsuite's data format, and both
# minimize NLL + c2·‖w‖² with c2 = 1 over observed attribute×label and label
# pairs, with L-BFGS (6 memories, More–Thuente line search) and CRFsuite's
# stopping rule (delta 1e-5 over 10 iterations, epsilon 1e-5).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${CHAINCRF_DATA:?set CHAINCRF_DATA to the folder holding pku-199801/ and icwb2/}
DATA=$(cd "$DATA" && pwd)
CORPUS=$DATA/pku-199801/199801.txt
TEST_RAW=$DATA/icwb2/pku_test.utf8
TEST_GOLD=$DATA/icwb2/pku_test_gold.utf8
TRAIN_WORDS=$DATA/icwb2/pku_training_words.utf8
for f in "$CORPUS" "$TEST_RAW" "$TEST_GOLD" "$TRAIN_WORDS"; do
    [[ -r $f ]] || { echo "missing data file: $f" >&2; exit 1; }
done

WORK=${BENCH_DIR:-$(mktemp -d /tmp/chaincrf-bench.XXXXXX)}
mkdir -p "$WORK"/{bin,data,models,logs,results,time,seg}
WORK=$(cd "$WORK" && pwd)
case "$WORK/" in
"$ROOT"/*) echo "BENCH_DIR must be outside the repository" >&2; exit 1 ;;
esac
SHORT_ITERATIONS=${SHORT_ITERATIONS:-20}
REPS=${REPS:-3}
FULL_MAX_ITERATIONS=${FULL_MAX_ITERATIONS:-}
SEGMENT_REPEAT=${SEGMENT_REPEAT:-20}
CURVE_CAPS=${CURVE_CAPS:-5 10 20 40 80}
CURVE_SGD_EPOCHS=${CURVE_SGD_EPOCHS:-10}
CURVE_SGD_CAPS=${CURVE_SGD_CAPS:-0 10 20 40}
STAGES=${STAGES:-build export venv short full cws jieba curve plot report}
PLOT_OUT=${PLOT_OUT:-$ROOT/docs/bench-loss.svg}

CHAINCRF=$WORK/bin/chaincrf
PY=$WORK/venv/bin/python
DRIVER=$WORK/bin/crfsuite_driver.py
TRAIN_DATA=$WORK/data/pku-train.crfsuite
TEST_DATA=$WORK/data/pku-test.crfsuite

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
want() { [[ " $STAGES " == *" $1 "* ]]; }

# Runs a command under /usr/bin/time (wall seconds and peak RSS in KiB into
# time/NAME.txt) and records the load average just before it in load.log.
timed() {
    local name=$1
    shift
    printf '%s\t%s\n' "$name" "$(uptime)" >>"$WORK/load.log"
    /usr/bin/time -f '%e %M' -o "$WORK/time/$name.txt" "$@"
}

# ---------------------------------------------------------------------------
# The Python driver: CRFsuite training and tagging, tags → words, report, plot.
write_driver() {
    cat >"$DRIVER" <<'PYEOF'
"""CRFsuite side of scripts/bench-vs-crfsuite.sh, plus its report and plot."""
import json
import os
import re
import statistics
import sys
import time


def read_crfsuite(path):
    """Yields (xseq, yseq) from CRFsuite data: label TAB attr TAB ...; blank line ends a sequence."""
    xs, ys = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if xs:
                    yield xs, ys
                xs, ys = [], []
                continue
            fields = line.split("\t")
            ys.append(fields[0])
            xs.append(fields[1:])
    if xs:
        yield xs, ys


def parse_crfsuite_log(text):
    """Per-iteration figures and totals from CRFsuite's training log."""
    iters = []
    cur = None
    out = {"features": None, "termination": None, "lbfgs_seconds": None}
    for line in text.splitlines():
        m = re.match(r"\*+ Iteration #(\d+) \*+", line)
        if m:
            cur = {"iteration": int(m.group(1))}
            iters.append(cur)
            continue
        m = re.match(r"Number of features: (\d+)", line)
        if m:
            out["features"] = int(m.group(1))
        m = re.match(r"Total seconds required for training: ([\d.]+)", line)
        if m:
            out["lbfgs_seconds"] = float(m.group(1))
        if line.startswith("L-BFGS"):
            out["termination"] = line.strip()
        if cur is None:
            continue
        for key, pat, conv in (
            ("loss", r"Loss: ([-\d.e+]+)", float),
            ("active", r"Active features: (\d+)", int),
            ("trials", r"Line search trials: (\d+)", int),
            ("seconds", r"Seconds required for this iteration: ([\d.]+)", float),
        ):
            m = re.match(pat, line)
            if m:
                cur[key] = conv(m.group(1))
    iters = [i for i in iters if "seconds" in i]
    elapsed = 0.0
    for i in iters:
        elapsed += i["seconds"]
        i["elapsed"] = elapsed
    out["per_iteration"] = iters
    out["iterations"] = len(iters)
    # liblbfgs evaluates once at the start, then once per line-search trial.
    out["evaluations"] = 1 + sum(i.get("trials", 0) for i in iters)
    out["final_objective"] = iters[-1]["loss"] if iters else None
    if out["lbfgs_seconds"] is None:
        out["lbfgs_seconds"] = elapsed
    out["seconds"] = out["lbfgs_seconds"]
    return out


# The training parameters of every CRFsuite run: chaincrf's objective and stopping rule.
CRFSUITE_PARAMS = {
    "c1": 0.0,
    "c2": 1.0,
    "num_memories": 6,
    "delta": 1e-5,
    "period": 10,
    "epsilon": 1e-5,
    "linesearch": "MoreThuente",
    "feature.possible_states": False,
    "feature.possible_transitions": False,
    "feature.minfreq": 0,
}


def logging_trainer():
    """A python-crfsuite trainer (L-BFGS) that keeps CRFsuite's log in `.log` instead of printing it."""
    import pycrfsuite

    class Trainer(pycrfsuite.Trainer):
        def __init__(self):
            super().__init__(verbose=False)
            self.log = []

        def message(self, message):
            self.log.append(message)

    trainer = Trainer()
    trainer.select("lbfgs")
    return trainer


def cmd_train(data, model, max_iterations, out_json, log_path):
    started = time.perf_counter()
    trainer = logging_trainer()
    n_seq = n_items = 0
    for xs, ys in read_crfsuite(data):
        trainer.append(xs, ys)
        n_seq += 1
        n_items += len(xs)
    read_seconds = time.perf_counter() - started
    params = dict(CRFSUITE_PARAMS)
    if int(max_iterations) > 0:
        params["max_iterations"] = int(max_iterations)
    trainer.set_params(params)
    t0 = time.perf_counter()
    trainer.train(model)
    wall = time.perf_counter() - t0
    text = "".join(trainer.log)
    with open(log_path, "w", encoding="utf-8") as f:
        f.write(text)
    res = parse_crfsuite_log(text)
    res.update(
        sequences=n_seq,
        items=n_items,
        read_seconds=read_seconds,
        train_wall_seconds=wall,
        params={k: str(v) for k, v in params.items()},
    )
    with open(out_json, "w") as f:
        json.dump(res, f, indent=1)


def cmd_tag(model, data, out_tags, out_json):
    import pycrfsuite

    tagger = pycrfsuite.Tagger()
    t0 = time.perf_counter()
    tagger.open(model)
    load = time.perf_counter() - t0
    seqs = list(read_crfsuite(data))
    chars = sum(len(xs) for xs, _ in seqs)
    t0 = time.perf_counter()
    preds = [tagger.tag(xs) for xs, _ in seqs]
    tag_seconds = time.perf_counter() - t0
    with open(out_tags, "w", encoding="utf-8") as f:
        for p in preds:
            f.write("\n".join(p))
            f.write("\n\n")
    with open(out_json, "w") as f:
        json.dump({"chars": chars, "tag_seconds": tag_seconds, "load_seconds": load}, f)


def word_spans(tags):
    """Word spans [start, end) of a B/M/E/S tag sequence: a word starts at B or S
    (or after a word ended) and ends at E or S (or where the sequence ends)."""
    spans, start = [], None
    for i, t in enumerate(tags):
        if t in ("B", "S") and start is not None:
            spans.append((start, i))
            start = None
        if start is None:
            start = i
        if t in ("E", "S"):
            spans.append((start, i + 1))
            start = None
    if start is not None:
        spans.append((start, len(tags)))
    return spans


def read_tag_sequences(path):
    """Tag sequences from a file of one tag per line (the last TAB field), a blank line after each sequence."""
    seqs, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                if cur:
                    seqs.append(cur)
                cur = []
            elif not line.startswith("#"):
                cur.append(line.split("\t")[-1])
    if cur:
        seqs.append(cur)
    return seqs


def word_f1(gold_seqs, pred_seqs):
    """Word-level F1 (as the SIGHAN scorer counts it: a word is right when its span is) of predicted tag sequences."""
    if len(gold_seqs) != len(pred_seqs):
        sys.exit(f"{len(pred_seqs)} predicted sequences for {len(gold_seqs)} gold ones")
    right = n_gold = n_pred = 0
    for g, p in zip(gold_seqs, pred_seqs):
        if len(g) != len(p):
            sys.exit(f"a predicted sequence of {len(p)} tags for {len(g)} gold ones")
        gs, ps = set(word_spans(g)), word_spans(p)
        right += sum(1 for s in ps if s in gs)
        n_gold += len(gs)
        n_pred += len(ps)
    precision, recall = right / n_pred, right / n_gold
    return 2 * precision * recall / (precision + recall) if right else 0.0


def cmd_split(data, train_out, dev_out, every):
    """Every EVERY-th sequence of DATA goes to DEV_OUT, the others to TRAIN_OUT (CRFsuite format kept)."""
    every = int(every)
    with open(train_out, "w", encoding="utf-8") as tr, open(dev_out, "w", encoding="utf-8") as dv:
        for i, (xs, ys) in enumerate(read_crfsuite(data)):
            out = dv if i % every == every - 1 else tr
            for x, y in zip(xs, ys):
                out.write(y + "\t" + "\t".join(x) + "\n")
            out.write("\n")


def cmd_curve_crfsuite(train, dev, caps, out_json, model_dir):
    """Trains CRFsuite on TRAIN once per cap of L-BFGS iterations (the data is read once) and scores
    each model's word F1 on DEV. A run capped at m iterations is the uncapped run stopped at m."""
    import pycrfsuite

    trainer = logging_trainer()
    for xs, ys in read_crfsuite(train):
        trainer.append(xs, ys)
    dev_seqs = list(read_crfsuite(dev))
    gold = [ys for _, ys in dev_seqs]
    points = []
    for cap in (int(c) for c in caps.split()):
        trainer.log = []
        trainer.set_params(dict(CRFSUITE_PARAMS, max_iterations=cap))
        model = os.path.join(model_dir, f"curve-crfsuite-{cap}.crfsuite")
        trainer.train(model)
        res = parse_crfsuite_log("".join(trainer.log))
        tagger = pycrfsuite.Tagger()
        tagger.open(model)
        pred = [tagger.tag(xs) for xs, _ in dev_seqs]
        tagger.close()
        points.append({"cap": cap, "iterations": res["iterations"], "seconds": res["seconds"],
                       "loss": res["final_objective"], "f1": word_f1(gold, pred)})
        print(f"CRFsuite, {cap} iterations: {points[-1]}", file=sys.stderr)
    with open(out_json, "w") as f:
        json.dump(points, f, indent=1)


def cmd_curve_point(dev, tags, summary_json, cap):
    """One chaincrf point of the dev curve, as a JSON line: its summary and word F1 on DEV."""
    s = load_json(summary_json)
    gold = [ys for _, ys in read_crfsuite(dev)]
    f1 = word_f1(gold, read_tag_sequences(tags))
    print(json.dumps({"cap": int(cap), "iterations": s["iterations"], "seconds": s["seconds"],
                      "loss": s["final_objective"], "f1": f1}))


def cmd_words(gold, tags, out):
    """Turns B/M/E/S tags (a blank line after each sequence) into words, line by line of the gold file."""
    it = iter(read_tag_sequences(tags))
    with open(gold, encoding="utf-8") as g, open(out, "w", encoding="utf-8") as o:
        for line in g:
            chars = "".join(line.split())
            if not chars:
                o.write("\n")
                continue
            tags_ = next(it)
            if len(tags_) != len(chars):
                sys.exit(f"tag count {len(tags_)} != {len(chars)} characters: {line.strip()[:40]}")
            o.write(" ".join(chars[a:b] for a, b in word_spans(tags_)) + "\n")
    if next(it, None) is not None:
        sys.exit("more tagged sequences than gold lines")


def load_json(path):
    with open(path) as f:
        return json.load(f)


def read_time(work, name):
    with open(os.path.join(work, "time", name + ".txt")) as f:
        last = f.read().split("\n")
    # /usr/bin/time writes "Command exited with non-zero status" first on failure.
    e, m = [l for l in last if l.strip()][-1].split()
    return float(e), int(m) / 1024.0


def read_f1(path):
    with open(path) as f:
        for line in f:
            if line.startswith("F1 "):
                return float(line.split()[1])
    return None


def chaincrf_iterations(log_path):
    pat = re.compile(r"iter\s+(\d+)\s+loss\s+([-\d.e+]+)\s+\|g\|\s+\S+\s+active\s+\d+\s+([\d.]+)s")
    out = []
    with open(log_path, encoding="utf-8") as f:
        for line in f:
            m = pat.search(line)
            if m:
                out.append({"iteration": int(m.group(1)), "loss": float(m.group(2)), "elapsed": float(m.group(3))})
    return out


def curve_points(work):
    """The dev-F1 curve of each tool, when the curve stage has run: {tool: [points]}."""
    out = {}
    for tool in ("crfsuite", "chaincrf", "chaincrf-sgd"):
        path = os.path.join(work, "results", f"curve-{tool}.json")
        if os.path.exists(path):
            out[tool] = sorted(load_json(path), key=lambda p: p["cap"])
    return out


def cmd_plot(work, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cs = load_json(os.path.join(work, "results", "full-crfsuite.json"))["per_iteration"]
    cc = chaincrf_iterations(os.path.join(work, "logs", "full-chaincrf.log"))
    f1 = load_json(os.path.join(work, "results", "f1.json"))
    curves = curve_points(work)
    fig, axes = plt.subplots(1, 3 if curves else 2, figsize=(16 if curves else 11, 4.2))
    a1, a2 = axes[0], axes[-1]
    tools = (("crfsuite", cs, "CRFsuite", "tab:orange"), ("chaincrf", cc, "chaincrf (1 thread)", "tab:blue"))
    for tool, series, name, color in tools:
        loss = [i["loss"] for i in series]
        a1.semilogy([i["elapsed"] for i in series], loss, label=name, color=color)
        a2.semilogy([i["iteration"] for i in series], loss, label=name, color=color)
        if tool in curves:
            pts = curves[tool]
            axes[1].plot([p["seconds"] for p in pts], [p["f1"] for p in pts], "o-", label=name, color=color)
            for p in pts:
                axes[1].annotate(str(p["iterations"]), (p["seconds"], p["f1"]), textcoords="offset points",
                                 xytext=(3, -10), fontsize=7, color=color)
    if "chaincrf-sgd" in curves:
        pts = curves["chaincrf-sgd"]
        axes[1].plot([p["seconds"] for p in pts], [p["f1"] for p in pts], "s--", color="tab:green",
                     label="chaincrf, SGD warm start + L-BFGS")
        for p in pts:
            axes[1].annotate(str(p["iterations"]), (p["seconds"], p["f1"]), textcoords="offset points",
                             xytext=(3, 4), fontsize=7, color="tab:green")
    a1.set_xlabel("seconds")
    a1.set_ylabel("objective (NLL + c2‖w‖²)")
    a1.set_title("Objective against time (PKU 199801, 1 thread)")
    if curves:
        axes[1].set_xlabel("seconds of training")
        axes[1].set_ylabel("word F1, held-out 5% of 199801")
        axes[1].set_title("Dev F1 against time (trained on the other 95%;\npoint labels: L-BFGS iterations)", fontsize=10)
    a2.set_xlabel("L-BFGS iteration")
    a2.set_title("Against iterations; F1 on PKU test: CRFsuite %.3f, chaincrf %.3f" % (f1["crfsuite"], f1["chaincrf"]), fontsize=10)
    for a in axes:
        a.grid(alpha=0.3, which="both")
        # The F1 curves rise to the upper left: their legend goes to the lower right.
        a.legend(loc="lower right" if curves and a is axes[1] else "best", fontsize=8 if a is axes[1] else None)
    fig.tight_layout()
    fig.savefig(out)


def med(xs):
    return statistics.median(xs)


def cmd_report(work, short_iterations, reps):
    W = lambda *p: os.path.join(work, *p)
    lines = []
    P = lines.append
    rows = {}
    for tool in ("crfsuite", "chaincrf-t1", "chaincrf-t2"):
        per_eval, evals_per_iter, rss, secs, evals, iters = [], [], [], [], [], []
        for r in range(1, reps + 1):
            name = f"short-{tool}-{r}"
            j = load_json(W("results", name + ".json"))
            _, m = read_time(work, name)
            per_eval.append(j["seconds"] / j["evaluations"])
            evals_per_iter.append(j["evaluations"] / j["iterations"])
            rss.append(m)
            secs.append(j["seconds"])
            evals.append(j["evaluations"])
            iters.append(j["iterations"])
        rows[tool] = dict(
            per_eval=med(per_eval), per_eval_all=per_eval, epi=med(evals_per_iter), rss=med(rss),
            secs=med(secs), evals=med(evals), iters=med(iters), features=j["features"],
        )
    base = rows["crfsuite"]
    P(f"Short runs: {short_iterations} iterations, {reps} alternating repetitions, medians.")
    P("")
    P("| | features | iterations | evaluations | eval./iter. | s/evaluation (runs) | peak RSS MiB | s/eval. ÷ CRFsuite | RSS ÷ CRFsuite |")
    P("|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for tool, label in (("crfsuite", "CRFsuite"), ("chaincrf-t1", "chaincrf 1 thread"), ("chaincrf-t2", "chaincrf 2 threads")):
        r = rows[tool]
        runs = ", ".join(f"{x:.3f}" for x in r["per_eval_all"])
        P(f"| {label} | {r['features']:,} | {r['iters']:.0f} | {r['evals']:.0f} | {r['epi']:.2f} | **{r['per_eval']:.3f}** ({runs}) | {r['rss']:.0f} | {r['per_eval'] / base['per_eval']:.2f} | {r['rss'] / base['rss']:.2f} |")
    P("")
    P(f"chaincrf 2 threads vs 1 thread: {rows['chaincrf-t1']['per_eval'] / rows['chaincrf-t2']['per_eval']:.2f}× faster per evaluation.")
    P("")

    summary = {"short": rows}
    if os.path.exists(W("results", "full-crfsuite.json")) and os.path.exists(W("results", "full-chaincrf.json")):
        cs = load_json(W("results", "full-crfsuite.json"))
        cc = load_json(W("results", "full-chaincrf.json"))
        _, cs_rss = read_time(work, "full-crfsuite")
        _, cc_rss = read_time(work, "full-chaincrf")
        f1 = load_json(W("results", "f1.json"))
        cs_tag = load_json(W("results", "tag-crfsuite.json"))
        cc_wall, _ = read_time(work, "tag-chaincrf")
        cc_tag_cps = cs_tag["chars"] / cc_wall
        cs_tag_cps = cs_tag["chars"] / cs_tag["tag_seconds"]
        P("Full runs, 1 thread each, until the stopping rule" + (f" or {os.environ['FULL_MAX_ITERATIONS']} iterations" if os.environ.get("FULL_MAX_ITERATIONS") else "") + ".")
        P("")
        P("| | iterations | evaluations | seconds | s/evaluation | final objective | peak RSS MiB | F1 (PKU test) | tagging chars/s | stopped because |")
        P("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        P(f"| CRFsuite | {cs['iterations']} | {cs['evaluations']} | {cs['seconds']:.1f} | {cs['seconds'] / cs['evaluations']:.3f} | {cs['final_objective']:.1f} | {cs_rss:.0f} | {f1['crfsuite']:.3f} | {cs_tag_cps:,.0f} | {cs['termination']} |")
        P(f"| chaincrf | {cc['iterations']} | {cc['evaluations']} | {cc['seconds']:.1f} | {cc['seconds'] / cc['evaluations']:.3f} | {cc['final_objective']:.1f} | {cc_rss:.0f} | {f1['chaincrf']:.3f} | {cc_tag_cps:,.0f} | {cc['termination']} |")
        P(f"| chaincrf ÷ CRFsuite | {cc['iterations'] / cs['iterations']:.2f} | {cc['evaluations'] / cs['evaluations']:.2f} | {cc['seconds'] / cs['seconds']:.2f} | {(cc['seconds'] / cc['evaluations']) / (cs['seconds'] / cs['evaluations']):.2f} | {cc['final_objective'] / cs['final_objective']:.4f} | {cc_rss / cs_rss:.2f} | {f1['chaincrf'] - f1['crfsuite']:+.3f} | {cc_tag_cps / cs_tag_cps:.2f} | |")
        P("")
        P(f"Tagging: {cs_tag['chars']:,} test characters. CRFsuite: time inside `Tagger.tag()` only (attributes already parsed in Python, model loaded); chaincrf: wall time of the whole `chaincrf tag` process (load the model, parse, tag, write).")
        P("")
        summary["full"] = {"crfsuite": cs, "chaincrf": cc, "crfsuite_rss": cs_rss, "chaincrf_rss": cc_rss, "f1": f1,
                           "crfsuite_tag_cps": cs_tag_cps, "chaincrf_tag_cps": cc_tag_cps}
        for s in (cs, cc):
            s.pop("per_iteration", None)

    if os.path.exists(W("results", "cws.json")):
        c = load_json(W("results", "cws.json"))
        P("Segmenters, 1 thread unless said, PKU test (F1 on pku_test.utf8; speed on it repeated %d×, %s characters):" % (c["repeat"], f"{c['chars']:,}"))
        P("")
        P("| | F1 | OOV recall | chars/s (excl. load) | chars/s (whole process) | load s | peak RSS MiB |")
        P("|---|---:|---:|---:|---:|---:|---:|")
        for k, label in (("chaincrf", "chaincrf cws segment (default model)"), ("chaincrf_t2", "chaincrf cws segment, 2 threads (per process, not per thread)"),
                         ("jieba", "jieba-rs 0.11 (default dict, HMM)")):
            if k in c:
                r = c[k]
                P(f"| {label} | {r['f1']:.3f} | {r['oov_recall']:.3f} | {r['cps']:,.0f} | {r['cps_wall']:,.0f} | {r['load_seconds']:.3f} | {r['rss']:.0f} |")
        P("")
        t = c.get("train")
        if t:
            P(f"`chaincrf cws train` (defaults, {t['threads']} threads): {t['seconds']:.1f} s wall, peak RSS {t['rss']:.0f} MiB, model {t['model_bytes'] / 1048576:.1f} MiB; its own report: `{t['summary']}`")
            P("")
        summary["cws"] = c
    curves = curve_points(work)
    if "crfsuite" in curves and "chaincrf" in curves:
        P("Dev curve, 1 thread each: trained on 95% of 199801 with the L-BFGS iterations capped, word F1 on the held-out 5% (every 20th sentence):")
        P("")
        P("| iterations | CRFsuite s | CRFsuite objective | CRFsuite dev F1 | chaincrf s | chaincrf objective | chaincrf dev F1 | time ÷ CRFsuite |")
        P("|---:|---:|---:|---:|---:|---:|---:|---:|")
        # Rows joined on the cap: a rerun of one series may have used other caps.
        chaincrf_at = {p["cap"]: p for p in curves["chaincrf"]}
        for a in curves["crfsuite"]:
            b = chaincrf_at.get(a["cap"])
            if b is None:
                continue
            P(f"| {a['cap']} | {a['seconds']:.1f} | {a['loss']:.1f} | {a['f1']:.4f} | {b['seconds']:.1f} | {b['loss']:.1f} | {b['f1']:.4f} | {b['seconds'] / a['seconds']:.2f} |")
        P("")
    if "chaincrf-sgd" in curves:
        P("The same split, chaincrf with its SGD warm start (`--sgd-epochs %s`, then L-BFGS capped), 1 thread: the same objective and features, reached another way:" % os.environ.get("CURVE_SGD_EPOCHS", "?"))
        P("")
        P("| L-BFGS iterations after SGD | seconds (SGD included) | objective | dev F1 |")
        P("|---:|---:|---:|---:|")
        for p in curves["chaincrf-sgd"]:
            P(f"| {p['cap']} | {p['seconds']:.1f} | {p['loss']:.1f} | {p['f1']:.4f} |")
        P("")
    if curves:
        summary["curve"] = curves
    text = "\n".join(lines)
    print(text)
    with open(W("report.md"), "w") as f:
        f.write(text + "\n")
    with open(W("summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)


def main():
    commands = {
        "train": cmd_train,
        "tag": cmd_tag,
        "words": cmd_words,
        "split": cmd_split,
        "curve-crfsuite": cmd_curve_crfsuite,
        "curve-point": cmd_curve_point,
        "plot": cmd_plot,
        "report": lambda work, iterations, reps: cmd_report(work, int(iterations), int(reps)),
    }
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd not in commands:
        sys.exit(f"unknown command {cmd}")
    commands[cmd](*args)


if __name__ == "__main__":
    main()
PYEOF
}

# F1 / OOV recall of a words file against the PKU gold, as JSON fields.
score() {
    "$CHAINCRF" cws eval --gold "$TEST_GOLD" --pred "$1" --dict "$TRAIN_WORDS" >"$2"
}
field() { awk -v k="$2" '$0 ~ "^"k" " {print $NF}' "$1"; }

log "work folder: $WORK"
write_driver
# Samples the load average every 30 s for the whole run (other users of the machine show up here).
(while sleep 30; do printf '%s\t%s\n' "$(date +%H:%M:%S)" "$(cut -d' ' -f1-3 /proc/loadavg)"; done >>"$WORK/load-samples.log") &
SAMPLER=$!
trap 'kill "$SAMPLER" 2>/dev/null || true' EXIT

if want build; then
    log "building chaincrf (release)"
    (cd "$ROOT" && cargo build --release -p chaincrf-cli)
    # A private copy: other builds of the work tree must not swap the binary mid-run.
    cp "$ROOT/target/release/chaincrf" "$CHAINCRF"
    (cd "$ROOT" && git rev-parse HEAD && git status --short | head -50) >"$WORK/revision.txt"
fi
[[ -x $CHAINCRF ]] || { echo "no $CHAINCRF: run the build stage" >&2; exit 1; }

if want export; then
    log "exporting attributes (--no-lexicon)"
    "$CHAINCRF" cws export --corpus "$CORPUS" --no-lexicon -o "$TRAIN_DATA"
    # The gold test file is SIGHAN format (words separated by spaces); `cws export`
    # detects the format from the file itself.
    cp "$TEST_GOLD" "$WORK/data/pku_test_gold.txt"
    "$CHAINCRF" cws export --corpus "$WORK/data/pku_test_gold.txt" --no-lexicon -o "$TEST_DATA"
    grep -c . "$TRAIN_DATA" >"$WORK/data/train-items.txt"
fi

if want venv; then
    log "creating the Python venv (python-crfsuite, matplotlib)"
    [[ -x $PY ]] || python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q python-crfsuite matplotlib
    "$WORK/venv/bin/pip" show python-crfsuite | grep -i '^version' >"$WORK/crfsuite-version.txt"
fi

run_crfsuite() { # NAME MAX_ITERATIONS
    timed "$1" "$PY" "$DRIVER" train "$TRAIN_DATA" "$WORK/models/$1.crfsuite" "$2" \
        "$WORK/results/$1.json" "$WORK/logs/$1.crfsuite-log"
}
run_chaincrf() { # NAME THREADS [extra args]
    local name=$1 threads=$2
    shift 2
    timed "$name" "$CHAINCRF" train --format crfsuite --model "$WORK/models/$name.model" \
        --c2 1 --feature-pairs observed --threads "$threads" --summary-json "$WORK/results/$name.json" \
        "$@" "$TRAIN_DATA" 2>"$WORK/logs/$name.log"
}

if want short; then
    for r in $(seq 1 "$REPS"); do
        log "short runs, repetition $r of $REPS"
        run_crfsuite "short-crfsuite-$r" "$SHORT_ITERATIONS"
        run_chaincrf "short-chaincrf-t1-$r" 1 --max-iterations "$SHORT_ITERATIONS"
        run_chaincrf "short-chaincrf-t2-$r" 2 --max-iterations "$SHORT_ITERATIONS"
    done
fi

if want full; then
    cap=()
    [[ -n $FULL_MAX_ITERATIONS ]] && cap=(--max-iterations "$FULL_MAX_ITERATIONS")
    tools=${FULL_TOOLS:-crfsuite chaincrf}
    if [[ " $tools " == *" crfsuite "* ]]; then
        log "full run: CRFsuite${FULL_MAX_ITERATIONS:+ (cap $FULL_MAX_ITERATIONS)}"
        run_crfsuite full-crfsuite "${FULL_MAX_ITERATIONS:-0}"
        log "tagging the test set with CRFsuite"
        timed tag-crfsuite "$PY" "$DRIVER" tag "$WORK/models/full-crfsuite.crfsuite" "$TEST_DATA" \
            "$WORK/seg/tags-crfsuite.txt" "$WORK/results/tag-crfsuite.json"
    fi
    if [[ " $tools " == *" chaincrf "* ]]; then
        log "full run: chaincrf, 1 thread${FULL_MAX_ITERATIONS:+ (cap $FULL_MAX_ITERATIONS)}"
        run_chaincrf full-chaincrf 1 "${cap[@]}"
        log "tagging the test set with chaincrf"
        timed tag-chaincrf "$CHAINCRF" tag --model "$WORK/models/full-chaincrf.model" "$TEST_DATA" \
            >"$WORK/seg/tags-chaincrf.txt"
    fi
    for tool in crfsuite chaincrf; do
        "$PY" "$DRIVER" words "$TEST_GOLD" "$WORK/seg/tags-$tool.txt" "$WORK/seg/words-$tool.txt"
        score "$WORK/seg/words-$tool.txt" "$WORK/results/eval-$tool.txt"
    done
    printf '{"crfsuite": %s, "chaincrf": %s}\n' \
        "$(field "$WORK/results/eval-crfsuite.txt" F1)" "$(field "$WORK/results/eval-chaincrf.txt" F1)" \
        >"$WORK/results/f1.json"
fi

# The throughput input: pku_test.utf8 repeated SEGMENT_REPEAT times.
make_repeat() {
    local out=$WORK/seg/test-repeat.txt
    : >"$out"
    for _ in $(seq 1 "$SEGMENT_REPEAT"); do cat "$TEST_RAW" >>"$out"; done
}
chars_of() { "$PY" -c 'import sys; print(sum(len(l.rstrip("\r\n")) for l in open(sys.argv[1], encoding="utf-8")))' "$1"; }

if want cws; then
    log "cws train with its defaults"
    timed cws-train "$CHAINCRF" cws train --corpus "$CORPUS" --model "$WORK/models/pku.model" \
        2>"$WORK/logs/cws-train.log"
    make_repeat
    log "cws segment (1 thread)"
    "$CHAINCRF" cws segment --model "$WORK/models/pku.model" --threads 1 "$TEST_RAW" \
        -o "$WORK/seg/words-cws.txt" 2>"$WORK/logs/cws-segment-test.log"
    score "$WORK/seg/words-cws.txt" "$WORK/results/eval-cws.txt"
    for r in 1 2 3; do
        timed "cws-segment-$r" "$CHAINCRF" cws segment --model "$WORK/models/pku.model" --threads 1 \
            "$WORK/seg/test-repeat.txt" -o "$WORK/seg/repeat-out.txt" 2>"$WORK/logs/cws-segment-$r.log"
        timed "cws-segment-t2-$r" "$CHAINCRF" cws segment --model "$WORK/models/pku.model" --threads 2 \
            "$WORK/seg/test-repeat.txt" -o "$WORK/seg/repeat-out-t2.txt" 2>"$WORK/logs/cws-segment-t2-$r.log"
    done
    cmp -s "$WORK/seg/repeat-out.txt" "$WORK/seg/repeat-out-t2.txt" ||
        { echo "cws segment: 1 and 2 threads disagree" >&2; exit 1; }
fi

if want jieba; then
    log "jieba-rs: building a throwaway project"
    J=$WORK/jieba-bench
    mkdir -p "$J/src"
    cat >"$J/Cargo.toml" <<'EOF'
[package]
name = "jieba-bench"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
jieba-rs = "0.11"

[profile.release]
lto = "thin"
codegen-units = 1

[workspace]
EOF
    cat >"$J/src/main.rs" <<'EOF'
//! Segments a file line by line with jieba-rs (default dictionary, HMM on),
//! one output line per input line, words separated by a space. Prints the
//! dictionary load time, characters and segmentation seconds on stderr.
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let t0 = Instant::now();
    let jieba = jieba_rs::Jieba::new();
    let load = t0.elapsed().as_secs_f64();
    let input = BufReader::new(std::fs::File::open(&args[1]).expect("input"));
    let mut out = BufWriter::new(std::fs::File::create(&args[2]).expect("output"));
    let t1 = Instant::now();
    let mut chars = 0usize;
    for line in input.lines() {
        let line = line.expect("read");
        let line = line.trim_end_matches('\r');
        chars += line.chars().count();
        let words: Vec<&str> = jieba.cut(line, true).into_iter().map(|t| t.word).collect();
        out.write_all(words.join(" ").as_bytes()).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
    let secs = t1.elapsed().as_secs_f64();
    eprintln!("load {load:.3} chars {chars} seconds {secs:.3} chars/s {:.0}", chars as f64 / secs);
}
EOF
    (cd "$J" && CARGO_TARGET_DIR="$J/target" cargo build --release -q)
    make_repeat
    "$J/target/release/jieba-bench" "$TEST_RAW" "$WORK/seg/words-jieba.txt" 2>"$WORK/logs/jieba-test.log"
    score "$WORK/seg/words-jieba.txt" "$WORK/results/eval-jieba.txt"
    for r in 1 2 3; do
        timed "jieba-$r" "$J/target/release/jieba-bench" "$WORK/seg/test-repeat.txt" \
            "$WORK/seg/repeat-jieba.txt" 2>"$WORK/logs/jieba-$r.log"
    done
fi

# The figures of three `cws segment` runs NAME-{1,2,3} (their medians) as JSON fields.
segment_figures() {
    local name=$1 walls=() rss=() loads=() w m l
    for r in 1 2 3; do
        read -r w m < <(tail -n1 "$WORK/time/$name-$r.txt")
        walls+=("$w") rss+=("$m")
        loads+=("$(sed -n 's/.*model loaded in \([0-9.]*\)s.*/\1/p' "$WORK/logs/$name-$r.log")")
    done
    w=$(printf '%s\n' "${walls[@]}" | sort -g | sed -n 2p)
    m=$(printf '%s\n' "${rss[@]}" | sort -g | sed -n 2p)
    l=$(printf '%s\n' "${loads[@]}" | sort -g | sed -n 2p)
    printf '"f1": %s, "oov_recall": %s, "cps": %s, "cps_wall": %s, "load_seconds": %s, "rss": %s' \
        "$(field "$WORK/results/eval-cws.txt" F1)" "$(field "$WORK/results/eval-cws.txt" 'OOV recall')" \
        "$(echo "$CHARS / ($w - $l)" | bc -l)" "$(echo "$CHARS / $w" | bc -l)" "$l" "$(echo "$m / 1024" | bc -l)"
}

# Collects the segmenter figures into results/cws.json.
if want cws || want jieba; then
    CHARS=$(chars_of "$WORK/seg/test-repeat.txt")
    {
        printf '{"repeat": %s, "chars": %s' "$SEGMENT_REPEAT" "$CHARS"
        if [[ -f $WORK/time/cws-segment-3.txt ]]; then
            printf ', "chaincrf": {%s}' "$(segment_figures cws-segment)"
            if [[ -f $WORK/time/cws-segment-t2-3.txt ]]; then
                printf ', "chaincrf_t2": {%s}' "$(segment_figures cws-segment-t2)"
            fi
            read -r tw tm < <(tail -n1 "$WORK/time/cws-train.txt")
            summary=$(grep -E '^trained on' "$WORK/logs/cws-train.log" | tail -n1)
            printf ', "train": {"seconds": %s, "rss": %s, "model_bytes": %s, "threads": %s, "summary": "%s"}' \
                "$tw" "$(echo "$tm / 1024" | bc -l)" "$(stat -c %s "$WORK/models/pku.model")" "$(nproc)" "$summary"
        fi
        if [[ -f $WORK/time/jieba-3.txt ]]; then
            cps=() cpw=() rss=() loads=()
            for r in 1 2 3; do
                read -r w m < <(tail -n1 "$WORK/time/jieba-$r.txt")
                cps+=("$(sed -n 's/.*chars\/s \([0-9.]*\).*/\1/p' "$WORK/logs/jieba-$r.log")")
                cpw+=("$(echo "$CHARS / $w" | bc -l)") rss+=("$m")
                loads+=("$(sed -n 's/^load \([0-9.]*\) .*/\1/p' "$WORK/logs/jieba-$r.log")")
            done
            med() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
            printf ', "jieba": {"f1": %s, "oov_recall": %s, "cps": %s, "cps_wall": %s, "load_seconds": %s, "rss": %s}' \
                "$(field "$WORK/results/eval-jieba.txt" F1)" "$(field "$WORK/results/eval-jieba.txt" 'OOV recall')" \
                "$(med "${cps[@]}")" "$(med "${cpw[@]}")" "$(med "${loads[@]}")" "$(echo "$(med "${rss[@]}") / 1024" | bc -l)"
        fi
        printf '}\n'
    } >"$WORK/results/cws.json"
fi

# One chaincrf series of the dev curve: NAME "CAPS" [extra train args]; each cap
# is a training run on 1 thread, tagged and scored on the held-out sequences.
curve_chaincrf() {
    local name=$1 caps=$2
    shift 2
    : >"$WORK/results/curve-$name.jsonl"
    for cap in $caps; do
        log "dev curve: $name, $cap L-BFGS iterations"
        TRAIN_DATA=$CURVE_TRAIN run_chaincrf "curve-$name-$cap" 1 --max-iterations "$cap" "$@"
        "$CHAINCRF" tag --model "$WORK/models/curve-$name-$cap.model" "$CURVE_DEV" \
            >"$WORK/seg/curve-$name-$cap.tags"
        "$PY" "$DRIVER" curve-point "$CURVE_DEV" "$WORK/seg/curve-$name-$cap.tags" \
            "$WORK/results/curve-$name-$cap.json" "$cap" >>"$WORK/results/curve-$name.jsonl"
    done
    "$PY" -c 'import json, sys; json.dump([json.loads(l) for l in open(sys.argv[1])], open(sys.argv[2], "w"), indent=1)' \
        "$WORK/results/curve-$name.jsonl" "$WORK/results/curve-$name.json"
}

if want curve; then
    CURVE_TRAIN=$WORK/data/curve-train.crfsuite
    CURVE_DEV=$WORK/data/curve-dev.crfsuite
    if [[ ! -s $CURVE_TRAIN || $CURVE_TRAIN -ot $TRAIN_DATA ]]; then
        log "dev curve: every 20th training sequence held out"
        "$PY" "$DRIVER" split "$TRAIN_DATA" "$CURVE_TRAIN" "$CURVE_DEV" 20
    fi
    tools=${CURVE_TOOLS:-crfsuite chaincrf chaincrf-sgd}
    if [[ " $tools " == *" crfsuite "* ]]; then
        log "dev curve: CRFsuite, caps $CURVE_CAPS"
        "$PY" "$DRIVER" curve-crfsuite "$CURVE_TRAIN" "$CURVE_DEV" "$CURVE_CAPS" \
            "$WORK/results/curve-crfsuite.json" "$WORK/models" 2>"$WORK/logs/curve-crfsuite.log"
    fi
    if [[ " $tools " == *" chaincrf "* ]]; then
        curve_chaincrf chaincrf "$CURVE_CAPS"
    fi
    if [[ " $tools " == *" chaincrf-sgd "* ]]; then
        curve_chaincrf chaincrf-sgd "$CURVE_SGD_CAPS" --sgd-epochs "$CURVE_SGD_EPOCHS"
    fi
fi

if want plot; then
    log "plotting loss against seconds: $PLOT_OUT"
    "$PY" "$DRIVER" plot "$WORK" "$PLOT_OUT"
fi

if want report; then
    {
        echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
        echo "python-crfsuite: $(cut -d' ' -f2 "$WORK/crfsuite-version.txt" 2>/dev/null || echo '?')"
        if [[ -s $WORK/load-samples.log ]]; then
            echo "1-minute load average, sampled every 30 s during the run: $(cut -f2 "$WORK/load-samples.log" | cut -d' ' -f1 | sort -g |
                awk '{a[NR]=$1} END {printf "min %s, median %s, max %s (%d samples)", a[1], a[int((NR+1)/2)], a[NR], NR}')"
        fi
        echo "Load average before each measured run: $WORK/load.log"
        echo
    } >"$WORK/report-head.md"
    cat "$WORK/report-head.md"
    FULL_MAX_ITERATIONS=$FULL_MAX_ITERATIONS CURVE_SGD_EPOCHS=$CURVE_SGD_EPOCHS "$PY" "$DRIVER" report "$WORK" "$SHORT_ITERATIONS" "$REPS"
fi
log "done: $WORK"
