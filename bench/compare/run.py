#!/usr/bin/env python3
"""Side-by-side benchmarks: goro against Go and Boost.Fiber, written up in docs/benchmarks.md.

Builds the three peers (goro's with the project's CMake in Release at -O2, Go's with go build,
Boost.Fiber's with its own small CMake project), runs every workload on every peer interleaved
(goro, Go, Boost.Fiber, goro, Go, ...) so that a slow stretch of a shared machine hits all
three alike, takes the median of each, and writes the table with the targets marked met or not.
bench/compare/notes.md (what was profiled and tried, kept by hand) and bench/compare/micro.md,
the per-operation comparison that micro.py writes, are appended as they are.

    bench/compare/run.py                      # everything, 5 runs each
    bench/compare/run.py --reps 3 --workloads skynet spawn --no-install

A peer prints "<workload> <value>" and exits 0, or prints "<workload> n/a" when it cannot run
that workload yet; anything else (a wrong result, a crash, a deadlock) is a failure, reported
and shown as FAIL.
"""

import argparse
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORKLOADS = {
    "skynet": "1,000,000 leaf goroutines (1,111,111 in all), 10 children each, results summed "
              "back up over unbuffered channels",
    "spawn": "1,000,000 goroutines spawned from main, each calling Done() on one WaitGroup",
    "pingpong": "1,000,000 round trips between two goroutines over two unbuffered channels",
    "buffered": "1 producer, 1 consumer, 1,000,000 ints through a channel of capacity 1024",
    "mpmc": "4 producers, 4 consumers, 1,000,000 ints in all through one channel of capacity 128",
    "idle": "100,000 goroutines parked at once on a channel; peak RSS (VmHWM) while parked "
            "minus VmRSS before spawning, per goroutine",
}
PEERS = {"goro": "goro", "go": "Go", "fiber": "Boost.Fiber"}
# workload: (largest goro/Go ratio, or largest bytes per goroutine for idle)
TARGETS = {"skynet": 0.5, "spawn": 0.5, "pingpong": 0.5, "buffered": 1.0, "mpmc": 1.0,
           "idle": 4.5 * 1024}
GO_CANDIDATES = ["/usr/lib/go-1.19/bin/go", "go"]
# The per-operation micro-benchmarks (bench/compare/micro.py), appended to the output as they are.
MICRO = ROOT / "bench" / "compare" / "micro.md"
NOTES = ROOT / "bench" / "compare" / "notes.md"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    log("+ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def output(cmd, **kw):
    try:
        return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                              check=True, **kw).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def go_binary():
    for c in GO_CANDIDATES:
        path = shutil.which(c)
        if path:
            return path
    return None


def cmake_configure(src, build, extra=()):
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    sh(["cmake", "-S", src, "-B", build, *gen, "-DCMAKE_BUILD_TYPE=Release",
        "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG", *extra], stdout=subprocess.DEVNULL)


def build_peers(build_dir, peers):
    """build_peers() builds the peers asked for and returns {peer: executable}."""
    exes = {}
    jobs = str(os.cpu_count() or 1)
    if "goro" in peers:
        b = build_dir / "goro"
        cmake_configure(ROOT, b, ["-DGORO_BUILD_TESTS=OFF", "-DGORO_BUILD_EXAMPLES=OFF",
                                  "-DGORO_BUILD_BENCH=ON", "-DGORO_SANITIZE="])
        sh(["cmake", "--build", b, "--target", "goro_peer", "-j", jobs])
        exes["goro"] = b / "bench" / "goro_peer"
    if "go" in peers:
        b = build_dir / "go"
        if not go_binary():
            sys.exit("run.py: no Go (GORO_WITH_PEERS=1 scripts/install-deps.sh installs it)")
        env = dict(os.environ, GOCACHE=str(b / "cache"), GOPATH=str(b / "path"),
                   GOFLAGS="-mod=mod", GOPROXY="off", GO111MODULE="on", CGO_ENABLED="0")
        sh([go_binary(), "build", "-o", b / "go_peer", "."], cwd=ROOT / "bench/peers/go", env=env)
        exes["go"] = b / "go_peer"
    if "fiber" in peers:
        b = build_dir / "boostfiber"
        cmake_configure(ROOT / "bench/peers/boostfiber", b)
        sh(["cmake", "--build", b, "-j", jobs])
        exes["fiber"] = b / "boostfiber_peer"
    return exes


class Failure(str):
    """Failure is a run that failed: its text says how."""


