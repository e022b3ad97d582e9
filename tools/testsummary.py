#!/usr/bin/env python3
"""Count individual test cases in a meson testlog.json.

Criterion binaries report "Synthesis: Tested: N | Passing: N | Failing: N |
Crashing: N"; runner scripts report "N passed, N failed".  A test whose
output has neither counts as one case, passed or failed by meson's result.
Prints "P passed, F failed" on stdout; on stderr, for every failing test,
the lines of its output that say why (CI shows only this script's output,
not meson's logs), and every "SKIPPED: reason" line a test printed for a
case it skipped (Criterion leaves skipped cases out of its counts)."""
import json, re, sys

synth = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
plain = re.compile(r"^(\d+) passed, (\d+) failed", re.M)
# Lines that only say a case started or passed; everything else a failing
# test printed (assertions, sanitizer reports, the test's own figures) is shown.
noise = re.compile(r"^\[(RUN |PASS|SKIP)\]|^\[====\] Running|^\s*$")

def explain(t, out):
    lines = [l for l in out.splitlines() if not noise.search(l)]
    print(f"-- {t.get('name')}: {t.get('result')}", file=sys.stderr)
    for l in lines[-60:]:
        print("   " + l[:300], file=sys.stderr)
    if len(lines) > 60:
        print(f"   ({len(lines) - 60} earlier lines left out)", file=sys.stderr)

passed = failed = 0
try:
    lines = open(sys.argv[1]).read().splitlines()
except OSError:
    print("0 passed, 1 failed")
    sys.exit(0)
for line in lines:
    if not line.strip():
        continue
    t = json.loads(line)
    out = (t.get("stdout") or "") + (t.get("stderr") or "")
    ok = t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
    m = synth.findall(out)
    p = plain.findall(out)
    if m:
        tp = sum(int(x[1]) for x in m); tf = sum(int(x[2]) + int(x[3]) for x in m)
    elif p:
        tp = int(p[-1][0]); tf = int(p[-1][1])
    else:
        tp, tf = (1, 0) if ok else (0, 1)
    if not ok and tf == 0:
        tf = 1  # failed at the meson level (timeout, crash after reporting)
    if not ok or tf:
        explain(t, out)
    for l in out.splitlines():   # a case that could not judge says why (and is not counted)
        if l.startswith("SKIPPED: "):
            print(f"-- {t.get('name')}: {l}", file=sys.stderr)
    passed += tp
    failed += tf
print(f"{passed} passed, {failed} failed")
