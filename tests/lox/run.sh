#!/usr/bin/env bash
# run.sh -- run the Lox test programs against a lox binary.
#
#   tests/lox/run.sh path/to/lox [test.lox | dir ...]
#
# Every *.lox file under tests/lox (or the files/directories given) is run
# as `lox FILE`; its stdout, stderr and exit code must match exactly what
# the comments in the file say:
#
#   // expect: TEXT                 a line of stdout
#   // expect runtime error: MSG    stderr starts with MSG, exit code 70; the
#                                   stack trace follows from `// trace:` lines,
#                                   or is "[line N] in script" (N = this line)
#   // trace: [line N] in f()       one line of the runtime stack trace
#   // error at 'TOK': MSG          "[line N] Error at 'TOK': MSG" on stderr
#   // error at end: MSG            "[line N] Error at end: MSG"
#   // error: MSG                   "[line N] Error: MSG" (scanner errors)
#                                   (N = the line of the comment; exit 65)
#   // stderr: TEXT                 a literal line of stderr (for errors that
#                                   land on another line, e.g. at end of file)
#   // exit: N                      the exit code, when not implied above
#
# Stderr lines appear in the order written.  The environment passes through,
# so `RTDEBUG=gcstress=1 tests/lox/run.sh build/examples/lox/lox` runs every
# program with a collection at each allocation; LOX_CONSERVATIVE=1 turns on the
# conservative scan of the C stack.  JOBS=N runs N programs at once (default:
# the number of CPUs); LOX_TEST_TIMEOUT=S limits each run (default 300 s).
# A few command-line checks (usage, unreadable file, REPL) run as well.
#
# Prints one line per failing program and a final "N passed, N failed";
# exits nonzero if anything failed.

set -u