def run_once(exe, workload, timeout):
    """run_once() returns the value the peer printed, "n/a", or a Failure."""
    try:
        p = subprocess.run([str(exe), workload], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Failure(f"timed out after {timeout} s")
    if p.returncode == 0 and p.stdout.strip() == f"{workload} n/a":
        return "n/a"
    m = re.fullmatch(rf"{workload} (\d+(?:\.\d+)?)", p.stdout.strip())
    if p.returncode != 0 or not m:
        why = (p.stderr.strip() or p.stdout.strip()).splitlines()
        return Failure(f"exit status {p.returncode}" + (f": {why[-1]}" if why else ""))
    return float(m.group(1))


def measure(exes, workloads, reps, timeout):
    """measure() returns {workload: {peer: [value or Failure, ...] or "n/a"}}. A failed run
    does not stop the others, so that a flaky failure shows as one among them."""
    results = {}
    for w in workloads:
        res = {p: [] for p in exes}
        for rep in range(reps):
            for p, exe in exes.items():
                if res[p] == "n/a":
                    continue
                v = run_once(exe, w, timeout)
                log(f"{w} rep {rep + 1}/{reps} {p}: {v}")
                if v == "n/a" and not isinstance(v, Failure):
                    res[p] = "n/a"
                else:
                    res[p].append(v)
        results[w] = res
    return results


def values(runs):
    return [v for v in runs if isinstance(v, float)] if isinstance(runs, list) else []


def failures(runs):
    return [v for v in runs if isinstance(v, Failure)] if isinstance(runs, list) else []


def median(runs):
    v = values(runs)
    return statistics.median(v) if v and not failures(runs) else None


def fmt(x, idle):
    if x is None:
        return "n/a"
    return f"{x:.0f}" if idle or x >= 100 else f"{x:.1f}"


def cell(runs, idle):
    """cell() is a peer's entry in the results table: median, n/a, or FAIL."""
    if runs == "n/a":
        return "n/a"
    if failures(runs):
        return f"FAIL ({len(failures(runs))} of {len(runs)} runs)"
    return fmt(median(runs), idle)


def machine():
    lscpu = output(["lscpu"])
    m = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
    boost = ""
    version_hpp = Path("/usr/include/boost/version.hpp")
    if version_hpp.exists():
        m2 = re.search(r'#define BOOST_LIB_VERSION "([^"]+)"', version_hpp.read_text())
        boost = m2.group(1).replace("_", ".") if m2 else ""
    commit = output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
    if output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "include"]):
        commit += " with uncommitted changes in include/"
    return [
        ("Date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", m.group(1).strip() if m else "unknown"),
        ("Cores (nproc)", output(["nproc"])),
        ("Kernel", output(["uname", "-sr"])),
        ("C++ compiler", (output(["c++", "--version"]).splitlines() or ["unknown"])[0]
         + ", -O2 (CMake Release)"),
        ("Go", output([go_binary(), "version"]) if go_binary() else "not installed"),
        ("Boost", boost or "unknown"),
        ("goro", "commit " + commit),
        ("Load average before the runs",
         " ".join(Path("/proc/loadavg").read_text().split()[:3])),
    ]


