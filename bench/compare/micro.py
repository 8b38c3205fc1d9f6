#!/usr/bin/env python3
"""Per-operation micro-benchmarks, goro against Go, written to bench/compare/micro.md.

goro's side is bench/chan_bench.cpp (ports of the channel and select benchmarks of Go's
runtime/chan_test.go) and bench/switch_bench.cpp (the context-switch floor); Go's side is
chan_test.go itself, run from the installed Go tree, and bench/peers/go/switch_test.go. Both
run in the same session, one after the other, with the same number of repetitions and the same
minimum time per benchmark, and the table holds the medians.

    bench/compare/micro.py                 # build, run (3 repetitions each), write micro.md
    bench/compare/micro.py --reps 5 --min-time 1

run.py appends micro.md to docs/benchmarks.md whenever it writes that file, so the section
survives its regeneration; this script also replaces the section in docs/benchmarks.md now
when given --update-docs.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import run  # the side-by-side harness beside this file: shared helpers
from run import log, output, sh

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Micro-benchmarks (per operation)"
LOAD = "Load average (1, 5, 15 min) before / after"

# goro's benchmark (Google Benchmark run name) and Go's (without "Benchmark" and "-procs").
CHAN = [
    ("BM_ChanNonblocking/real_time", "ChanNonblocking"),
    ("BM_ChanUncontended/real_time", "ChanUncontended"),
    ("BM_ChanContended/real_time", "ChanContended"),
    ("BM_ChanSync/real_time", "ChanSync"),
    ("BM_ChanProdCons0/real_time", "ChanProdCons0"),
    ("BM_ChanProdCons10/real_time", "ChanProdCons10"),
    ("BM_ChanProdCons100/real_time", "ChanProdCons100"),
    ("BM_SelectUncontended/real_time", "SelectUncontended"),
    ("BM_SelectSyncContended/real_time", "SelectSyncContended"),
    ("BM_SelectAsyncContended/real_time", "SelectAsyncContended"),
    ("BM_SelectNonblock/real_time", "SelectNonblock"),
    ("BM_ChanCreation/real_time", "ChanCreation"),
    ("BM_ChanSem/real_time", "ChanSem"),
    ("BM_ChanPopular/real_time", "ChanPopular"),
]
SWITCH = [
    ("BM_FcontextJump/real_time", None,
     "Boost.Context `jump_fcontext`, two contexts on 64 KiB stacks (ns per jump)"),
    ("BM_YieldSwitch/real_time", "GoschedSwitch",
     "yield ping-pong, GOMAXPROCS=1: `goro::yield()` / `runtime.Gosched()` (ns per yield)"),
    ("BM_ChanSwitch/procs:1/real_time", "ChanSwitch1",
     "park/ready over two unbuffered channels, GOMAXPROCS=1 (ns per hand-off)"),
    ("BM_ChanSwitch/procs:2/real_time", "ChanSwitch2",
     "the same, GOMAXPROCS=2 (ns per hand-off, may cross threads)"),
]
# Go's benchmarks that chan_test.go's benchmarks need besides themselves.
GO_HELPERS = ["benchmarkChanSync", "benchmarkChanProdCons", "localWork"]


def go_binary():
    go = run.go_binary()
    if not go:
        sys.exit("micro.py: no Go (GORO_WITH_PEERS=1 scripts/install-deps.sh installs it)")
    return go


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---- goro ----

def build_goro(build):
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    sh(["cmake", "-S", ROOT, "-B", build, *gen, "-DCMAKE_BUILD_TYPE=Release",
        "-DGORO_BUILD_TESTS=OFF", "-DGORO_BUILD_EXAMPLES=OFF", "-DGORO_BUILD_BENCH=ON",
        "-DGORO_SANITIZE="], stdout=subprocess.DEVNULL)
    sh(["cmake", "--build", build, "--target", "chan_bench", "switch_bench"])


def run_goro(exe, reps, min_time):
    """run_goro() returns {run name: {"ns": [...], "allocs": [...]}} from one process."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        sh([exe, f"--benchmark_repetitions={reps}", f"--benchmark_min_time={min_time}",
            f"--benchmark_out={f.name}", "--benchmark_out_format=json"],
           stdout=sys.stderr)
        data = json.load(open(f.name))
    res = {}
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        r = res.setdefault(b["run_name"], {"ns": [], "allocs": []})
        r["ns"].append(b["real_time"] * scale[b["time_unit"]])
        if "allocs_per_op" in b:
            r["allocs"].append(b["allocs_per_op"])
    return res


# ---- Go ----

GO_LINE = re.compile(r"^Benchmark(\w+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op"
                     r"(?:\s+([\d.]+) B/op\s+([\d.]+) allocs/op)?")


def parse_go(text):
    res = {}
    for line in text.splitlines():
        m = GO_LINE.match(line)
        if m:
            r = res.setdefault(m.group(1), {"ns": [], "allocs": []})
            r["ns"].append(float(m.group(2)))
            if m.group(4) is not None:
                r["allocs"].append(float(m.group(4)))
    return res


