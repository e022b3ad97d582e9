#!/usr/bin/env python3
"""bench/pause/run.py [--live MB] [--seconds S] [--runs N] -- the `pause` suite.

Builds bench/pause/pause.c for rtgc (release library) and Boehm (libgc.a,
parallel marking) and bench/go/pause for Go 1.19, runs each, and reports
every stop-the-world pause during the mutation phase: p50, p99, max, the
minimum mutator utilization (MMU) over 1 ms and 10 ms windows, and GC CPU.
rtgc and Go pauses come from their gctrace lines (the mark-start and
mark-termination pauses of each cycle); Boehm's pause is each whole
collection, timed by the program with GC_set_on_collection_event.
Writes bench/results/pause.md and bench/results/pause.json."""
import argparse, json, os, re, statistics, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = ROOT / "bench" / "results"
BUILD = ROOT / "bench" / "build"
CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-D_GNU_SOURCE"]
TRACE = re.compile(r"^gc (\d+) @([\d.]+)s (\d+)%: ([\d.]+)\+([\d.]+)\+([\d.]+) ms clock")
# rtgc's gctrace=2 line after each cycle: where the two pauses went.
PACER = re.compile(r"^pacer: (?:[a-z ,]+; )?stopping took ([\d.e+-]+)\+([\d.e+-]+) ms; mark termination: flush ([\d.e+-]+) ms, "
                   r"drain ([\d.e+-]+) ms .*?the rest ([\d.e+-]+) ms")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build():
    BUILD.mkdir(parents=True, exist_ok=True)
    rel = ROOT / "bench" / "build-release"
    if not (rel / "build.ninja").exists():
        sh(["meson", "setup", str(rel), "-Dbuildtype=release", "-Db_ndebug=true", "-Dtests=false"],
           cwd=ROOT, stdout=subprocess.DEVNULL)
    sh(["ninja", "-C", str(rel)], stdout=subprocess.DEVNULL)
    src = str(HERE / "pause.c")
    sh(["cc"] + CFLAGS + ["-DPAUSE_RTGC", "-I", str(ROOT / "include"), src, str(rel / "librtgc.a"),
        "-lpthread", "-o", str(BUILD / "pause.rtgc")])
    sh(["cc"] + CFLAGS + ["-DPAUSE_BOEHM", src, "/usr/lib/x86_64-linux-gnu/libgc.a", "-lpthread",
        "-o", str(BUILD / "pause.boehm")])
    go = os.environ.get("BENCH_GO", "/usr/lib/go-1.19/bin/go")
    systems = ["rtgc", "boehm"]
    if Path(go).exists():
        env = dict(os.environ, GO111MODULE="off", GOCACHE=str(BUILD / "gocache"))
        sh([go, "build", "-o", str(BUILD / "pause.go"), "."], cwd=ROOT / "bench" / "go" / "pause", env=env)
        systems.append("go")
    return systems


def mmu(pauses, t0, t1, w):
    """Minimum mutator utilization over windows of w seconds inside [t0, t1]."""
    if t1 - t0 < w:
        return None
    starts = {t0, t1 - w}
    for s, d in pauses:
        for c in (s, s + d - w, s - w, s + d):
            if t0 <= c <= t1 - w:
                starts.add(c)
    worst = 1.0
    for a in starts:
        b = a + w
        busy = sum(max(0.0, min(b, s + d) - max(a, s)) for s, d in pauses)
        worst = min(worst, (w - busy) / w)
    return max(worst, 0.0)


