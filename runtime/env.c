/* runtime/env.c -- configuration: one table of options read by both
 * rt_init's rt_options and the environment (RTGC, RTMEMLIMIT, RTMAXPROCS,
 * RTDEBUG).  Precedence: defaults < rt_options < environment < setters.
 * A malformed value prints one line naming the variable and the accepted
 * forms, and the previous value stays. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

rt_config rt__cfg;

enum opt_kind { OPT_PERCENT, OPT_BYTES, OPT_SIZE, OPT_POSINT, OPT_INT, OPT_COUNT };

typedef struct opt {
    const char   *env;        /* environment variable, or NULL for RTDEBUG keys */
    const char   *key;        /* RTDEBUG key, or NULL */
    enum opt_kind kind;
    size_t        cfg_off;    /* field in rt_config */
    int           cfg_is_64;  /* field is int64_t/uint64_t rather than int */
    const char   *forms;      /* the accepted forms, for error messages */
    const char   *doc;
} opt;

#define F(field) offsetof(rt_config, field)
static const opt options[] = {
    { "RTGC",       NULL, OPT_PERCENT, F(gc_percent),   0, "a percentage such as 100, or off", "heap growth before the next cycle, like GOGC" },
    { "RTMEMLIMIT", NULL, OPT_BYTES,   F(memory_limit), 1, "a byte count such as 512MiB, 2GiB, 1e9 (units B, KiB, MiB, GiB, TiB), or off", "soft memory limit, like GOMEMLIMIT" },
    { "RTMAXPROCS", NULL, OPT_POSINT,  F(maxprocs),     0, "a positive integer", "number of Ps the collector aims to use, like GOMAXPROCS" },
    { "RTHEAPMIN",  NULL, OPT_SIZE,    F(heap_minimum), 1, "a byte count of at least 64KiB, such as 512KiB or 4MiB", "the smallest heap goal at RTGC=100 (Go's 4 MiB heapMinimum)" },
    { NULL, "gctrace",        OPT_INT,   F(gctrace),        0, "0, 1 or 2", "print one line per collection" },
    { NULL, "gccheckmark",    OPT_INT,   F(gccheckmark),    0, "0 or 1", "verify the mark by marking again with the world stopped" },
    { NULL, "gcstoptheworld", OPT_INT,   F(gcstoptheworld), 0, "0, 1 or 2", "1: mark with the world stopped; 2: sweep too" },
    { NULL, "gcstress",       OPT_COUNT, F(gcstress),       1, "a count N >= 0", "a collection every N allocations" },
    { NULL, "smallgc",        OPT_COUNT, F(smallgc),        1, "a byte count N >= 0", "small cycles: a mark expected to scan at most N bytes runs in one pause; 0: never" },
    { NULL, "clobberfree",    OPT_INT,   F(clobberfree),    0, "0 or 1", "fill freed slots with 0xdeadbeef" },
    { NULL, "invalidptr",     OPT_INT,   F(invalidptr),     0, "0 or 1", "stop on a precise slot pointing into a free slot" },
    { NULL, "scavtrace",      OPT_INT,   F(scavtrace),      0, "0 or 1", "print the scavenger's line per cycle" },
    { NULL, "madvdontneed",   OPT_INT,   F(madvdontneed),   0, "0 or 1", "1: MADV_DONTNEED, 0: MADV_FREE" },
    { NULL, "hugepages",      OPT_INT,   F(hugepages),      0, "0, 1 or 2", "heap huge pages: 0 the system's THP setting, 1 ask for them, 2 refuse them" },
    { NULL, "failmmap",       OPT_COUNT, F(failmmap),       1, "a count N >= 0", "the Nth and later mmap calls fail (testing)" },
    { NULL, "verify",         OPT_INT,   F(verify),         0, "0 or 1", "verify the heap after every cycle" },
    { NULL, "checkfinalizers", OPT_INT,  F(checkfinalizers), 0, "0 or 1", "report cleanups and finalizers that keep their object alive" },
};
#undef F

static void store(const opt *o, int64_t v) {
    char *f = (char *)&rt__cfg + o->cfg_off;
    if (o->cfg_is_64) memcpy(f, &v, sizeof v);
    else { int i = (int)v; memcpy(f, &i, sizeof i); }
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* Go's GOMEMLIMIT forms: digits (or a float like 1e9) with an optional
   unit B, KiB, MiB, GiB, TiB; or "off". */
static bool parse_bytes(const char *s, int64_t *out) {
    if (strcmp(s, "off") == 0) { *out = INT64_MAX; return true; }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0) || isinf(v)) return false;
    static const struct { const char *u; double m; } units[] = {
        { "", 1 }, { "B", 1 }, { "KiB", 1024.0 }, { "MiB", 1048576.0 },
        { "GiB", 1073741824.0 }, { "TiB", 1099511627776.0 },
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].u) == 0) {
            double b = v * units[i].m;
            if (b >= 9.2e18) return false;
            *out = (int64_t)b;
            return true;
        }
    }
    return false;
}