def go_env(build):
    return dict(os.environ, GOCACHE=str(build / "gocache"), GOPATH=str(build / "gopath"),
                GOFLAGS="-mod=mod", GOPROXY="off", CGO_ENABLED="0")


def extract_go(src, names):
    """extract_go() is the source of the named top-level functions of a Go file."""
    out = []
    for n in names:
        m = re.search(rf"^func {n}\(.*?^}}\n", src, re.M | re.S)
        if not m:
            sys.exit(f"micro.py: no func {n} in chan_test.go")
        out.append(m.group(0))
    return "\n".join(out)


def run_go_chan(go, build, tmp, reps, min_time):
    """run_go_chan() runs chan_test.go's benchmarks in the Go tree (runtime_test), or, when
    that cannot be built there (a read-only tree), copies of them in a package of their own."""
    goroot = Path(output([go, "env", "GOROOT"]))
    pattern = "^Benchmark(" + "|".join(g for _, g in CHAN) + ")$"
    args = ["test", "-run", "XXX", "-bench", pattern, "-benchmem", "-count", str(reps),
            "-benchtime", f"{int(min_time * 1000)}ms"]
    p = subprocess.run([go, *args, "."], cwd=goroot / "src" / "runtime", env=go_env(build),
                       capture_output=True, text=True)
    if p.returncode == 0:
        return parse_go(p.stdout), "`chan_test.go` itself (`go test runtime`)"
    log(f"go test in {goroot}/src/runtime failed, running copies:\n{p.stderr[-2000:]}")
    src = (goroot / "src" / "runtime" / "chan_test.go").read_text()
    pkg = tmp / "chanbench"
    pkg.mkdir(exist_ok=True)
    (pkg / "go.mod").write_text("module chanbench\n\ngo 1.19\n")
    body = extract_go(src, ["Benchmark" + g for _, g in CHAN] + GO_HELPERS)
    (pkg / "chan_test.go").write_text(
        "// Copied from $GOROOT/src/runtime/chan_test.go by bench/compare/micro.py.\n"
        "package chanbench\n\nimport (\n\t\"runtime\"\n\t\"sync\"\n\t\"sync/atomic\"\n"
        "\t\"testing\"\n)\n\nvar (\n\talwaysFalse = false\n\tworkSink    = 0\n)\n\n" + body)
    p = sh([go, *args, "."], cwd=pkg, env=go_env(build), capture_output=True, text=True)
    return parse_go(p.stdout), "copies of `chan_test.go`'s benchmark functions"


def run_go_switch(go, build, reps, min_time):
    p = sh([go, "test", "-run", "XXX", "-bench", "Switch", "-count", str(reps),
            "-benchtime", f"{int(min_time * 1000)}ms", "."], cwd=ROOT / "bench/peers/go",
           env=go_env(build), capture_output=True, text=True)
    return parse_go(p.stdout)


# ---- the write-up ----

def med(runs, key):
    v = runs.get(key, []) if runs else []
    return statistics.median(v) if v else None


def ns(x):
    if x is None:
        return "n/a"
    if x >= 1e6:
        return f"{x / 1e3:,.0f} µs"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def allocs(x, whole=False):
    """allocs() shows goro's exact mean with two decimals; Go prints whole allocations."""
    if x is None:
        return "n/a"
    return f"{x:.0f}" if whole else f"{x:.2f}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def spread(runs):
    v = runs.get("ns", []) if runs else []
    return ", ".join(ns(x) for x in v) or "n/a"


