#!/usr/bin/env python3
"""bench/specials/run.py [weak] [cleanup] [--quick] [--runs N] [--threads T] -- the
`weak` and `cleanup` suites (issue #6).

Owns: building bench/specials/specials.c for rtgc (the release library in
bench/build-release) and for Boehm (libgc.a) with the same flags, running
every (workload, system, specials=1/0) triple round-robin, and writing
bench/results/specials.md and bench/results/specials.json.  Python 3 stdlib
only.

Pauses: rtgc runs with RTDEBUG=gctrace=1 and each cycle's two stop-the-world
pauses (the first and third clock terms of its trace line) are read from
stderr; Boehm's pause is each whole collection, which the program times with
GC_set_on_collection_event.  Only pauses inside the churn phase count, and the
pauses of all runs of a triple are pooled before taking percentiles (a run has
only tens of cycles, so a per-run p99 would be its max).  Every other figure
is the median over the runs that passed.  The "extra" pause of the specials
is the specials=1 figure minus the specials=0 one.  See bench/README.md.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BUILD = ROOT / "bench" / "build"
RELEASE = ROOT / "bench" / "build-release"
OUT = ROOT / "bench" / "results"
LIBGC = Path("/usr/lib/x86_64-linux-gnu/libgc.a")
CC = os.environ.get("CC", "cc")
CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-D_GNU_SOURCE"]
TRACE = re.compile(r"^gc (\d+) @([\d.]+)s (\d+)%: ([\d.]+)\+([\d.]+)\+([\d.]+) ms clock")
SYSTEMS = ["rtgc", "boehm"]
NAMES = {"rtgc": "rtgc", "boehm": "Boehm"}
# The size: a million specials in both modes; --quick shortens the churn.
PARAMS = {
    "weak":    {"full": {"n": 1_000_000, "ops": 8_000_000, "live_mb": 64},
                "quick": {"n": 1_000_000, "ops": 2_000_000, "live_mb": 32}},
    "cleanup": {"full": {"n": 1_000_000, "ops": 6_000_000, "live_mb": 64},
                "quick": {"n": 1_000_000, "ops": 3_000_000, "live_mb": 32}},
}
SCRUB = ("RT", "GOGC", "GODEBUG", "GOMAXPROCS", "GOMEMLIMIT", "GC_", "LD_PRELOAD", "MALLOC_CONF", "MIMALLOC")


def log(msg):
    print(msg, flush=True)


def sh(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"specials: build failed: {' '.join(map(str, cmd))}\n{p.stdout[-3000:]}")
    return p.stdout


def build():
    """Both binaries and the run helper; the release library is (re)built with
    ninja first, since others may be editing the library under us."""
    BUILD.mkdir(parents=True, exist_ok=True)
    if not (RELEASE / "build.ninja").exists():
        sh(["meson", "setup", str(RELEASE), "-Dbuildtype=release", "-Db_ndebug=true", "-Dtests=false"], cwd=ROOT)
    sh(["ninja", "-C", str(RELEASE)])
    src = str(HERE / "specials.c")
    bins = {"rtgc": BUILD / "specials.rtgc", "boehm": BUILD / "specials.boehm"}
    warnings = sh([CC] + CFLAGS + ["-DSPECIALS_RTGC", "-I", str(ROOT / "include"), src, str(RELEASE / "librtgc.a"),
                   "-lpthread", "-o", str(bins["rtgc"])])
    warnings += sh([CC] + CFLAGS + ["-DSPECIALS_BOEHM", src, str(LIBGC), "-lpthread", "-o", str(bins["boehm"])])
    if warnings.strip():
        log("specials: compiler output:\n" + warnings.strip())
    # bench/runone.c measures one process with wait4 without the Python
    # runner's own RSS leaking into ru_maxrss; built under our own name.
    runone = BUILD / "specials.runone"
    sh([CC, "-O2", "-Wall", "-Wextra", str(ROOT / "bench" / "runone.c"), "-o", str(runone)])
    return bins, runone


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def run_once(exe, runone, system, args, timeout):
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB)}
    if system == "rtgc":
        env["RTDEBUG"] = "gctrace=1"
    with tempfile.TemporaryDirectory() as td:
        meas = Path(td) / "m"
        p = subprocess.run([str(runone), str(meas), str(int(timeout)), str(exe)] + args, env=env,
                           capture_output=True, text=True)
        try:
            wall, user, sys_, rss_kb, minflt, majflt, status, timed_out = meas.read_text().split()[:8]
        except (OSError, ValueError):
            wall = user = sys_ = rss_kb = "0"
            timed_out = "0"
    kv = dict(re.findall(r"^(\w+)=(\S+)$", p.stdout, re.M))
    r = {"system": system, "args": args, "exit": p.returncode, "wall_s": float(wall),
         "cpu_s": round(float(user) + float(sys_), 3), "maxrss_mb": round(int(rss_kb) / 1024, 1),
         "figures": {k: (float(v) if re.fullmatch(r"-?[\d.]+(e-?\d+)?", v) else v) for k, v in kv.items()}}
    r["ok"] = p.returncode == 0 and kv.get("check") == "ok" and "phase_end_s" in kv
    if not r["ok"]:
        why = "timed out" if timed_out == "1" else f"exit {p.returncode}, check={kv.get('check')}"
        r["error"] = why + ": " + " | ".join((p.stderr.strip().splitlines() or [""])[-4:])[-600:]
        return r
    t0, t1 = float(kv["phase_start_s"]), float(kv["phase_end_s"])
    pauses, cycles, stw = [], [], []
    if system == "boehm":
        for m in re.finditer(r"^pause ([\d.]+) ([\d.]+) ([\d.]+)$", p.stdout, re.M):
            at, whole, s = float(m.group(1)), float(m.group(2)), float(m.group(3))
            if t0 <= at <= t1:
                pauses.append(whole)
                cycles.append(whole)
                stw.append(s)
    else:
        for line in p.stderr.splitlines():
            m = TRACE.match(line)
            if not m:
                continue
            at, a, b, c = float(m.group(2)), float(m.group(4)), float(m.group(5)), float(m.group(6))
            if t0 <= at <= t1:
                pauses += [a, c]
                cycles.append(a + b + c)
    r["pauses_ms"] = pauses
    r["cycles_ms"] = cycles
    if stw:
        r["boehm_stw_ms"] = stw
    f = r["figures"]
    f["phase_s"] = round(t1 - t0, 3)
    f["cycles"] = len(cycles)
    f["cycle_ms"] = statistics.median(cycles) if cycles else None
    f["ms_between_cycles"] = (t1 - t0) * 1e3 / len(cycles) if cycles else None
    return r


def summarize(runs):
    ok = [r for r in runs if r["ok"]]
    s = {"runs": len(runs), "ok": len(ok)}
    if not ok:
        return s
    keys = sorted({k for r in ok for k, v in r["figures"].items() if isinstance(v, (int, float))})
    med = {}
    for k in keys:
        vals = [r["figures"][k] for r in ok if isinstance(r["figures"].get(k), (int, float))]
        if vals:
            med[k] = statistics.median(vals)
    for k in ("wall_s", "cpu_s", "maxrss_mb"):
        med[k] = statistics.median(r[k] for r in ok)
    s["medians"] = med
    pool = sorted(x for r in ok for x in r["pauses_ms"])
    s["pauses"] = {"count": len(pool), "p50_ms": pct(pool, 0.50), "p99_ms": pct(pool, 0.99),
                   "max_ms": pool[-1] if pool else None}
    stw = sorted(x for r in ok for x in r.get("boehm_stw_ms", []))
    if stw:
        s["boehm_stw"] = {"count": len(stw), "p50_ms": pct(stw, 0.50), "p99_ms": pct(stw, 0.99), "max_ms": stw[-1]}
    return s


def f(x, nd=None):
    if x is None:
        return "–"
    if nd is not None:
        return f"{x:.{nd}f}"
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 0.1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "–"


def table(wl, summ):
    """The markdown for one workload: per-operation and per-cycle figures,
    then pauses with and without the specials."""
    def med(system, sp, key):
        s = summ.get((wl, system, sp), {})
        return s.get("medians", {}).get(key)

    def okcount(system, sp):
        s = summ.get((wl, system, sp), {})
        return f"{s.get('ok', 0)}/{s.get('runs', 0)}"

    L = []
    rows = []
    if wl == "weak":
        rows += [("ns per weak make (fill: new entry for an existing object)", 1, "make_ns", None),
                 ("ns per churn op, specials=1 (alloc value + weak make)", 1, "churn_ns", None),
                 ("ns per churn op, specials=0 (alloc value only)", 0, "churn_ns", None),
                 ("ns per weak get (random key, table of 1 M)", 1, "get_ns", None),
                 ("hit rate of the gets", 1, "hit_rate", 3)]
    else:
        rows += [("ns per cleanup registration (fill: on an existing object)", 1, "register_ns", None),
                 ("ns per churn op, specials=1 (alloc + register)", 1, "churn_ns", None),
                 ("ns per churn op, specials=0 (alloc only)", 0, "churn_ns", None),
                 ("ms from drop to all cleanups run", 1, "drain_ms", None),
                 ("  of which the first full collection", 1, "drain_gc_ms", None),
                 ("cycles from drop to all run", 1, "drain_cycles", 0)]
    rows += [("cycles in the churn phase, specials=1", 1, "cycles", 0),
             ("cycles in the churn phase, specials=0", 0, "cycles", 0),
             ("ms per cycle (median, start to end), specials=1", 1, "cycle_ms", None),
             ("ms per cycle (median, start to end), specials=0", 0, "cycle_ms", None),
             ("ms of churn between cycles, specials=1", 1, "ms_between_cycles", None),
             ("churn phase s, specials=1", 1, "phase_s", None),
             ("churn phase s, specials=0", 0, "phase_s", None),
             ("peak RSS MB, specials=1", 1, "maxrss_mb", 0),
             ("peak RSS MB, specials=0", 0, "maxrss_mb", 0)]
    L += ["| figure (median of runs) | rtgc | Boehm | rtgc / Boehm |", "|---|---:|---:|---:|"]
    for label, sp, key, nd in rows:
        a, b = med("rtgc", sp, key), med("boehm", sp, key)
        L.append(f"| {label} | {f(a, nd)} | {f(b, nd)} | {ratio(a, b) if key != 'hit_rate' else '–'} |")
    L.append(f"| runs passed: specials=1 / specials=0 | {okcount('rtgc', 1)} / {okcount('rtgc', 0)} | "
             f"{okcount('boehm', 1)} / {okcount('boehm', 0)} | |")
    L.append("")
    L += ["| pause ms (all runs pooled) | rtgc, specials=0 | rtgc, specials=1 | rtgc extra | "
          "Boehm, specials=0 | Boehm, specials=1 | Boehm extra |", "|---|---:|---:|---:|---:|---:|---:|"]
    for key, label in (("count", "pauses"), ("p50_ms", "p50"), ("p99_ms", "p99"), ("max_ms", "max")):
        cells = []
        for system in SYSTEMS:
            p0 = summ.get((wl, system, 0), {}).get("pauses", {}).get(key)
            p1 = summ.get((wl, system, 1), {}).get("pauses", {}).get(key)
            if key == "count":
                cells += [f(p0, 0), f(p1, 0), ""]
            else:
                cells += [f(p0), f(p1), "–" if p0 is None or p1 is None else ("+" if p1 >= p0 else "") + f(p1 - p0)]
        L.append(f"| {label} | " + " | ".join(cells) + " |")
    stw = [summ.get((wl, "boehm", sp), {}).get("boehm_stw") for sp in (0, 1)]
    if all(stw):
        L.append("")
        L.append(f"Boehm's world-stopped part alone (the rest of each collection -- finalization, clearing "
                 f"links -- runs under its allocation lock with the world restarted): p50 "
                 f"{f(stw[0]['p50_ms'])} / {f(stw[1]['p50_ms'])} ms, p99 {f(stw[0]['p99_ms'])} / "
                 f"{f(stw[1]['p99_ms'])} ms, max {f(stw[0]['max_ms'])} / {f(stw[1]['max_ms'])} ms "
                 f"(specials=0 / specials=1).")
    return L


def main():
    ap = argparse.ArgumentParser(description="The weak and cleanup benchmarks (rtgc against Boehm).")
    ap.add_argument("workloads", nargs="*", help="weak and/or cleanup (default both)")
    ap.add_argument("--quick", action="store_true", help="shorter churn, 32 MiB ballast (a couple of minutes)")
    ap.add_argument("--runs", type=int, default=3, help="runs per (workload, system, specials) (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="mutator threads (default 1)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a run is killed")
    a = ap.parse_args()
    for w in a.workloads:
        if w not in PARAMS:
            ap.error(f"unknown workload {w!r}; choose from weak, cleanup")
    workloads = [w for w in ("weak", "cleanup") if w in (a.workloads or ["weak", "cleanup"])]
    load_start = os.getloadavg()
    started = time.time()
    log(f"== specials: building (load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f})")
    bins, runone = build()

    plan = []   # (workload, system, specials, args)
    for wl in workloads:
        prm = dict(PARAMS[wl]["quick" if a.quick else "full"], threads=a.threads)
        for system in SYSTEMS:
            for sp in (1, 0):
                args = [f"workload={wl}", f"specials={sp}"] + [f"{k}={v}" for k, v in prm.items()]
                plan.append((wl, system, sp, args))
    runs = {(wl, s, sp): [] for wl, s, sp, _ in plan}
    total, done = len(plan) * a.runs, 0
    log(f"== specials: {total} runs ({a.runs} per triple, round-robin)")
    for i in range(a.runs):
        for wl, system, sp, args in plan:
            r = run_once(bins[system], runone, system, args, a.timeout)
            r["run"] = i + 1
            runs[(wl, system, sp)].append(r)
            done += 1
            fg = r["figures"]
            if r["ok"]:
                key = ("make_ns" if wl == "weak" else "register_ns") if sp else "churn_ns"
                pz = sorted(r["pauses_ms"])
                status = (f"{key} {fg[key]:.0f}, {fg['cycles']} cycles, pause p50 {f(pct(pz, .5))} "
                          f"max {f(pz[-1] if pz else None)} ms")
            else:
                status = "FAILED: " + r["error"][:300]
            log(f"[{done}/{total}] {wl} {system} specials={sp} run {i + 1}: {status} ({r['wall_s']:.1f} s)")

    summ = {k: summarize(v) for k, v in runs.items()}
    load_end = os.getloadavg()
    elapsed = time.time() - started
    meta = {
        "generated": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "bench/specials/run.py " + " ".join(sys.argv[1:]),
        "quick": a.quick, "runs": a.runs, "threads": a.threads, "cflags": CFLAGS,
        "params": {wl: PARAMS[wl]["quick" if a.quick else "full"] for wl in workloads},
        "host": {"platform": platform.platform(), "nproc": os.cpu_count()},
        "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in load_end],
        "elapsed_s": round(elapsed, 1),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    records = [{"workload": wl, "system": s, "specials": sp, "summary": summ[(wl, s, sp)],
                "runs": runs[(wl, s, sp)]} for wl, s, sp, _ in plan]
    (OUT / "specials.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1) + "\n")

    L = [f"# weak and cleanup: rtgc against Boehm ({meta['generated']})", "",
         f"`{meta['command']}`{' (--quick)' if a.quick and '--quick' not in meta['command'] else ''}: "
         f"{a.runs} runs per (workload, system, specials) round-robin, {a.threads} mutator thread(s), "
         f"{os.cpu_count()} CPUs; {elapsed / 60:.1f} min. Load average at start "
         f"{' '.join(f'{x:.2f}' for x in load_start)}, at end {' '.join(f'{x:.2f}' for x in load_end)}"
         f"{' (busy machine: treat small differences as noise)' if max(load_start[0], load_end[0]) > 1.5 else ''}.",
         ""]
    for wl in workloads:
        p = PARAMS[wl]["quick" if a.quick else "full"]
        if wl == "weak":
            L += [f"## weak: {p['n']:,} weak entries, {p['ops']:,} churn ops, {p['live_mb']} MiB ballast", "",
                  "A table of n weak entries over values of 64 bytes, a quarter of them held strongly. "
                  "Each churn op replaces a strong value (new value, new weak entry) or fills an unheld key "
                  "with a value dropped at once; 4 random lookups per op; 256 bytes of other garbage per op. "
                  "specials=0: the same allocations, no weak entries (lookups read the strong array). "
                  "rtgc: rt_weak_make / rt_weak_get, handles kept in a heap array. Boehm: "
                  "GC_general_register_disappearing_link on hidden pointers in a malloc'd table, read "
                  "under GC_call_with_alloc_lock.", ""]
        else:
            L += [f"## cleanup: {p['n']:,} live objects with cleanups, {p['ops']:,} churn ops, "
                  f"{p['live_mb']} MiB ballast", "",
                  "n objects of 64 bytes each with a cleanup (counting its id) are kept live; each churn op "
                  "replaces a random one with a new object with a new cleanup, so the replaced one's cleanup "
                  "runs; 256 bytes of other garbage per op. Then all are dropped and collections run until "
                  "every cleanup ran (each exactly once: checked). specials=0: the same allocations without "
                  "cleanups. rtgc: rt_add_cleanup (arg = the id), run on rtgc's cleanup thread. Boehm: "
                  "GC_register_finalizer_no_order, finalize-on-demand, run by a finalizer thread woken by "
                  "GC_set_finalizer_notifier.", ""]
        L += table(wl, summ)
        fails = [r for k, v in runs.items() if k[0] == wl for r in v if not r["ok"]]
        if fails:
            L += ["", "Failed runs:", ""]
            L += [f"- {r['system']} {' '.join(r['args'])} run {r['run']}: {r['error']}" for r in fails]
        L.append("")
    L += ["How to read: per-op figures are per mutator thread (time inside the timed loop / ops), medians "
          "over runs. A cycle's time is rtgc's gctrace clock total (mark start + concurrent mark + mark "
          "termination) and Boehm's whole collection. Pauses: rtgc both stop-the-world pauses of each cycle "
          "(gctrace), Boehm each whole collection; only those during the churn phase; pooled over the runs. "
          "\"extra\" = specials=1 minus specials=0. rtgc / Boehm below 1 means rtgc is faster.", ""]
    (OUT / "specials.md").write_text("\n".join(L))
    print("\n".join(L))
    bad = sum(1 for v in runs.values() for r in v if not r["ok"])
    log(f"== specials: wrote bench/results/specials.md and specials.json ({elapsed:.0f} s, {bad} failed runs)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
