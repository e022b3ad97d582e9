/* tests/test_pagealloc.c -- the page allocator against a reference model.
 *
 * The model is a byte per page over a window of chunks with a linear
 * first-fit search; every allocation must return the model's address (which
 * proves address order, no overlap and coalescing), fail exactly when the
 * model finds nothing, and keep the counters equal.  The window straddles a
 * 16 GiB boundary, so runs cross chunk and summary nodes on every level.
 * Directed tests cover non-contiguous growth, 512/513-page requests, filling
 * a range, scavenging order, the all-free root encoding and failed commits.
 *
 * Randomized: the seed comes from RT_SEED or the clock and is printed. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "os.h"
#include "pagealloc.h"

#define PG       ((uintptr_t)1 << RT_PAGE_SHIFT_PA)
#define CHUNK    RT_CHUNK_BYTES
#define CP       RT_CHUNK_PAGES

/* ---- seeded PRNG (splitmix64) --------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static size_t rnd(size_t lo, size_t hi) { return lo + (size_t)(rng() % (hi - lo + 1)); } /* [lo, hi] */

static void seed_rng(void) {
    const char *e = getenv("RT_SEED");
    uint64_t seed = e && *e ? strtoull(e, NULL, 0)
                            : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    fprintf(stderr, "seed=%llu (replay with RT_SEED=%llu)\n",
            (unsigned long long)seed, (unsigned long long)seed);
    rng_state = seed;
}

/* ---- scavenge callback recorder ------------------------------------------ */

typedef struct { uintptr_t base; size_t n; } run;
typedef struct { run r[4096]; size_t n; } runs;

static void record(uintptr_t base, size_t n, void *ctx) {
    runs *rs = ctx;
    cr_assert_lt(rs->n, 4096);
    rs->r[rs->n++] = (run){ base, n };
}

/* ---- reference model ------------------------------------------------------- */

#define W_CHUNKS 40
#define W_PAGES  (W_CHUNKS * CP)

static struct {
    uintptr_t base;
    uint8_t grown[W_CHUNKS];
    uint8_t used[W_PAGES];
    uint8_t scav[W_PAGES];
    size_t total, inuse, scavd;
} m;

static bool m_free(size_t i) { return m.grown[i / CP] && !m.used[i]; }

/* Linear first fit; W_PAGES if none. */
static size_t m_first_fit(size_t n) {
    size_t run = 0;
    for (size_t i = 0; i < W_PAGES; i++) {
        run = m_free(i) ? run + 1 : 0;
        if (run == n) return i + 1 - n;
    }
    return W_PAGES;
}

static size_t m_mark(size_t p, size_t n) {
    size_t sc = 0;
    for (size_t i = p; i < p + n; i++) {
        sc += m.scav[i];
        m.scav[i] = 0;
        m.used[i] = 1;
    }
    m.inuse += n;
    m.scavd -= sc;
    return sc;
}

/* Model scavenge: highest free unscavenged pages first, maximal runs. */
static size_t m_scavenge(size_t max, runs *out) {
    size_t done = 0;
    out->n = 0;
    for (size_t i = W_PAGES; i-- > 0 && done < max;) {
        if (!m_free(i) || m.scav[i]) continue;
        m.scav[i] = 1;
        done++;
        uintptr_t a = m.base + i * PG;
        if (out->n && out->r[out->n - 1].base == a + PG) {
            out->r[out->n - 1].base = a;
            out->r[out->n - 1].n++;
        } else {
            out->r[out->n++] = (run){ a, 1 };
        }
    }
    m.scavd += done;
    return done;
}

static void grow_both(rt__pagealloc *pa, size_t c0, size_t nc) {
    cr_assert_eq(rt__pages_grow(pa, m.base + c0 * CHUNK, nc * CHUNK), 0);
    for (size_t c = c0; c < c0 + nc; c++) {
        cr_assert(!m.grown[c]);
        m.grown[c] = 1;
        memset(m.scav + c * CP, 1, CP);
    }
    m.total += nc * CP;
    m.scavd += nc * CP;
}

/* Grow a random run of ungrown chunks (if any). */
static void grow_random(rt__pagealloc *pa) {
    size_t c = rnd(0, W_CHUNKS - 1), k;
    for (k = 0; k < W_CHUNKS && m.grown[(c + k) % W_CHUNKS]; k++) {}
    if (k == W_CHUNKS) return;
    c = (c + k) % W_CHUNKS;
    size_t n = 1, want = rnd(1, 4);
    while (n < want && c + n < W_CHUNKS && !m.grown[c + n]) n++;
    grow_both(pa, c, n);
}