def verdict(w, goro, go):
    """verdict() says whether goro meets workload w's target."""
    target = TARGETS[w]
    if w == "idle":
        if goro is None:
            return f"≤ {target / 1024:g} KiB/goroutine", "n/a"
        return f"≤ {target / 1024:g} KiB/goroutine", "met" if goro <= target else "not met"
    if goro is None or go is None:
        return f"≤ {target:g}x Go", "n/a"
    return f"≤ {target:g}x Go", "met" if goro / go <= target else "not met"


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def render(info, results, reps, peers):
    others = [p for p in peers if p != "goro"] if "goro" in peers else []
    lines = [
        "# Benchmarks: goro, Go and Boost.Fiber side by side",
        "",
        "Written by `bench/compare/run.py` (`cmake --build <build> --target compare` runs it);",
        "rerun it rather than editing this file. It installs Go 1.19 and Boost.Fiber if they are",
        "missing (`GORO_WITH_PEERS=1 scripts/install-deps.sh`), builds the three peers, which are",
        "the same program three times (`bench/compare/goro_peer.cpp`, `bench/peers/go/main.go`,",
        "`bench/peers/boostfiber/main.cpp`), and runs them. `--reps`, `--workloads` and `--peers`",
        "narrow a run. goro's own micro-benchmarks (Google Benchmark, built by default) are",
        "`<build>/bench/go_bench`, `sync_bench`, `chan_bench` and `switch_bench`; the last",
        "section, per operation against Go, is `bench/compare/micro.py`'s.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in info]
    lines += [
        "",
        "## Results",
        "",
        f"Median of {reps} runs, the peers interleaved. Milliseconds, lower is better; idle is",
        "bytes of resident memory per parked goroutine. n/a: the peer cannot run the workload yet.",
        "",
    ]
    load = float(dict(info)["Load average before the runs"].split()[0])
    cores = os.cpu_count() or 1
    if load > cores / 2:
        lines += [
            f"The machine was busy (load {load:g} on {cores} cores), so the numbers are noisy:",
            "read the ratios, not the absolute times, and the spread in \"Every run\".",
            "",
        ]
    lines += [
        "| Workload | " + " | ".join([PEERS[p] for p in peers]
                                    + [f"goro/{PEERS[p]}" for p in others]) + " | Target | Met |",
        "|---|" + "---:|" * (len(peers) + len(others)) + "---|---|",
    ]
    for w, res in results.items():
        idle = w == "idle"
        med = {p: median(res[p]) for p in peers}
        cells = [cell(res[p], idle) for p in peers]
        target, met = verdict(w, med.get("goro"), med.get("go"))
        if "goro" in res and failures(res["goro"]):
            met = "not met: goro failed"
        cells += [ratio(med.get("goro"), med[p]) for p in others]
        lines.append(f"| {w} | " + " | ".join(cells) + f" | {target} | {met} |")
    lines += ["", "Every run:", "", "| Workload | Peer | Runs |", "|---|---|---|"]
    for w, res in results.items():
        for p in peers:
            v = res[p]
            runs = "n/a" if v == "n/a" else ", ".join(
                "FAIL" if isinstance(x, Failure) else fmt(x, w == "idle") for x in v)
            lines.append(f"| {w} | {PEERS[p]} | {runs} |")
    failed = [(w, p, f) for w, res in results.items() for p in peers for f in failures(res[p])]
    if failed:
        lines += ["", "Failed runs:", ""]
        lines += [f"- {w}, {PEERS[p]}: {f}" for w, p, f in failed]
    lines += ["", "## Workloads", ""]
    lines += [f"- **{w}**: {d}." for w, d in WORKLOADS.items() if w in results]
    lines += [
        "",
        "Each peer times the workload inside the process, from its first spawn to the verified",
        "result, with its runtime already started (goro's workers are started before the clock,",
        "as Go's are before `main`). A wrong result (skynet's 499999500000, the sums of buffered",
        "and mpmc) fails the run. All peers use every core: GOMAXPROCS defaults to nproc in Go",
        "and goro, and Boost.Fiber runs one scheduler thread per hardware thread.",
        "",
        "## How the peers differ",
        "",
        "- **Boost.Fiber** uses `algo::work_stealing` on every hardware thread, as its own skynet",
        "  benchmarks do, and detached fibers on 16 KiB `fixedsize_stack` stacks (Boost's skynet",
        "  uses 4 KiB; neither grows). Its idle threads sleep (`suspend = true`), as goro's and",
        "  Go's do; with Boost's default, polling, pingpong ran several times slower on a busy",
        "  machine. `buffered_channel` needs a power-of-two capacity and holds one value less, so",
        "  capacity 1024 is `buffered_channel(1024)` holding 1023 values and 128 is",
        "  `buffered_channel(128)` holding 127. Boost has no WaitGroup: the peer has one of a",
        "  dozen lines (an atomic counter, a fiber condition variable at zero). skynet's channels",
        "  are `shared_ptr`s, because a Boost channel must outlive a `push()` that has already",
        "  handed its value over; Go and goro channels are shared handles anyway.",
        "- **idle**: Go's goroutines start on 2 KiB stacks that are moved as they grow; goro's and",
        "  Boost.Fiber's never move, so they commit whole pages.",
        "",
    ]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="runs of each workload on each peer")
    ap.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    ap.add_argument("--peers", nargs="+", choices=list(PEERS), default=list(PEERS))
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build-compare")
    ap.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--timeout", type=int, default=300, help="seconds allowed for one run")
    ap.add_argument("--no-install", action="store_true",
                    help="skip `GORO_WITH_PEERS=1 scripts/install-deps.sh`")
    args = ap.parse_args()

    if not args.no_install:
        sh([ROOT / "scripts" / "install-deps.sh"], env=dict(os.environ, GORO_WITH_PEERS="1"))
    peers = [p for p in PEERS if p in args.peers]
    exes = build_peers(args.build_dir.resolve(), peers)
    info = machine()
    results = measure(exes, args.workloads, args.reps, args.timeout)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    text = render(info, results, args.reps, peers)
    for extra in (NOTES, MICRO):  # hand-kept and micro.py's sections, not measured here
        if extra.exists():
            text = text.rstrip("\n") + "\n\n" + extra.read_text()
    args.output.write_text(text)
    log(f"wrote {args.output}")
    failed = any(failures(runs) for res in results.values() for runs in res.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