static bool parse_value(const opt *o, const char *s, int64_t *v) {
    while (isspace((unsigned char)*s)) s++;
    switch (o->kind) {
    case OPT_PERCENT:
        if (strcmp(s, "off") == 0) { *v = -1; return true; }
        return parse_int(s, 0, 1000000, v);
    case OPT_BYTES:  return parse_bytes(s, v);
    case OPT_SIZE:   return parse_bytes(s, v) && *v != INT64_MAX && *v >= (int64_t)RT_MIN_HEAP_FLOOR;
    case OPT_POSINT: return parse_int(s, 1, 4096, v);
    case OPT_INT:    return parse_int(s, 0, 1000, v);
    case OPT_COUNT:  return parse_int(s, 0, INT64_MAX, v);
    }
    return false;
}

/* Apply one "k=v,k=v" debug string; origin names it in warnings.
   Returns the number of malformed entries. */
int rt__parse_debug(const char *s, const char *origin) {
    int bad = 0;
    while (s && *s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char item[128];
        if (len >= sizeof item) len = sizeof item - 1;
        memcpy(item, s, len);
        item[len] = 0;
        char *eq = strchr(item, '=');
        if (len > 0) {
            const opt *found = NULL;
            if (eq) {
                *eq = 0;
                for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
                    if (options[i].key && strcmp(options[i].key, item) == 0) found = &options[i];
            }
            int64_t v;
            if (!eq || !found) {
                char keys[512] = "";
                for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
                    if (options[i].key) {
                        if (keys[0]) strncat(keys, ", ", sizeof keys - strlen(keys) - 1);
                        strncat(keys, options[i].key, sizeof keys - strlen(keys) - 1);
                    }
                rt__warn("%s: unknown setting '%s'; accepted keys: %s (k=v,k=v)", origin, item, keys);
                bad++;
            } else if (!parse_value(found, eq + 1, &v)) {
                rt__warn("%s: %s=%s is malformed; %s takes %s; keeping the default", origin, item, eq + 1,
                         item, found->forms);
                bad++;
            } else {
                store(found, v);
            }
        }
        s = comma ? comma + 1 : NULL;
    }
    return bad;
}

static void load_env(void) {
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const opt *o = &options[i];
        if (!o->env) continue;
        const char *s = getenv(o->env);
        if (!s) continue;
        int64_t v;
        if (parse_value(o, s, &v)) store(o, v);
        else rt__warn("%s=%s is malformed; it takes %s; keeping the default", o->env, s, o->forms);
    }
    const char *d = getenv("RTDEBUG");
    if (d) rt__parse_debug(d, "RTDEBUG");
}

int rt__procs(void) {
    int n = rt__cfg.maxprocs < rt__ncpu() ? rt__cfg.maxprocs : rt__ncpu();
    return n > 0 ? n : 1;
}

void rt__config_load(const rt_options *opts) {
    memset(&rt__cfg, 0, sizeof rt__cfg);
    rt__cfg.gc_percent = 100;
    rt__cfg.memory_limit = INT64_MAX;
    rt__cfg.maxprocs = rt__ncpu();
    rt__cfg.scan_thread_stacks = 1;
    rt__cfg.madvdontneed = 1;
    rt__cfg.heap_minimum = RT_MIN_HEAP;
    rt__cfg.smallgc = RT_SMALL_CYCLE_WORK;
#ifdef RT_DEBUG
    rt__cfg.verify = 1;
#endif
    if (opts) {
        if (opts->gc_percent == RT_GC_OFF) rt__cfg.gc_percent = -1;
        else if (opts->gc_percent > 0) rt__cfg.gc_percent = opts->gc_percent;
        else if (opts->gc_percent < 0) rt__warn("rt_options.gc_percent=%d is invalid; use a percentage or RT_GC_OFF", opts->gc_percent);
        if (opts->memory_limit > 0) rt__cfg.memory_limit = opts->memory_limit;
        if (opts->maxprocs > 0) rt__cfg.maxprocs = opts->maxprocs;
        if (opts->heap_minimum > 0) rt__cfg.heap_minimum = opts->heap_minimum;   /* rt_init checked the range */
        rt__cfg.scan_thread_stacks = opts->scan_thread_stacks != RT_SCAN_STACKS_OFF;
        if (opts->debug) rt__parse_debug(opts->debug, "rt_options.debug");
    }
    load_env();
}