def render(info, goro, go, go_how, reps, min_time):
    lines = [
        SECTION,
        "",
        "Written by `bench/compare/micro.py` (this section is kept in `bench/compare/micro.md`,",
        "which `run.py` appends here when it rewrites the file). goro's side is",
        "`bench/chan_bench.cpp` and `bench/switch_bench.cpp` (Google Benchmark, Release build);",
        f"Go's is {go_how}",
        "and `bench/peers/go/switch_test.go`. Both ran in the same session, one after the other,",
        "so the ratios compare like with like; the absolute numbers move with the machine's",
        f"load. Each figure is the median of {reps} repetitions of at least {min_time:g} s",
        f"(`--benchmark_repetitions={reps}`; `go test -count {reps}"
        f" -benchtime {int(min_time * 1000)}ms`).",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in info]
    load = max(float(x.split()[0]) for x in dict(info)[LOAD].split(" / "))
    cores = os.cpu_count() or 1
    if load > cores / 2:
        lines += [
            "",
            f"The machine was busy (load up to {load:g} on {cores} cores): read the ratios, and",
            "the spread in \"Every repetition\", rather than the absolute times.",
        ]
    lines += [
        "",
        "### Channels and select (runtime/chan_test.go)",
        "",
        "ns per b.N iteration, as `go test -bench` counts them: one iteration is what the Go",
        "loop body does (100 sends and 100 receives in ChanUncontended and ChanContended, one",
        "value in ChanProdCons, a send to each of 1000 goroutines in ChanPopular). b.RunParallel",
        "is GOMAXPROCS goroutines sharing b.N iterations, as in Go. allocs/op is Go's `-benchmem`",
        "column: heap allocations (operator new for goro) over the run, set-up included, per",
        "iteration; a steady-state send, receive or select allocates nothing, and a fraction",
        "is set-up spread over b.N (ChanPopular's 1000 channels, for instance, whatever b.N).",
        "goro/Go below 1 means goro is faster.",
        "",
        "| Benchmark | goro ns/op | Go ns/op | goro/Go | goro allocs/op | Go allocs/op |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for g, name in CHAN:
        a, b = goro.get(g), go.get(name)
        lines.append(f"| {name} | {ns(med(a, 'ns'))} | {ns(med(b, 'ns'))} | "
                     f"{ratio(med(a, 'ns'), med(b, 'ns'))} | {allocs(med(a, 'allocs'))} | "
                     f"{allocs(med(b, 'allocs'), whole=True)} |")
    floor = med(goro.get(SWITCH[0][0]), "ns")
    lines += [
        "",
        "### The context-switch floor",
        "",
        "ns per switch, a switch being one context stopping and another starting on the same",
        "thread. The floor is Boost.Context's own `jump_fcontext`, which goro switches with.",
        "A yield goes through the worker's scheduler context, two jumps, and the global run",
        "queue, as `runtime.Gosched` does. A park/ready hand-off (a round trip over two",
        "unbuffered channels is two of them) switches from the parking goroutine straight to",
        "the one it readied, one jump (`ontop_fcontext`), except every 8th switch, which",
        "passes through the scheduling loop; its time includes the channel operations around",
        "the switch, a send that readies the peer and a receive that parks.",
        "",
        "| Switch | goro ns | Go ns | goro/Go | goro / jump |",
        "|---|---:|---:|---:|---:|",
    ]
    for g, name, what in SWITCH:
        a = med(goro.get(g), "ns")
        b = med(go.get(name), "ns") if name else None
        lines.append(f"| {what} | {ns(a)} | {ns(b) if name else '-'} | "
                     f"{ratio(a, b) if name else '-'} | {ratio(a, floor)} |")
    lines += ["", "Every repetition (ns):", "", "| Benchmark | goro | Go |", "|---|---|---|"]
    for g, name in CHAN:
        lines.append(f"| {name} | {spread(goro.get(g))} | {spread(go.get(name))} |")
    for g, name, _ in SWITCH:
        label = g.removeprefix("BM_").removesuffix("/real_time")
        lines.append(f"| {label} | {spread(goro.get(g))} | "
                     f"{spread(go.get(name)) if name else '-'} |")
    lines.append("")
    return "\n".join(lines)


def machine(go, load_before, load_after):
    lscpu = output(["lscpu"])
    m = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
    commit = output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]) or "unknown"
    if output(["git", "-C", ROOT, "status", "--porcelain", "--", "include", "bench",
               ":!bench/compare/micro.md"]):
        commit += " with uncommitted changes in include/ or bench/"
    return [
        ("Date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", m.group(1).strip() if m else "unknown"),
        ("Cores (nproc)", output(["nproc"])),
        ("C++ compiler", (output(["c++", "--version"]).splitlines() or ["unknown"])[0]
         + ", CMake Release"),
        ("Go", output([go, "version"])),
        ("goro", "commit " + commit),
        (LOAD, f"{load_before} / {load_after}"),
    ]


def update_docs(text, docs):
    """update_docs() replaces the micro-benchmark section at the end of docs, or appends it."""
    old = docs.read_text() if docs.exists() else ""
    i = old.find(SECTION)
    head = (old[:i] if i >= 0 else old).rstrip("\n")
    docs.write_text(head + "\n\n" + text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per benchmark run")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build-bench")
    ap.add_argument("--output", type=Path, default=ROOT / "bench" / "compare" / "micro.md")
    ap.add_argument("--update-docs", action="store_true",
                    help="also replace the section at the end of docs/benchmarks.md")
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite micro.md from the last run's results, without running")
    args = ap.parse_args()

    go = go_binary()
    build = args.build_dir.resolve()
    saved = build / "micro-results.json"
    if args.render_only:
        r = json.loads(saved.read_text())
    else:
        build_goro(build)
        with tempfile.TemporaryDirectory(prefix="goro-micro-") as t:
            load_before = loadavg()
            goro = run_goro(build / "bench" / "chan_bench", args.reps, args.min_time)
            go_chan, go_how = run_go_chan(go, build, Path(t), args.reps, args.min_time)
            goro.update(run_goro(build / "bench" / "switch_bench", args.reps, args.min_time))
            go_res = {**go_chan, **run_go_switch(go, build, args.reps, args.min_time)}
            load_after = loadavg()
        r = {"info": machine(go, load_before, load_after), "goro": goro, "go": go_res,
             "go_how": go_how, "reps": args.reps, "min_time": args.min_time}
        saved.write_text(json.dumps(r))
    text = render(r["info"], r["goro"], r["go"], r["go_how"], r["reps"], r["min_time"])
    args.output.write_text(text)
    log(f"wrote {args.output}")
    if args.update_docs:
        update_docs(text, ROOT / "docs" / "benchmarks.md")
        log("updated docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