static size_t random_size(void) {
    size_t r = rnd(0, 99);
    if (r < 45) return rnd(1, 8);
    if (r < 65) return rnd(9, 64);
    if (r < 80) return rnd(65, 511);
    if (r < 88) { static const size_t edge[] = { 63, 64, 65, 128, 511, 512, 513, 1024, 1025 };
                  return edge[rnd(0, 8)]; }
    if (r < 96) return rnd(514, 1100);
    return rnd(1101, 3 * CP + 7);
}

static void check_counters(const rt__pagealloc *pa) {
    cr_assert_eq(rt__pages_total(pa), m.total);
    cr_assert_eq(rt__pages_inuse(pa), m.inuse);
    cr_assert_eq(rt__pages_scavenged(pa), m.scavd);
}

/* One round: a window of W_CHUNKS chunks at `base`, a few ranges grown at
   random, then `steps` random operations checked against the model. */
static void random_round(uintptr_t base, size_t steps, size_t *stats) {
    memset(&m, 0, sizeof m);
    m.base = base;
    rt__pagealloc *pa = rt__pages_new();
    cr_assert_not_null(pa);
    for (size_t k = rnd(1, 4); k > 0; k--) grow_random(pa);

    static uintptr_t live_a[W_PAGES];
    static size_t live_n[W_PAGES];
    static runs want, got;
    size_t nlive = 0;
    for (size_t step = 0; step < steps; step++) {
        /* Alternate filling and draining phases so exhaustion happens. */
        unsigned p_alloc = (step / 3000) % 2 ? 35 : 70;
        size_t r = rnd(0, 999);
        if (r < 4) {
            grow_random(pa);
        } else if (r < 20) {
            size_t max = rnd(1, 3000);
            got.n = 0;
            size_t w = m_scavenge(max, &want);
            size_t g = rt__pages_scavenge(pa, max, record, &got);
            cr_assert_eq(g, w, "step %zu: scavenge(%zu) marked %zu, model %zu", step, max, g, w);
            cr_assert_eq(got.n, want.n, "step %zu: %zu runs, model %zu", step, got.n, want.n);
            for (size_t i = 0; i < got.n; i++)
                cr_assert(got.r[i].base == want.r[i].base && got.r[i].n == want.r[i].n,
                          "step %zu run %zu: [%#lx,+%zu) model [%#lx,+%zu)", step, i,
                          (unsigned long)got.r[i].base, got.r[i].n,
                          (unsigned long)want.r[i].base, want.r[i].n);
        } else if (nlive == 0 || rnd(0, 99) < p_alloc) {
            size_t n = random_size(), sc = 12345;
            size_t want_p = m_first_fit(n);
            uintptr_t a = rt__pages_alloc(pa, n, &sc);
            if (want_p == W_PAGES) {
                cr_assert_eq(a, 0, "step %zu: alloc(%zu) = %#lx, model finds nothing",
                             step, n, (unsigned long)a);
                cr_assert_eq(sc, 0);
                stats[1]++;
            } else {
                cr_assert_eq(a, m.base + want_p * PG, "step %zu: alloc(%zu) = %#lx, model %#lx",
                             step, n, (unsigned long)a, (unsigned long)(m.base + want_p * PG));
                size_t wsc = m_mark(want_p, n);
                cr_assert_eq(sc, wsc, "step %zu: scavenged %zu, model %zu", step, sc, wsc);
                live_a[nlive] = a;
                live_n[nlive++] = n;
                stats[0]++;
                if (want_p / CP != (want_p + n - 1) / CP) stats[2]++;
            }
        } else {
            size_t i = rnd(0, nlive - 1);
            rt__pages_free(pa, live_a[i], live_n[i]);
            memset(m.used + (live_a[i] - m.base) / PG, 0, live_n[i]);
            m.inuse -= live_n[i];
            live_a[i] = live_a[--nlive];
            live_n[i] = live_n[nlive];
        }
        check_counters(pa);
        if (step % 97 == 0) {
            cr_assert_eq(rt__pages_check(pa), 0);
            for (int k = 0; k < 16; k++) {
                size_t i = rnd(0, W_PAGES - 1);
                uintptr_t a = m.base + i * PG;
                cr_assert_eq(rt__pages_is_allocated(pa, a), m.grown[i / CP] && m.used[i]);
                cr_assert_eq(rt__pages_is_scavenged(pa, a), m.grown[i / CP] && m.scav[i]);
            }
        }
    }
    cr_assert_eq(rt__pages_check(pa), 0);
    /* Drain: everything coalesces back into the grown ranges. */
    while (nlive) { nlive--; rt__pages_free(pa, live_a[nlive], live_n[nlive]); }
    cr_assert_eq(rt__pages_inuse(pa), 0);
    size_t c = 0;
    while (c < W_CHUNKS) {
        size_t e = c;
        while (e < W_CHUNKS && m.grown[e] == m.grown[c]) e++;
        if (m.grown[c]) {   /* each grown range is one free run again */
            cr_assert_eq(rt__pages_alloc(pa, (e - c) * CP, NULL), m.base + c * CHUNK);
        }
        c = e;
    }
    cr_assert_eq(rt__pages_inuse(pa), rt__pages_total(pa));
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_destroy(pa);
}