def run(system, live, secs):
    exe = str(BUILD / f"pause.{system}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RT", "GOGC", "GODEBUG", "GC_"))}
    if system == "rtgc":
        env["RTDEBUG"] = "gctrace=2"   # gctrace=1's lines, plus each pause's parts
    if system == "go":
        env["GODEBUG"] = "gctrace=1"
    t = time.time()
    p = subprocess.run([exe, str(live), str(secs)], env=env, capture_output=True, text=True, timeout=secs * 20 + 600)
    wall = time.time() - t
    kv = dict(re.findall(r"^(\w+)=(\S+)$", p.stdout, re.M))
    if p.returncode != 0 or "phase_end_s" not in kv:
        raise RuntimeError(f"{system} failed ({p.returncode}): {p.stderr[-500:]}")
    t0, t1 = float(kv["phase_start_s"]), float(kv["phase_end_s"])
    pauses, cpu, parts = [], None, []
    if system == "boehm":
        for m in re.finditer(r"^pause ([\d.]+) ([\d.]+)$", p.stdout, re.M):
            pauses.append((float(m.group(1)), float(m.group(2)) / 1e3))
        total_pause = sum(d for s, d in pauses if s >= t0)
        cpu = total_pause / (t1 - t0) if t1 > t0 else None   # every Boehm collection is a pause
    else:
        for line in p.stderr.splitlines():
            m, q = TRACE.match(line), PACER.match(line)
            if q and parts:
                stop1, stop2, flush, drain, rest = (float(x) for x in q.groups())
                parts[-2].update(stop_ms=stop1)
                parts[-1].update(stop_ms=stop2, flush_ms=flush, drain_ms=drain, rest_ms=rest)
            if not m:
                continue
            at, a, b, c = float(m.group(2)), float(m.group(4)), float(m.group(5)), float(m.group(6))
            pauses.append((at, a / 1e3))
            pauses.append((at + (a + b) / 1e3, c / 1e3))
            parts += [{"gc": int(m.group(1)), "pause": "mark start", "ms": a},
                      {"gc": int(m.group(1)), "pause": "mark termination", "ms": c}]
            cpu = int(m.group(3)) / 100.0
        if system == "rtgc" and "gc_cpu_fraction" in kv:
            cpu = float(kv["gc_cpu_fraction"])
    inside = [(s, d) for s, d in pauses if t0 <= s <= t1]
    worst = max((x for (s, d), x in zip(pauses, parts) if t0 <= s <= t1), key=lambda x: x["ms"], default=None)
    ds = sorted(d * 1e3 for s, d in inside)
    def pct(q):
        return ds[min(len(ds) - 1, int(q * len(ds)))] if ds else 0.0
    return {
        "system": system, "live_mb": live, "seconds": secs, "wall_s": round(wall, 2),
        "pauses": len(ds), "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": ds[-1] if ds else 0.0,
        "mmu_1ms": mmu(inside, t0, t1, 0.001), "mmu_10ms": mmu(inside, t0, t1, 0.010),
        "gc_cpu": cpu, "mutator_ops": sum(int(x) for x in re.findall(r"^mutator_ops=(\d+)$", p.stdout, re.M)),
        "build_s": float(kv.get("build_s", 0)), "pause_list_ms": [round(d * 1e3, 4) for s, d in inside],
        "worst_pause": worst,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--live", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="256 MiB live, 3 s")
    a = ap.parse_args()
    if a.quick:
        a.live, a.seconds = 256, 3
    systems = build()
    results = []
    for r in range(a.runs):
        for s in systems:
            try:
                results.append(run(s, a.live, a.seconds))
            except Exception as e:
                print(f"pause: {s}: {e}", file=sys.stderr)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pause.json").write_text(json.dumps(results, indent=1))
    lines = [f"# pause: {a.live} MiB live, 2 mutators, {a.seconds:g} s ({time.strftime('%Y-%m-%d %H:%M')})", "",
             "| system | pauses | p50 ms | p99 ms | max ms | MMU 1 ms | MMU 10 ms | GC CPU | mutator Mops | build s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    f = lambda x, n=3: "–" if x is None else f"{x:.{n}f}"
    for x in results:
        lines.append(f"| {x['system']} | {x['pauses']} | {f(x['p50_ms'])} | {f(x['p99_ms'])} | {f(x['max_ms'])} | "
                     f"{f(x['mmu_1ms'], 2)} | {f(x['mmu_10ms'], 2)} | {f(x['gc_cpu'], 2)} | "
                     f"{x['mutator_ops'] / 1e6:.1f} | {x['build_s']:.1f} |")
    for x in results:
        w = x.get("worst_pause")
        if w and "stop_ms" in w:
            more = "".join(f", {k[:-3]} {w[k]:.3f} ms" for k in ("flush_ms", "drain_ms", "rest_ms") if k in w)
            lines.append(f"- rtgc run {results.index(x) // len(systems) + 1}: longest pause {w['ms']:.3f} ms "
                         f"(gc {w['gc']}, {w['pause']}): stopping the world {w['stop_ms']:.3f} ms{more}")
    lines += ["", "rtgc and Go: both pauses of every cycle (gctrace A and C); Boehm: every collection "
              "(its pause is the whole mark). GC CPU: rtgc gc_cpu_fraction, Go gctrace U%, Boehm pause "
              "time / mutation time. Pauses counted only inside the mutation phase."]
    (OUT / "pause.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
