#!/usr/bin/env python3
"""bench/memory/run.py [rss] [limit] [--quick] [--runs N] -- the `rss` and `limit` suites (issue 7).

Owns: building bench/memory/memory.c for rtgc and Boehm and bench/memory/go
for Go 1.19 into bench/build/, running each system one at a time while
sampling the child's RSS (/proc/PID/statm), CPU (/proc/PID/stat) and, for
rtgc, its scavenger thread's CPU (/proc/PID/task/TID/schedstat) every 50 ms
from here -- the same way for every system -- and writing
bench/results/memory.{md,json,rss.svg,limit.svg}.  Python 3 stdlib only.

Time: every figure is in seconds since the child was spawned.  The programs
print CLOCK_MONOTONIC, which is time.monotonic() here; gctrace's @T counts
from the runtime's start, which the programs mark with a "start" line.
Run `bench/memory/run.py --help` and read bench/README.md for what the
figures mean.
"""
import argparse, datetime, json, os, re, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BUILD = ROOT / "bench" / "build"
RELEASE = ROOT / "bench" / "build-release"
OUT = ROOT / "bench" / "results"
CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-D_GNU_SOURCE"]
LIBGC = "/usr/lib/x86_64-linux-gnu/libgc.a"
GO = os.environ.get("BENCH_GO", "/usr/lib/go-1.19/bin/go")
PERIOD = 0.05
NCPU = os.cpu_count() or 1
PAGE = os.sysconf("SC_PAGE_SIZE")
HZ = os.sysconf("SC_CLK_TCK")
LIMIT_MB = 512
GOGC = 100

# name -> (binary, extra arguments, description)
RSS_SYSTEMS = {
    "rtgc":        ("rtgc", [], "rtgc defaults: the background scavenger alone"),
    "rtgc-free":   ("rtgc", ["free=1"], "rtgc, rt_free_os_memory() instead of rt_gc() after each drop"),
    "rtgc-huge":   ("rtgc", ["rtdebug:hugepages=1"], "rtgc with RTDEBUG=hugepages=1 (heap on transparent huge pages)"),
    "boehm":       ("boehm", [], "Debian libgc 8.2 defaults (unmapping compiled in and on)"),
    "boehm-unmap": ("boehm", ["free=1"], "libgc, GC_gcollect_and_unmap() instead of GC_gcollect() after each drop"),
    "boehm-unmap3": ("boehm", ["free=3"], "libgc, GC_gcollect_and_unmap() three times after each drop"),
    "go":          ("go", [], "Go 1.19, GOGC=100"),
    "go-free":     ("go", ["free=1"], "Go 1.19, debug.FreeOSMemory() instead of runtime.GC() after each drop"),
}
LIMIT_SYSTEMS = {
    "rtgc": ("rtgc", [], f"rtgc, RTMEMLIMIT={LIMIT_MB}MiB"),
    "go":   ("go", [], f"Go 1.19, GOMEMLIMIT={LIMIT_MB}MiB"),
}
PARAMS = {
    "rss":   {"full":  dict(peak_mb=1024, calm_mb=10, hold_s=2, calm_s=12, idle_s=10, rate_mb=32),
              "quick": dict(peak_mb=1024, calm_mb=10, hold_s=1, calm_s=11, idle_s=6, rate_mb=32)},
    "limit": {"full":  dict(target_mb=448, steps=14, step_s=1, hold_s=10, rate_mb=64),
              "quick": dict(target_mb=448, steps=7, step_s=0.75, hold_s=6, rate_mb=64)},
}
SCRUB = ("RT", "GC_", "GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS", "LD_PRELOAD", "MALLOC_CONF")
TRACE = re.compile(r"^gc (\d+) @([\d.]+)s (\d+)%: ([\d.]+)\+([\d.]+)\+([\d.]+) ms clock, "
                   r"([\d.]+)\+([\d.]+)/([\d.]+)/([\d.]+)\+([\d.]+) ms cpu, (\d+)->(\d+)->(\d+) MB, "
                   r"(\d+) MB goal, (\d+) MB stacks, (\d+) MB globals, (\d+) P( \(forced\))?")
SCAV = re.compile(r"^scav (\d+) KiB work(?: \(bg\), (\d+) KiB work \(eager\))?")


def log(msg):
    print(msg, flush=True)


def sh(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"memory: build failed: {' '.join(map(str, cmd))}\n{p.stdout[-2000:]}")
    return p.stdout


def build():
    """Build the three binaries; returns {backend: path}.  A missing Go is skipped."""
    BUILD.mkdir(parents=True, exist_ok=True)
    if not (RELEASE / "build.ninja").exists():
        sh(["meson", "setup", str(RELEASE), "-Dbuildtype=release", "-Db_ndebug=true", "-Dtests=false"], cwd=ROOT)
    sh(["ninja", "-C", str(RELEASE)])
    src = str(HERE / "memory.c")
    bins = {"rtgc": BUILD / "memory.rtgc", "boehm": BUILD / "memory.boehm"}
    for be, extra in (("rtgc", ["-DMEM_RTGC", "-I", str(ROOT / "include"), src, str(RELEASE / "librtgc.a"),
                                "-lpthread"]),
                      ("boehm", ["-DMEM_BOEHM", src, LIBGC, "-lpthread"])):
        out = sh(["cc"] + CFLAGS + extra + ["-o", str(bins[be])])
        if out.strip():
            log(f"   memory.{be}: compiler output:\n{out}")
    if Path(GO).exists():
        env = dict(os.environ, GO111MODULE="off", GOCACHE=str(BUILD / "gocache"))
        sh([GO, "build", "-o", str(BUILD / "memory.go"), "."], cwd=HERE / "go", env=env)
        bins["go"] = BUILD / "memory.go"
    else:
        log(f"   go: {GO} not found; Go is skipped")
    return bins