Test(pagealloc, randomized_vs_model, .timeout = 120) {
    seed_rng();
    /* Windows placed so that chunk 16 starts at a 16 GiB boundary (a boundary
       of every summary level), at a 256 MiB boundary, and anywhere. */
    const uintptr_t bases[] = {
        ((uintptr_t)0x2b << 34) - 16 * CHUNK,
        ((uintptr_t)0x7f123 << 28) - 16 * CHUNK,
        (uintptr_t)rnd(1, ((size_t)1 << 26) - W_CHUNKS - 1) * CHUNK,
        (uintptr_t)1 << 34,
    };
    size_t stats[3] = { 0, 0, 0 };   /* allocations, exhausted, across chunks */
    for (size_t r = 0; r < sizeof bases / sizeof bases[0]; r++)
        random_round(bases[r], 40000, stats);
    cr_log_info("%zu allocations (%zu across chunks), %zu exhausted", stats[0], stats[2], stats[1]);
    cr_assert_gt(stats[1], 0, "the sequence never exhausted the heap");
    cr_assert_gt(stats[2], 0);
}

/* ---- directed tests -------------------------------------------------------- */

Test(pagealloc, noncontiguous_ranges) {
    rt__pagealloc *pa = rt__pages_new();
    uintptr_t hi = (uintptr_t)0x7f0040000000, lo = hi - ((uintptr_t)1 << 30);  /* 1 GiB apart */
    cr_assert_eq(rt__pages_grow(pa, hi, 2 * CHUNK), 0);
    cr_assert_eq(rt__pages_grow(pa, lo, 2 * CHUNK), 0);   /* lower range added later */
    cr_assert_eq(rt__pages_total(pa), 4 * CP);
    size_t sc;
    cr_assert_eq(rt__pages_alloc(pa, 1, &sc), lo);
    cr_assert_eq(sc, 1);
    cr_assert_eq(rt__pages_alloc(pa, 1000, &sc), lo + PG);
    /* 23 pages left at the top of `lo`: 48 must not bridge the gap. */
    cr_assert_eq(rt__pages_alloc(pa, 48, NULL), hi);
    cr_assert_eq(rt__pages_alloc(pa, 23, NULL), lo + 1001 * PG);
    cr_assert_eq(rt__pages_alloc(pa, 2 * CP - 48 + 1, NULL), 0);
    cr_assert_eq(rt__pages_alloc(pa, 2 * CP - 48, NULL), hi + 48 * PG);
    cr_assert_eq(rt__pages_inuse(pa), 4 * CP);
    cr_assert_eq(rt__pages_alloc(pa, 1, NULL), 0);
    cr_assert(!rt__pages_is_allocated(pa, lo + 2 * CHUNK));   /* the gap */
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_free(pa, hi, 48);
    cr_assert_eq(rt__pages_alloc(pa, 49, NULL), 0);
    cr_assert_eq(rt__pages_alloc(pa, 48, NULL), hi);
    rt__pages_free(pa, lo + PG, 1000);
    cr_assert_eq(rt__pages_alloc(pa, 1000, NULL), lo + PG);
    cr_assert_eq(rt__pages_check(pa), 0);
    /* Free runs on both sides of the gap stay separate runs, high one first. */
    rt__pages_free(pa, lo + 1001 * PG, 23);
    rt__pages_free(pa, hi, 48);
    runs rs = { .n = 0 };
    cr_assert_eq(rt__pages_scavenge(pa, 1000, record, &rs), 71);
    cr_assert_eq(rs.n, 2);
    cr_assert(rs.r[0].base == hi && rs.r[0].n == 48);
    cr_assert(rs.r[1].base == lo + 1001 * PG && rs.r[1].n == 23);
    cr_assert_eq(rt__pages_scavenged(pa), 71);
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_destroy(pa);
}