if [ $# -lt 1 ]; then
    echo "usage: $0 path/to/lox [test.lox | dir ...]" >&2
    exit 2
fi
LOX=$1
shift
case $LOX in /*) ;; *) LOX=$PWD/$LOX ;; esac
if [ ! -x "$LOX" ]; then
    echo "run.sh: $LOX is not an executable" >&2
    exit 2
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
TIMEOUT=${LOX_TEST_TIMEOUT:-300}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/loxtest.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if [ $# -eq 0 ]; then set -- "$HERE"; fi
mapfile -t FILES < <(for t in "$@"; do
    if [ -d "$t" ]; then find "$t" -name '*.lox' -type f; else echo "$t"; fi
done | sort)

# Turn the comments of one test into expected.out / expected.err / expected.code.
expectations() {
    awk -v out="$2/expected.out" -v err="$2/expected.err" -v codef="$2/expected.code" '
    function rest(s, marker) { return substr(s, index(s, marker) + length(marker)) }
    {
        line = $0
        if (index(line, "// expect runtime error: ")) {
            rterr = rest(line, "// expect runtime error: "); rtline = NR
        } else if (index(line, "// expect: ")) {
            print rest(line, "// expect: ") > out
        } else if (index(line, "// trace: ")) {
            trace[ntrace++] = rest(line, "// trace: ")
        } else if (index(line, "// error at end: ")) {
            print "[line " NR "] Error at end: " rest(line, "// error at end: ") > err; compile = 1
        } else if (index(line, "// error at ")) {
            print "[line " NR "] Error at " rest(line, "// error at ") > err; compile = 1
        } else if (index(line, "// error: ")) {
            print "[line " NR "] Error: " rest(line, "// error: ") > err; compile = 1
        } else if (index(line, "// stderr: ")) {
            print rest(line, "// stderr: ") > err; literal = 1
        } else if (index(line, "// exit: ")) {
            code = rest(line, "// exit: ") + 0; explicit = 1
        }
    }
    END {
        if (rtline) {
            print rterr > err
            if (ntrace == 0) print "[line " rtline "] in script" > err
            for (i = 0; i < ntrace; i++) print trace[i] > err
        }
        if (!explicit) code = rtline ? 70 : (compile || literal) ? 65 : 0
        printf "" > out; printf "" > err
        print code > codef
    }' "$1"
}

# First differing line of two files, quoted, for the one-line report.
first_diff() {
    local n a b
    n=$(cmp "$1" "$2" 2>/dev/null | sed -n 's/.* line \([0-9]*\)$/\1/p')
    if [ -z "$n" ]; then   # one is a prefix of the other
        n=$(( $(wc -l < "$1") < $(wc -l < "$2") ? $(wc -l < "$1") + 1 : $(wc -l < "$2") + 1 ))
    fi
    a=$(sed -n "${n}p" "$1"); b=$(sed -n "${n}p" "$2")
    printf 'line %s: expected "%s", got "%s"' "$n" "${a:0:100}" "${b:0:100}"
}

run_one() {
    local file=$1 dir=$2 code expect why=""
    mkdir -p "$dir"
    expectations "$file" "$dir"
    timeout "$TIMEOUT" "$LOX" "$file" > "$dir/actual.out" 2> "$dir/actual.err" < /dev/null
    code=$?
    expect=$(cat "$dir/expected.code")
    if [ "$code" -eq 124 ]; then why="timed out after ${TIMEOUT}s"
    elif [ "$code" -gt 128 ] && [ "$expect" -le 128 ]; then
        why="killed by signal $((code - 128)); stderr: $(grep -v '^\[line ' "$dir/actual.err" | head -c 300 | tr '\n' ' ')"
    elif ! cmp -s "$dir/expected.out" "$dir/actual.out"; then
        why="stdout $(first_diff "$dir/expected.out" "$dir/actual.out")"
    elif ! cmp -s "$dir/expected.err" "$dir/actual.err"; then
        why="stderr $(first_diff "$dir/expected.err" "$dir/actual.err")"
    elif [ "$code" -ne "$expect" ]; then why="exit code $code, expected $expect"
    fi
    if [ -n "$why" ]; then echo "FAIL ${file#"$HERE"/}: $why" > "$dir/result"
    else echo PASS > "$dir/result"; fi
}

# A command-line check: name, expected exit code, expected stdout, expected
# stderr, then the command (stdin from $STDIN_TEXT).
cli_check() {
    local name=$1 want_code=$2 want_out=$3 want_err=$4 dir code
    dir=$WORK/cli-$name
    shift 4
    mkdir -p "$dir"
    printf '%s' "${STDIN_TEXT:-}" | timeout "$TIMEOUT" "$@" > "$dir/out" 2> "$dir/err"
    code=$?
    if [ "$code" -ne "$want_code" ]; then echo "FAIL cli/$name: exit code $code, expected $want_code"
    elif [ "$(cat "$dir/out")" != "$want_out" ]; then echo "FAIL cli/$name: stdout \"$(head -c 200 "$dir/out")\""
    elif [ "$(cat "$dir/err")" != "$want_err" ]; then echo "FAIL cli/$name: stderr \"$(head -c 200 "$dir/err")\""
    else echo PASS; fi
}

i=0
for file in "${FILES[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    run_one "$file" "$WORK/t$i" 2> /dev/null &   # quiet the shell's "Aborted" notices
    i=$((i + 1))
done
wait

passed=0
failed=0
for ((j = 0; j < i; j++)); do
    r=$(cat "$WORK/t$j/result" 2>/dev/null || echo "FAIL ${FILES[$j]}: runner error")
    if [ "$r" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "$r"; fi
done

if [ $# -eq 1 ] && [ "$1" = "$HERE" ]; then
    results=()
    results+=("$(cli_check usage 64 "" "Usage: lox [--precise | --conservative] [--stats] [path]" "$LOX" a.lox b.lox)")
    printf 'print 1 + 2;\n' > "$WORK/three.lox"
    results+=("$(cli_check precise-flag 0 "3" "" "$LOX" --precise "$WORK/three.lox")")
    results+=("$(cli_check conservative-flag 0 "3" "" "$LOX" --conservative "$WORK/three.lox")")
    results+=("$(cli_check unknown-flag 64 "" "Usage: lox [--precise | --conservative] [--stats] [path]" "$LOX" --bogus "$WORK/three.lox")")
    results+=("$(cli_check missing-file 74 "" "Could not open file \"$WORK/nope.lox\"." "$LOX" "$WORK/nope.lox")")
    results+=("$(STDIN_TEXT=$'print 1 + 2;\nvar a = "x";\nprint a + a;\n' \
        cli_check repl 0 $'> 3\n> > xx\n> ' "" "$LOX")")
    results+=("$(STDIN_TEXT=$'print nope;\nprint 1;\nprint;\nprint 2;\n' \
        cli_check repl-errors 0 $'> > 1\n> > 2\n> ' \
        $'Undefined variable \'nope\'.\n[line 1] in script\n[line 1] Error at \';\': Expect expression.' "$LOX")")
    results+=("$(STDIN_TEXT=$'ghost = 1;\nprint ghost;\n' \
        cli_check repl-failed-assignment 0 $'> > > ' \
        $'Undefined variable \'ghost\'.\n[line 1] in script\nUndefined variable \'ghost\'.\n[line 1] in script' "$LOX")")
    for r in "${results[@]}"; do
        if [ "$r" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "$r"; fi
    done
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