# ---------------------------------------------------------------- running

def read_rss_cpu(pid):
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * PAGE
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rfind(")") + 2:].split()
    return rss, (int(fields[11]) + int(fields[12])) / HZ


def find_thread(pid, name):
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == name:
                    return tid
    except OSError:
        pass
    return None


def thread_cpu(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def execute(cmd, env, timeout):
    """Run cmd, sampling it every PERIOD s; returns (samples, stdout, stderr, exit, maxrss_mb, wall)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        samples, scav_tid, k, status, ru = [], None, 0, None, None
        while True:
            pid, st, r = os.wait4(p.pid, os.WNOHANG)
            if pid:
                status, ru = st, r
                break
            now = time.monotonic()
            if now - t0 > timeout:
                p.kill()
                _, status, ru = os.wait4(p.pid, 0)
                status = None
                break
            try:
                rss, cpu = read_rss_cpu(p.pid)
                if scav_tid is None:
                    scav_tid = find_thread(p.pid, "rtgc-scavenger")
                scav = thread_cpu(p.pid, scav_tid) if scav_tid else None
                if rss:
                    samples.append((round(now - t0, 4), round(rss / 2**20, 2), round(cpu, 2),
                                    None if scav is None else round(scav, 5)))
            except (OSError, ValueError, IndexError):
                pass
            k = max(k + 1, int((time.monotonic() - t0) / PERIOD))   # skip slots we were late for
            time.sleep(max(0.0, t0 + k * PERIOD - time.monotonic()))
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status) if status is not None else -9
        out.seek(0)
        err.seek(0)
        return samples, out.read(), err.read(), p.returncode, ru.ru_maxrss / 1024, wall, t0


def parse(stdout, stderr, t0):
    """Markers, ticks, kv lines from stdout; gctrace cycles and scavtrace from stderr."""
    markers, ticks, kv, heap = {}, [], {}, {}
    start = None
    for line in stdout.splitlines():
        w = line.split()
        if not w:
            continue
        if w[0] == "start":
            start = float(w[1]) - t0
        elif w[0] == "phase":
            markers[w[1]] = round(float(w[2]) - t0, 4)
        elif w[0] == "tick":
            ticks.append((round(float(w[1]) - t0, 4), float(w[2]), float(w[3]), float(w[4])))
        elif w[0] == "heap":
            heap[w[1]] = {k: float(v) for k, v in (x.split("=") for x in w[2:])}
        elif "=" in w[0] and len(w) == 1:
            k, v = line.split("=", 1)
            kv[k] = v
    cycles, scav_kib = [], 0
    for line in stderr.splitlines():
        m = TRACE.match(line)
        if m:
            g = [float(x) if x else None for x in m.groups()[:18]]
            cpu = g[6] + g[7] + g[8] + g[9] + g[10]
            cycles.append({"n": int(g[0]), "t": round((start or 0) + g[1], 4), "pct": int(g[2]),
                           "clock_ms": g[3] + g[4] + g[5], "cpu_ms": round(cpu, 3),
                           "cpu_noidle_ms": round(cpu - g[9], 3), "heap0": g[11], "heap1": g[12],
                           "marked": g[13], "goal": g[14], "stacks": g[15], "globals": g[16],
                           "forced": bool(m.group(19))})
            continue
        m = SCAV.match(line)
        if m and "(forced)" not in line:
            scav_kib += int(m.group(1)) + int(m.group(2) or 0)
    return {"start": start, "markers": markers, "ticks": ticks, "kv": kv, "heap": heap,
            "cycles": cycles, "scav_released_mb": round(scav_kib / 1024, 1)}


def scrubbed_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(SCRUB)}


def run(suite, system, binary, args, params, timeout):
    env = scrubbed_env()
    be = binary.name.split(".")[-1]
    if be == "rtgc":
        env["RTDEBUG"] = "gctrace=1,scavtrace=1"
        if suite == "limit":
            env["RTMEMLIMIT"] = f"{LIMIT_MB}MiB"
    elif be == "go":
        env["GODEBUG"] = "gctrace=1,scavtrace=1"
        if suite == "limit":
            env["GOMEMLIMIT"] = f"{LIMIT_MB}MiB"
    # "rtdebug:k=v" arguments are RTDEBUG settings for the runtime, not the program's.
    for a in args:
        if a.startswith("rtdebug:"):
            env["RTDEBUG"] += "," + a[len("rtdebug:"):]
    args = [a for a in args if not a.startswith("rtdebug:")]
    cmd = [str(binary), suite] + [f"{k}={v}" for k, v in params.items()] + args
    samples, out, err, rc, maxrss, wall, t0 = execute(cmd, env, timeout)
    rec = {"suite": suite, "system": system, "cmd": cmd[1:], "exit": rc, "wall_s": round(wall, 2),
           "maxrss_mb": round(maxrss, 1), "samples": samples}
    rec.update(parse(out, err, t0))
    rec["ok"] = rc == 0 and rec["kv"].get("check") == "ok"
    if not rec["ok"]:
        rec["error"] = (f"exit {rc}; " + " | ".join((out + err).strip().splitlines()[-6:]))[-800:]
    return rec


# ---------------------------------------------------------------- figures

def rss_at(samples, t0, t1):
    return [s[1] for s in samples if t0 <= s[0] <= t1]


def value_at(series, t):
    """Last (time, value) of series at or before t (series sorted by time)."""
    v = None
    for x, y in series:
        if x > t:
            break
        v = y
    return v


def goal_timeline(cycles):
    """(time, heap goal in MiB) from the end of each cycle: the goal the next
    cycle printed, or for the last cycle the goal its marked heap gives
    (marked + (marked + stacks + globals) x GOGC/100, at least 4 MiB; rtgc
    counts the bytes allocated during the mark once, so for it this is an upper
    bound, exact for the forced cycle after a drop, which allocates nothing)."""
    out = []
    for i, c in enumerate(cycles):
        end = c["t"] + c["clock_ms"] / 1e3
        if i + 1 < len(cycles):
            g = cycles[i + 1]["goal"]
        else:
            g = max(4.0, c["marked"] + (c["marked"] + c["stacks"] + c["globals"]) * GOGC / 100)
        out.append((round(end, 4), g))
    return out


def summarize_rss(r, params):
    S, M = r["samples"], r["markers"]
    r["peak_rss_mb"] = max((s[1] for s in S), default=None)
    base = rss_at(S, r["start"] or 0, M.get("grow1", 0))
    r["baseline_mb"] = statistics.median(base) if base else (S[0][1] if S else 0)
    goals = goal_timeline(r["cycles"])
    live_calm = params["calm_mb"]
    boehm = not r["cycles"]
    r["target_rule"] = "1.1 x live" if boehm else "1.1 x heap goal (gctrace)"
    for k, end_name in ((1, "grow2"), (2, "end")):
        d, c, e = M.get(f"drop{k}"), M.get(f"collected{k}"), M.get(end_name)
        if d is None or e is None:
            continue
        fig = {"drop_s": d, "collected_s": c, "end_s": e, "window_s": round(e - d, 2)}
        after = [g for g in goals if g[0] >= d]

        def ref(t):   # 1.1 x the heap goal in effect at t (Boehm: 1.1 x live)
            if boehm:
                return 1.1 * live_calm
            g = value_at(after, t)
            return None if g is None else 1.1 * g
        reached = next((t for t, rss, _, _ in S if d <= t <= e and ref(t) is not None
                        and rss <= r["baseline_mb"] + ref(t)), None)
        heap_reached = next((t for t, _, _, ret in r["ticks"] if d <= t <= e and ref(t) is not None
                             and ret <= ref(t)), None)
        fig["to_heap_target_s"] = None if heap_reached is None else round(heap_reached - d, 2)
        inwin = [g[1] for g in goals if d <= g[0] <= e]
        fig["goal_mb"] = None if boehm else (inwin[-1] if inwin else None)
        fig["target_mb"] = round(r["baseline_mb"] + 1.1 * (live_calm if boehm else (fig["goal_mb"] or 0)), 1)
        fig["to_target_s"] = None if reached is None else round(reached - d, 2)
        tail = rss_at(S, e - 1.0, e)
        fig["rss_end_mb"] = round(statistics.median(tail), 1) if tail else None
        settled = next((t for t, v, _, _ in S if d <= t <= e and fig["rss_end_mb"] is not None
                        and v <= 1.1 * fig["rss_end_mb"]), None)
        fig["to_settled_s"] = None if settled is None else round(settled - d, 2)
        h = r["heap"].get(end_name, {})
        fig["retained_end_mb"] = (h["heap_mb"] if "heap_mb" in h else
                                  round(h["sys_mb"] - h["released_mb"], 1) if "sys_mb" in h else None)
        # Non-heap: RSS less the runtime's retained heap at the same moment (last sample, last tick).
        last_rss = value_at([(t, v) for t, v, _, _ in S], e)
        last_ret = value_at([(t, ret) for t, _, _, ret in r["ticks"]], e)
        fig["nonheap_end_mb"] = (round(last_rss - last_ret, 1)
                                 if last_rss is not None and last_ret is not None else None)
        at10 = [s[1] for s in S if d + 9.9 <= s[0] <= d + 10.1]
        fig["rss_10s_mb"] = at10[0] if at10 and e - d >= 10 else None
        scav = [(t, sc) for t, _, _, sc in S if sc is not None]
        if scav:
            a = value_at(scav, d) or 0.0
            stop = heap_reached if heap_reached is not None else e
            b, z = value_at(scav, stop), value_at(scav, e)
            fig["scav_cpu_ms"] = round((z - a) * 1e3, 1)
            span = stop - d
            fig["scav_pct_to_target"] = round(100 * (b - a) / span, 2) if span > 0.2 else None
        cpu = [(t, c_) for t, _, c_, _ in S]
        fig["proc_cpu_s"] = round((value_at(cpu, e) or 0) - (value_at(cpu, d) or 0), 2)
        r[f"round{k}"] = fig


def gc_share(cycles, t0, t1, width=1.0, key="cpu_ms"):
    """GC CPU share of all CPUs per window: each cycle's CPU spread evenly over
    its wall-clock span [t, t + clock]."""
    out = []
    w = t0
    while w + width <= t1 + 1e-9:
        cpu = 0.0
        for c in cycles:
            a, b = c["t"], c["t"] + max(c["clock_ms"], 0.001) / 1e3
            ov = max(0.0, min(b, w + width) - max(a, w))
            cpu += c[key] / 1e3 * ov / (b - a)
        out.append((round(w, 3), round(cpu / (width * NCPU), 4)))   # window start
        w += width
    return out


def summarize_limit(r, params):
    S, M = r["samples"], r["markers"]
    r["max_rss_mb"] = max((s[1] for s in S), default=None)
    r["max_rss_over_limit"] = round(r["max_rss_mb"] / LIMIT_MB, 3) if S else None
    r["maxrss_over_limit"] = round(r["maxrss_mb"] / LIMIT_MB, 3)
    h, e = M.get("hold"), M.get("end")
    r["share"] = gc_share(r["cycles"], 0.0, (e or r["wall_s"]))
    r["share_noidle"] = gc_share(r["cycles"], 0.0, (e or r["wall_s"]), key="cpu_noidle_ms")
    cpu = [(s[0], s[2]) for s in S]
    r["proc_share"] = []
    for i in range(int((e or r["wall_s"]))):
        a, b = value_at(cpu, i), value_at(cpu, i + 1)
        if a is not None and b is not None:
            r["proc_share"].append((float(i), round((b - a) / NCPU, 4)))
    if h is None or e is None:
        return
    inside = lambda ser: [v for t, v in ser if h <= t and t + 1.0 <= e]   # whole windows in the hold
    sh_ = inside(r["share"])
    r["hold_gc_share"] = round(statistics.median(sh_), 4) if sh_ else None
    sn = inside(r["share_noidle"])
    r["hold_gc_share_noidle"] = round(statistics.median(sn), 4) if sn else None
    a, b = value_at(cpu, h), value_at(cpu, e)
    r["hold_proc_share"] = round((b - a) / ((e - h) * NCPU), 4) if a is not None and b is not None else None
    hold = rss_at(S, h, e)
    r["hold_rss_median_mb"] = round(statistics.median(hold), 1) if hold else None
    r["hold_rss_max_mb"] = max(hold) if hold else None
    r["hold_cycles"] = sum(1 for c in r["cycles"] if h <= c["t"] <= e)
    r["hold_marked_mb"] = med([c["marked"] for c in r["cycles"] if h <= c["t"] <= e])
    r["final_pct"] = r["cycles"][-1]["pct"] if r["cycles"] else None
    ta = value_at([(t, a_) for t, a_, _, _ in r["ticks"]], h)
    tb = value_at([(t, a_) for t, a_, _, _ in r["ticks"]], e)
    r["hold_alloc_mb_s"] = round((tb - ta) / (e - h), 1) if ta is not None and tb is not None else None


# ---------------------------------------------------------------- report

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f(x, n=1):
    return "–" if x is None else f"{x:.{n}f}"


def representative(runs, key):
    """The run whose key is the median one (None sorts last)."""
    ok = [r for r in runs if r["ok"]]
    if not ok:
        return None
    ok.sort(key=lambda r: (key(r) is None, key(r) or 0))
    return ok[(len(ok) - 1) // 2]


def gnuplot(script):
    p = subprocess.run(["gnuplot"], input=script, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return p.returncode == 0, p.stdout


def svg_head(path, w, h):
    return (f"set terminal svg size {w},{h} dynamic noenhanced font 'sans,10' background '#ffffff'\n"
            f"set output '{path}'\n")


MARGINS = "set lmargin at screen 0.07\nset rmargin at screen 0.76"
COLORS = {"rtgc": "#1f77b4", "rtgc-free": "#6baed6", "rtgc-huge": "#17becf", "boehm": "#d62728", "boehm-unmap": "#ff9896",
          "boehm-unmap3": "#9467bd",
          "go": "#2ca02c", "go-free": "#98df8a"}


RSS_PARAMS_LIVE = {}   # the rss parameters of this invocation, for Boehm's reference line


def plot_rss(reps, path, td, head=None):
    systems = [s for s in RSS_SYSTEMS if reps.get(s)]
    if not systems:
        return True, ""
    files = {}
    for s in systems:
        r = reps[s]
        d1 = r["markers"].get("drop1", 0)
        p = Path(td) / f"rss.{s}.dat"
        p.write_text("\n".join(f"{t} {v} {t - d1:.4f}" for t, v, _, _ in r["samples"]) + "\n")
        files[s] = p
        g = Path(td) / f"goal.{s}.dat"
        rows = []
        for k, end in ((1, "grow2"), (2, "end")):
            d, e = r["markers"].get(f"drop{k}"), r["markers"].get(end)
            if d is None or e is None:
                continue
            if r["cycles"]:
                gl = [x for x in goal_timeline(r["cycles"]) if d <= x[0] <= e]
                for i, (t, v) in enumerate(gl):
                    t_next = gl[i + 1][0] if i + 1 < len(gl) else e
                    rows += [f"{t} {1.1 * v:.2f}", f"{t_next} {1.1 * v:.2f}"]
            else:
                live = float(RSS_PARAMS_LIVE.get("calm_mb", 10))
                rows += [f"{d} {1.1 * live:.2f}", f"{e} {1.1 * live:.2f}"]
            rows.append("")
        g.write_text("\n".join(rows) + "\n")
        files[s + ".goal"] = g
        h = Path(td) / f"retained.{s}.dat"
        h.write_text("\n".join(f"{t} {ret}" for t, _, _, ret in r["ticks"]) + "\n")
        files[s + ".retained"] = h
    n = len(systems)
    xmax = max(r["wall_s"] for r in reps.values() if r)
    top_h, row_h = 380, 190
    H = top_h + row_h * n + 40
    sc = [head or svg_head(path, 1100, H), "set multiplot", MARGINS,
          "set logscale y", "set yrange [4:3000]", "set ytics (5,10,20,50,100,200,500,1000,2000)",
          "set grid xtics ytics", "set key outside right top", "set ylabel 'RSS MiB (log)'"]
    frac_top, frac_row = top_h / H, row_h / H
    sc += [f"set origin 0,{1 - frac_top}", f"set size 1,{frac_top}",
           "set title 'RSS over time, all systems, aligned at the first drop (x = 0); one representative run each'",
           "set xlabel 's since the first drop'",
           "set arrow 1 from first 0, graph 0 to first 0, graph 1 nohead dt 2 lc rgb '#555555'",
           "plot " + ", ".join(f"'{files[s]}' using 3:2 with lines lw 1.5 lc rgb '{COLORS[s]}' title '{s}'"
                               for s in systems),
           "unset arrow 1", "set xlabel 's since start'", f"set xrange [0:{xmax:.1f}]"]
    for i, s in enumerate(systems):
        r = reps[s]
        sc.append(f"set origin 0,{1 - frac_top - frac_row * (i + 1):.4f}")
        sc.append(f"set size 1,{frac_row:.4f}")
        sc.append(f"set title '{s}: {RSS_SYSTEMS[s][2]}'")
        k = 10
        for name, t in sorted(r["markers"].items(), key=lambda x: x[1]):
            if name == "end":
                continue
            sc.append(f"set arrow {k} from first {t}, graph 0 to first {t}, graph 1 nohead dt 2 lc rgb '#888888'")
            text = {"collected1": "calm", "collected2": "idle"}.get(name, name)
            y = {"grow": 0.9, "hold": 0.72, "drop": 0.9, "coll": 0.54}.get(name[:4], 0.9)   # close markers apart
            sc.append(f"set label {k} '{text}' at first {t}, graph {y} left offset 0.3,0 "
                      f"font 'sans,8' tc rgb '#555555'")
            k += 1
        sc.append(f"plot '{files[s]}' using 1:2 with lines lw 1.5 lc rgb '{COLORS[s]}' title 'RSS', "
                  f"'{files[s + '.retained']}' using 1:2 with lines lw 0.8 lc rgb '#777777' "
                  f"title 'retained heap (runtime)', "
                  f"'{files[s + '.goal']}' using 1:2 with lines dt 3 lw 1.2 lc rgb '#000000' "
                  f"title '{r['target_rule']}'")
        for j in range(10, k):
            sc.append(f"unset arrow {j}")
            sc.append(f"unset label {j}")
    sc.append("unset multiplot")
    return gnuplot("\n".join(sc) + "\n")


def closed(rows):
    """Per-window values keyed by window start, plus the last window's end, for `with steps`."""
    return rows + [(rows[-1][0] + 1.0, rows[-1][1])] if rows else rows


def plot_limit(reps, path, td, head=None):
    systems = [s for s in LIMIT_SYSTEMS if reps.get(s)]
    if not systems:
        return True, ""
    files = {}
    for s in systems:
        r = reps[s]
        for key, rows in (("rss", [(t, v) for t, v, _, _ in r["samples"]]),
                          ("live", [(t, lv) for t, _, lv, _ in r["ticks"]]),
                          ("share", closed([(t, 100 * v) for t, v in r["share"]])),
                          ("noidle", closed([(t, 100 * v) for t, v in r["share_noidle"]])),
                          ("proc", closed([(t, 100 * v) for t, v in r["proc_share"]]))):
            p = Path(td) / f"limit.{s}.{key}.dat"
            p.write_text("\n".join(f"{a} {b}" for a, b in rows) + "\n")
            files[(s, key)] = p
    xmax = max(reps[s]["wall_s"] for s in systems)
    sc = [head or svg_head(path, 1100, 820), "set multiplot layout 2,1", MARGINS, "set grid", "set key outside right top",
          f"set xrange [0:{xmax:.1f}]", "set xlabel 's since start'"]
    for i, s in enumerate(systems):
        h = reps[s]["markers"].get("hold")
        if h is not None:
            sc.append(f"set arrow {i + 1} from first {h}, graph 0 to first {h}, graph 1 nohead dt 2 lc rgb '{COLORS[s]}'")
            sc.append(f"set label {i + 1} 'hold ({s})' at first {h}, graph {0.06 + 0.07 * i} left offset 0.3,0 "
                      f"font 'sans,8' tc rgb '{COLORS[s]}'")
    sc += [f"set title 'limit: RSS with a {LIMIT_MB} MiB memory limit (RTMEMLIMIT / GOMEMLIMIT)'",
           "set ylabel 'MiB'", "set yrange [0:*]"]
    plots = [f"{LIMIT_MB} with lines dt 2 lw 1.5 lc rgb '#000000' title 'limit'",
             f"{LIMIT_MB * 1.05:.1f} with lines dt 3 lw 1 lc rgb '#888888' title '1.05 x limit'"]
    for s in systems:
        plots.append(f"'{files[(s, 'rss')]}' using 1:2 with lines lw 1.5 lc rgb '{COLORS[s]}' title '{s} RSS'")
        plots.append(f"'{files[(s, 'live')]}' using 1:2 with lines dt 4 lw 1 lc rgb '{COLORS[s]}' "
                     f"title '{s} live heap (nominal)'")
    sc.append("plot " + ", ".join(plots))
    sc += ["set title 'CPU share of all CPUs per 1 s window: GC as gctrace accounts it (dotted: without idle "
           "workers), and the whole process from /proc (thin)'", "set ylabel '% of all CPUs'", "set yrange [0:105]"]
    plots = []
    for s in systems:
        plots.append(f"'{files[(s, 'share')]}' using 1:2 with steps lw 1.8 lc rgb '{COLORS[s]}' title '{s} GC'")
        plots.append(f"'{files[(s, 'noidle')]}' using 1:2 with steps dt 3 lw 1.2 lc rgb '{COLORS[s]}' "
                     f"title '{s} GC, no idle'")
        plots.append(f"'{files[(s, 'proc')]}' using 1:2 with steps lw 0.6 lc rgb '{COLORS[s]}' title '{s} process'")
    sc.append("plot " + ", ".join(plots))
    sc.append("unset multiplot")
    return gnuplot("\n".join(sc) + "\n")


def report(results, suites, meta):
    L = [f"# memory: rss and limit ({meta['generated']})", "",
         f"`{meta['command']}` — {meta['mode']}, {meta['runs']} run(s) per system, run one at a time. "
         f"Load average {meta['loadavg_start']} at the start, {meta['loadavg_end']} at the end; "
         f"{NCPU} CPUs; THP `{meta['thp']}`. RSS, process CPU and (rtgc) scavenger-thread CPU sampled "
         f"every {int(PERIOD * 1000)} ms from /proc by the runner. Figures: medians over runs; "
         f"plots: one representative run per system.", ""]
    if "rss" in suites:
        P = meta["params"]["rss"]
        L += ["## rss", "",
              f"Grow to {P['peak_mb']} MiB live (chains of 32-byte nodes, 75% of the bytes in 1–64 KiB "
              f"pointer-free buffers, all written, as much garbage again), hold {P['hold_s']} s at "
              f"{P['rate_mb']} MiB/s of garbage, drop to {P['calm_mb']} MiB live and collect once "
              f"(rt_gc / GC_gcollect / runtime.GC; the -free/-unmap variants call rt_free_os_memory / "
              f"GC_gcollect_and_unmap / debug.FreeOSMemory instead), calm for {P['calm_s']} s at "
              f"{P['rate_mb']} MiB/s (a quarter of it replacing live chains), grow again, hold, drop and "
              f"collect, then idle {P['idle_s']} s with no allocation at all.", "",
              "| system | runs ok | peak RSS MiB (sampled) | ru_maxrss MiB | start RSS MiB | wall s | CPU s |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        per = {}
        for s in RSS_SYSTEMS:
            runs = [r for r in results if r["suite"] == "rss" and r["system"] == s]
            if runs:
                per[s] = (runs, [r for r in runs if r["ok"]])
        for s, (runs, ok) in per.items():
            g = lambda fn: med([fn(r) for r in ok])
            L.append(f"| {s} | {len(ok)}/{len(runs)} | {f(g(lambda r: r['peak_rss_mb']), 0)} | "
                     f"{f(g(lambda r: r['maxrss_mb']), 0)} | {f(g(lambda r: r['baseline_mb']))} | "
                     f"{f(g(lambda r: r['wall_s']), 0)} | {f(sum_cpu(ok), 1)} |")
        for k, title in ((1, f"After the first drop: calm, {P['rate_mb']} MiB/s of allocation for {P['calm_s']} s"),
                         (2, f"After the second drop: idle, no allocation, {P['idle_s']} s")):
            end = "calm" if k == 1 else "idle"
            L += ["", f"**{title}**", "",
                  f"| system | heap goal MiB | heap ≤ 1.1 × goal after s | RSS target MiB | RSS ≤ target after s | "
                  f"→ settled s | RSS @+10 s | {end} end RSS | {end} end retained heap | non-heap RSS | "
                  f"rtgc scavenger CPU ms | scavenger CPU until heap target, % of one CPU / of all {NCPU} |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for s, (runs, ok) in per.items():
                rk = lambda key: med([r.get(f"round{k}", {}).get(key) for r in ok])
                def reached(key):
                    n = sum(1 for r in ok if r.get(f"round{k}", {}).get(key) is not None)
                    return f(rk(key), 2) + ("" if n == len(ok) or not n else f" ({n}/{len(ok)} runs)")
                L.append(f"| {s} | {f(rk('goal_mb'), 0)} | {reached('to_heap_target_s')} | {f(rk('target_mb'))} | "
                         f"{reached('to_target_s')} | {f(rk('to_settled_s'), 2)} | {f(rk('rss_10s_mb'))} | "
                         f"{f(rk('rss_end_mb'))} | {f(rk('retained_end_mb'))} | {f(rk('nonheap_end_mb'))} | "
                         f"{f(rk('scav_cpu_ms'), 0)} | {pct_cpus(rk('scav_pct_to_target'))} |")
        L += ["",
              "- **start RSS**: RSS in the 0.3 s the program idles after the runtime started, before any "
              "allocation (binary, libc, thread stacks, the runtime's fixed structures).",
              "- **heap goal** (rtgc, Go): from gctrace, the goal in effect at the end of the phase — the goal "
              "printed by the next cycle, or after the last cycle marked + (marked + stacks + globals) × "
              "GOGC/100 (the forced cycle after a drop prints the old, large goal). **target** = start RSS + "
              "1.1 × heap goal, following the goal cycle by cycle. **Boehm has no heap goal: its target is start "
              "RSS + 1.1 × the live size** (the program's nominal live bytes).",
              "- **heap ≤ 1.1 × goal after s**: from the drop marker (before the collection) to the first "
              "250 ms tick at which the heap the runtime retains (its own figure, below) is at most 1.1 × the "
              "heap goal in effect (Boehm: 1.1 × live) — the scavenger's job, the issue's target. "
              "**RSS ≤ target after s**: the same for the RSS (50 ms samples) against start RSS + 1.1 × goal: "
              "this also needs the non-heap memory back. `–` = never within the phase. **→ settled s**: to "
              "the first RSS sample within 10% of the RSS the phase ends at (how long the giving-back took, "
              "whatever the level).",
              "- **RSS @+10 s**: RSS 10 s after the drop (if the phase is that long). **end RSS**: median RSS "
              "over the last second of the phase. **retained heap**: the runtime's own figure at the end of the "
              "phase, heap mapped and not returned (rtgc, Go: heap_sys − heap_released; Boehm: "
              "GC_get_heap_size, which excludes unmapped memory); **non-heap RSS** = end RSS − retained heap: "
              "the binary, libc, stacks and the runtime's metadata.",
              "- **rtgc scavenger CPU**: CPU of the `rtgc-scavenger` thread (/proc schedstat, ns) from the drop "
              "to the end of the phase; **CPU until heap target**: its CPU from the drop until the heap "
              "target was reached (or the phase ended), over that time, as a share of one CPU and of all CPUs "
              "(Go's scavenger budget is 1% of GOMAXPROCS CPUs). Go's scavenger is a goroutine and cannot be "
              "told apart from outside.",
              "- medians over the runs that passed; a time is the median of the runs that reached it, "
              "\"(n/m runs)\" when not all did.", ""]
        L += [f"Plotted in memory.rss.svg ({meta['rep_rule']['rss']}): {meta['rep']['rss']}.", ""]
        L += boehm_notes(results)
        L += rss_details(results)
    if "limit" in suites:
        P = meta["params"]["limit"]
        L += ["## limit", "",
              f"Live heap grows in {P['steps']} steps of {P['target_mb'] / P['steps']:.0f} MiB every "
              f"{P['step_s']} s to {P['target_mb']} MiB requested ({100 * P['target_mb'] / LIMIT_MB:.0f}% of the "
              f"limit; with size-class rounding the collectors mark about 480 MiB, 94%), with {P['rate_mb']} MiB/s of garbage throughout, then holds {P['hold_s']} s; "
              f"limit {LIMIT_MB} MiB (rtgc RTMEMLIMIT, Go GOMEMLIMIT), GOGC/RTGC default 100.", "",
              "| system | runs ok | max RSS MiB (sampled) | max RSS / limit | ru_maxrss / limit | "
              "hold: median RSS MiB | hold: marked MiB (gctrace) | hold: GC CPU share (gctrace, median of 1 s windows) | "
              "same, without idle workers | hold: process CPU share (/proc) | hold: cycles | "
              "hold: garbage MiB/s achieved | final gctrace P% |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in LIMIT_SYSTEMS:
            runs = [r for r in results if r["suite"] == "limit" and r["system"] == s]
            if not runs:
                continue
            ok = [r for r in runs if r["ok"]]
            g = lambda key: med([r.get(key) for r in ok])
            pc = lambda x: "–" if x is None else f"{100 * x:.1f}%"
            L.append(f"| {s} | {len(ok)}/{len(runs)} | {f(g('max_rss_mb'))} | {f(g('max_rss_over_limit'), 3)} | "
                     f"{f(g('maxrss_over_limit'), 3)} | {f(g('hold_rss_median_mb'))} | {f(g('hold_marked_mb'), 0)} | "
                     f"{pc(g('hold_gc_share'))} | "
                     f"{pc(g('hold_gc_share_noidle'))} | {pc(g('hold_proc_share'))} | {f(g('hold_cycles'), 0)} | "
                     f"{f(g('hold_alloc_mb_s'))} (of {P['rate_mb']}) | {f(g('final_pct'), 0)}% |")
        L += ["",
              f"- Shares are of all {NCPU} CPUs. **GC CPU share**: each gctrace line's five cpu terms "
              "(STW sweep termination + assist + dedicated/fractional + idle + mark termination) summed, spread "
              "evenly over the cycle's wall-clock span, summed per 1 s window, divided by 1 s × CPUs; the median "
              "over the whole 1 s windows of the hold phase. 'Without idle workers' drops the idle term (Go's "
              "limiter does not count idle marking as GC time). **final gctrace P%** is the cumulative share "
              "since start that both runtimes print; not used for the windows.",
              "- The gctrace terms are each runtime's own accounting, not measured CPU: Go times its mark "
              "workers, assists and pauses by the clock while a P is given to them, so on a busy machine they "
              "include time the OS ran other processes and can exceed the process's real CPU; rtgc times its "
              "mark workers with thread CPU clocks but assists and pauses by the clock. **process CPU share** "
              "(user + sys from /proc/PID/stat over the hold) is real CPU and bounds the GC's real share.",
              "- **marked**: the live heap as the collector marked it (gctrace's third MB figure): the "
              "program's nominal bytes plus size-class rounding.",
              "- **max RSS / limit** from the 50 ms samples; **ru_maxrss** is the kernel's high-water mark "
              "(catches peaks between samples).",
              "- **garbage MiB/s achieved**: the mutator's allocation during the hold (it paces itself to the "
              "rate and gives up on falling more than 1 s behind): what the collector left it.", "",
              f"Plotted in memory.limit.svg ({meta['rep_rule']['limit']}): {meta['rep']['limit']}.", ""]
    fails = [r for r in results if not r["ok"]]
    if fails:
        L.append("Failed runs:\n")
        L += [f"- {r['suite']} {r['system']}: {r.get('error')}" for r in fails]
        L.append("")
    L.append("Raw samples, markers and gctrace cycles of every run: memory.json. How to read: bench/README.md.")
    return "\n".join(L) + "\n"


def pct_cpus(x):
    return "–" if x is None else f"{x:.2f} / {x / NCPU:.2f}"


def sum_cpu(runs):
    return med([(r["samples"][-1][2] if r["samples"] else None) for r in runs])


def boehm_notes(results):
    rs = [r for r in results if r["suite"] == "rss" and r["system"].startswith("boehm") and r["ok"]]
    if not rs:
        return []
    kv = rs[0]["kv"]
    L = [f"Boehm: libgc 8.2 as Debian builds it has unmapping compiled in (USE_MUNMAP: GC_unmap_old, "
         f"GC_gcollect_and_unmap, GC_get_unmapped_bytes are in libgc.a) and on: the unmap threshold read at "
         f"run time is {kv.get('boehm_unmap_threshold', '?')} collections (a block free for that many "
         f"collections is unmapped at the next one; env GC_UNMAP_THRESHOLD changes it; 8.2 has no public "
         f"getter or setter), force-unmap-on-gcollect {kv.get('boehm_force_unmap_on_gcollect', '?')}. "
         f"Its own figures (first run of each variant):", ""]
    done = set()
    for r in rs:
        h = r["heap"]
        if r["system"] in done or not all(k in h for k in ("collected1", "grow2", "end")):
            continue
        done.add(r["system"])
        L.append(f"- {r['system']}: after the first collection heap {h['collected1']['heap_mb']:.0f} MiB, "
                 f"unmapped {h['collected1']['unmapped_mb']:.0f} MiB; during the calm phase "
                 f"{h['grow2']['num_gc'] - h['collected1']['num_gc']:.0f} collections, unmapped at its end "
                 f"{h['grow2']['unmapped_mb']:.0f} MiB; at exit heap {h['end']['heap_mb']:.0f} MiB, "
                 f"unmapped {h['end']['unmapped_mb']:.0f} MiB.")
    return L + [""]


def rss_details(results):
    L = ["<details><summary>per run (rss)</summary>", "",
         "| system | run | peak | ru_maxrss | start | drop1 → heap target / RSS target / settled s | calm end | "
         "drop2 → heap target / RSS target / settled s | idle end | GCs | scavtrace released MiB (bg + eager) | rtgc scav CPU drop1 ms |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in (x for x in results if x["suite"] == "rss"):
        a, b = r.get("round1", {}), r.get("round2", {})
        L.append(f"| {r['system']} | {r['run']} | {f(r.get('peak_rss_mb'), 0)} | {f(r['maxrss_mb'], 0)} | "
                 f"{f(r.get('baseline_mb'))} | {f(a.get('to_heap_target_s'), 2)} / {f(a.get('to_target_s'), 2)} / "
                 f"{f(a.get('to_settled_s'), 2)} | {f(a.get('rss_end_mb'))} | {f(b.get('to_heap_target_s'), 2)} / "
                 f"{f(b.get('to_target_s'), 2)} / {f(b.get('to_settled_s'), 2)} | "
                 f"{f(b.get('rss_end_mb'))} | {len(r['cycles']) or '–'} | "
                 f"{r['scav_released_mb'] if r['cycles'] else '–'} | {f(a.get('scav_cpu_ms'), 0)} |")
    return L + ["", "</details>", ""]


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description="The rss and limit memory suites (bench/README.md).")
    ap.add_argument("suites", nargs="*", help="rss, limit or both (default both)")
    ap.add_argument("--quick", action="store_true", help="shorter phases, 1 run (a few minutes)")
    ap.add_argument("--runs", type=int, default=None, help="runs per system (default 3, --quick 1)")
    a = ap.parse_args()
    for x in a.suites:
        if x not in ("rss", "limit"):
            ap.error(f"unknown suite {x!r}: rss or limit")
    suites = [s for s in ("rss", "limit") if s in a.suites] or ["rss", "limit"]
    runs = a.runs or (1 if a.quick else 3)
    mode = "quick" if a.quick else "full"
    load0 = [round(x, 2) for x in os.getloadavg()]
    log(f"== memory: building ({', '.join(suites)}, {mode}, {runs} run(s))")
    bins = build()
    results = []
    plan = []
    RSS_PARAMS_LIVE.update(PARAMS["rss"][mode])
    for suite in suites:
        table = RSS_SYSTEMS if suite == "rss" else LIMIT_SYSTEMS
        for i in range(runs):
            for s, (be, args, _) in table.items():
                if be in bins:
                    plan.append((suite, i + 1, s, bins[be], args))
    for n, (suite, i, s, binary, args) in enumerate(plan, 1):
        params = PARAMS[suite][mode]
        expect = (sum(v for k, v in params.items() if k.endswith("_s")) + 10 if suite == "rss"
                  else params["steps"] * params["step_s"] + params["hold_s"] + 5)
        r = run(suite, s, binary, args, params, timeout=expect * 4 + 60)
        r["run"] = i
        if r["ok"]:
            (summarize_rss if suite == "rss" else summarize_limit)(r, params)
        results.append(r)
        if not r["ok"]:
            status = "FAILED: " + r["error"][:300]
        elif suite == "rss":
            status = (f"peak {f(r['peak_rss_mb'], 0)} MiB, drop1 → heap target "
                      f"{f(r.get('round1', {}).get('to_heap_target_s'), 2)} s, "
                      f"calm end {f(r.get('round1', {}).get('rss_end_mb'))} MiB, idle end "
                      f"{f(r.get('round2', {}).get('rss_end_mb'))} MiB")
        else:
            status = (f"max RSS {f(r['max_rss_mb'])} MiB ({f(r['max_rss_over_limit'], 3)} x limit), hold GC share "
                      f"{f(100 * (r.get('hold_gc_share') or 0))}%")
        log(f"[{n}/{len(plan)}] {suite} {s} run {i}: {status} ({r['wall_s']:.0f} s)")

    reps = {}
    for suite in suites:
        table = RSS_SYSTEMS if suite == "rss" else LIMIT_SYSTEMS
        key = ((lambda r: r.get("round1", {}).get("to_heap_target_s")) if suite == "rss"
               else (lambda r: r.get("max_rss_mb")))
        reps[suite] = {s: representative([r for r in results if r["suite"] == suite and r["system"] == s], key)
                       for s in table}
    try:
        thp = re.search(r"\[(\w+)\]", Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()).group(1)
    except (OSError, AttributeError):
        thp = "?"
    meta = {"generated": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": "bench/memory/run.py " + " ".join(sys.argv[1:]), "mode": mode, "runs": runs,
            "params": {s: PARAMS[s][mode] for s in suites}, "cflags": CFLAGS, "ncpu": NCPU, "thp": thp,
            "limit_mb": LIMIT_MB, "loadavg_start": load0, "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "rep": {su: ", ".join(f"{s} run {r['run']}" for s, r in reps[su].items() if r) or "none"
                    for su in suites},
            "rep_rule": {"rss": "per system, the run with the median time to the heap target after the first drop",
                         "limit": "per system, the run with the median max RSS"}}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "memory.json").write_text(json.dumps({"meta": meta, "runs": results}, separators=(",", ":")) + "\n")
    (OUT / "memory.md").write_text(report(results, suites, meta))
    with tempfile.TemporaryDirectory() as td:
        for suite, fn in (("rss", plot_rss), ("limit", plot_limit)):
            if suite in suites:
                ok, out = fn(reps[suite], OUT / f"memory.{suite}.svg", td)
                if not ok:
                    log(f"gnuplot failed for memory.{suite}.svg: {out[-800:]}")
    log((OUT / "memory.md").read_text())
    return 1 if any(not r["ok"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