Test(pagealloc, requests_of_512_and_513) {
    rt__pagealloc *pa = rt__pages_new();
    uintptr_t base = ((uintptr_t)0x123 << 25) - 2 * CHUNK;   /* a 32 MiB node boundary at chunk 2 */
    cr_assert_eq(rt__pages_grow(pa, base, 4 * CHUNK), 0);
    cr_assert_eq(rt__pages_alloc(pa, 512, NULL), base);
    cr_assert_eq(rt__pages_alloc(pa, 513, NULL), base + 512 * PG);
    cr_assert_eq(rt__pages_alloc(pa, 1, NULL), base + 1025 * PG);
    cr_assert_eq(rt__pages_alloc(pa, 512, NULL), base + 1026 * PG);  /* straddles chunks 2/3 */
    cr_assert_eq(rt__pages_alloc(pa, 511, NULL), 0);                 /* 510 left */
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_free(pa, base, 512);
    cr_assert_eq(rt__pages_alloc(pa, 513, NULL), 0);
    cr_assert_eq(rt__pages_alloc(pa, 512, NULL), base);
    rt__pages_free(pa, base + 512 * PG, 513);
    rt__pages_free(pa, base + 1025 * PG, 1);
    cr_assert_eq(rt__pages_alloc(pa, 514, NULL), base + 512 * PG);
    cr_assert_eq(rt__pages_alloc(pa, 510, NULL), base + 1538 * PG);
    cr_assert_eq(rt__pages_inuse(pa), 4 * CP);
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_destroy(pa);
}

Test(pagealloc, fill_range_completely) {
    seed_rng();
    rt__pagealloc *pa = rt__pages_new();
    uintptr_t base = (uintptr_t)0x500000000000;
    const size_t n = 3 * CP;
    static uintptr_t got[3 * CP];
    cr_assert_eq(rt__pages_grow(pa, base, 3 * CHUNK), 0);
    for (size_t i = 0; i < n; i++) {
        got[i] = rt__pages_alloc(pa, 1, NULL);
        cr_assert_eq(got[i], base + i * PG);
    }
    cr_assert_eq(rt__pages_alloc(pa, 1, NULL), 0);
    cr_assert_eq(rt__pages_inuse(pa), rt__pages_total(pa));
    cr_assert_eq(rt__pages_check(pa), 0);
    for (size_t i = n; i > 1; i--) {                         /* free in random order */
        size_t j = rnd(0, i - 1);
        uintptr_t t = got[j]; got[j] = got[i - 1]; got[i - 1] = t;
    }
    for (size_t i = 0; i < n; i++) rt__pages_free(pa, got[i], 1);
    cr_assert_eq(rt__pages_inuse(pa), 0);
    cr_assert_eq(rt__pages_alloc(pa, n + 1, NULL), 0);
    cr_assert_eq(rt__pages_alloc(pa, n, NULL), base);
    cr_assert_eq(rt__pages_scavenged(pa), 0);
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_destroy(pa);
}

Test(pagealloc, scavenge_highest_first) {
    rt__pagealloc *pa = rt__pages_new();
    uintptr_t base = (uintptr_t)0x600000000000;
    size_t sc;
    runs rs = { .n = 0 };
    cr_assert_eq(rt__pages_grow(pa, base, 2 * CHUNK), 0);
    cr_assert_eq(rt__pages_scavenged(pa), 1024);
    cr_assert(rt__pages_is_scavenged(pa, base + 700 * PG));
    cr_assert_eq(rt__pages_scavenge(pa, 100, record, &rs), 0);   /* all scavenged already */
    cr_assert_eq(rs.n, 0);
    cr_assert_eq(rt__pages_alloc(pa, 1024, &sc), base);
    cr_assert_eq(sc, 1024);
    cr_assert_eq(rt__pages_scavenged(pa), 0);
    rt__pages_free(pa, base + 10 * PG, 10);      /* [10, 20)   */
    rt__pages_free(pa, base + 100 * PG, 200);    /* [100, 300) */
    rt__pages_free(pa, base + 400 * PG, 624);    /* [400, 1024): crosses the chunk boundary */
    cr_assert_eq(rt__pages_scavenged(pa), 0);
    cr_assert(!rt__pages_is_scavenged(pa, base + 500 * PG));

    cr_assert_eq(rt__pages_scavenge(pa, 50, record, &rs), 50);
    cr_assert_eq(rs.n, 1);
    cr_assert_eq(rs.r[0].base, base + 974 * PG);
    cr_assert_eq(rs.r[0].n, 50);
    cr_assert_eq(rt__pages_scavenged(pa), 50);

    rs.n = 0;
    cr_assert_eq(rt__pages_scavenge(pa, 1000, record, &rs), 574 + 200 + 10);
    cr_assert_eq(rs.n, 3);
    cr_assert_eq(rs.r[0].base, base + 400 * PG); cr_assert_eq(rs.r[0].n, 574);
    cr_assert_eq(rs.r[1].base, base + 100 * PG); cr_assert_eq(rs.r[1].n, 200);
    cr_assert_eq(rs.r[2].base, base + 10 * PG);  cr_assert_eq(rs.r[2].n, 10);
    cr_assert_eq(rt__pages_scavenged(pa), 834);
    rs.n = 0;
    cr_assert_eq(rt__pages_scavenge(pa, 1000, record, &rs), 0);
    cr_assert_eq(rs.n, 0);
    cr_assert_eq(rt__pages_check(pa), 0);

    /* Partial scavenge in the middle of a run takes its top. */
    rt__pages_free(pa, base + 300 * PG, 100);    /* [300, 400) unscavenged, between scavenged runs */
    rs.n = 0;
    cr_assert_eq(rt__pages_scavenge(pa, 30, record, &rs), 30);
    cr_assert_eq(rs.n, 1);
    cr_assert_eq(rs.r[0].base, base + 370 * PG);
    cr_assert_eq(rt__pages_check(pa), 0);

    /* Allocation reports and clears the scavenged pages it takes. */
    cr_assert_eq(rt__pages_alloc(pa, 5, &sc), base + 10 * PG);
    cr_assert_eq(sc, 5);
    cr_assert_eq(rt__pages_alloc(pa, 700, &sc), base + 100 * PG);  /* [100, 800) */
    cr_assert_eq(sc, 200 + 30 + 400);
    cr_assert(!rt__pages_is_scavenged(pa, base + 380 * PG));
    cr_assert_eq(rt__pages_scavenged(pa), 834 + 30 - 5 - 630);
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_destroy(pa);
}

Test(pagealloc, whole_root_entry_free) {
    /* A fully free 16 GiB root entry has 2^21 free pages, one more than 21
       bits hold.  Grow it plus the chunk below it and cross the boundary. */
    rt__pagealloc *pa = rt__pages_new();
    uintptr_t root = (uintptr_t)0x3 << 34;
    size_t big = (size_t)1 << 21;
    cr_assert_eq(rt__pages_grow(pa, root, (size_t)1 << 34), 0);
    cr_assert_eq(rt__pages_grow(pa, root - CHUNK, CHUNK), 0);
    cr_assert_eq(rt__pages_check(pa), 0);
    cr_assert_eq(rt__pages_alloc(pa, big + CP + 1, NULL), 0);
    cr_assert_eq(rt__pages_alloc(pa, big + CP, NULL), root - CHUNK);
    cr_assert_eq(rt__pages_alloc(pa, 1, NULL), 0);
    rt__pages_free(pa, root - CHUNK, big + CP);
    cr_assert_eq(rt__pages_alloc(pa, 1, NULL), root - CHUNK);
    /* 511 + 2^21 free pages in a row now: the first fit starts below root. */
    cr_assert_eq(rt__pages_alloc(pa, big, NULL), root - CHUNK + PG);
    rt__pages_free(pa, root - CHUNK + PG, big);
    cr_assert_eq(rt__pages_alloc(pa, CP - 1, NULL), root - CHUNK + PG);
    cr_assert_eq(rt__pages_alloc(pa, big, NULL), root);             /* exactly the root entry */
    cr_assert_eq(rt__pages_alloc(pa, 1, NULL), 0);
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_free(pa, root + 7 * PG, big - 7);
    cr_assert_eq(rt__pages_alloc(pa, big - 7, NULL), root + 7 * PG);
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_destroy(pa);
}

Test(pagealloc, failed_commit_changes_nothing) {
    rt__pagealloc *pa = rt__pages_new();
    cr_assert_not_null(pa);
    uintptr_t base = (uintptr_t)0x400000000000;
    rt__os_set_failmmap(1);
    cr_assert_eq(rt__pages_grow(pa, base, 8 * CHUNK), -1);
    rt__os_set_failmmap(0);
    cr_assert_eq(rt__pages_total(pa), 0);
    cr_assert_eq(rt__pages_alloc(pa, 1, NULL), 0);
    cr_assert(!rt__pages_is_allocated(pa, base));
    cr_assert_eq(rt__pages_check(pa), 0);
    cr_assert_eq(rt__pages_grow(pa, base, 8 * CHUNK), 0);
    cr_assert_eq(rt__pages_alloc(pa, 8 * CP, NULL), base);
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_destroy(pa);
}
