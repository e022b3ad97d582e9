/* tests/test_metapool.c -- the releasable record pools (runtime/metapool.c)
 * that hold span structs and bitmaps.
 *
 * A seeded random sequence of allocations, frees and releases is checked
 * against a model (every live record keeps the tag written into it, so two
 * records that overlap show; records come back zeroed; the pool's own
 * check runs throughout), plus the placement rules the release depends
 * on: lowest slab first for allocation, highest first for release.
 * METAPOOL_SEED=N replays a run. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define REC 40          /* bytes: not a divisor of the slab, as a span struct */
#define LINK 16
#define MAXLIVE 20000

static void *live[MAXLIVE];
static uint64_t tag[MAXLIVE];
static size_t nlive;
static uint64_t rng;

static uint64_t next(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

static rt__metapool new_pool(void) {
    return (rt__metapool){ .name = "test", .rec_bytes = REC, .link_off = LINK, .region_bytes = 64u << 20 };
}

static void fill(void *r, uint64_t t) {
    for (size_t i = 0; i < REC / 8; i++) ((uint64_t *)r)[i] = t + i;
}

static bool intact(const void *r, uint64_t t) {
    for (size_t i = 0; i < REC / 8; i++) if (((const uint64_t *)r)[i] != t + i) return false;
    return true;
}

static bool zero(const void *r, size_t n) {
    for (size_t i = 0; i < n; i++) if (((const char *)r)[i]) return false;
    return true;
}

static void alloc_one(rt__metapool *p) {
    void *r = rt__metapool_alloc(p);
    cr_assert_not_null(r);
    cr_assert(zero(r, REC), "record %p came back dirty", r);
    cr_assert_eq((uintptr_t)r % 8, 0);
    cr_assert((char *)r >= p->base && (char *)r + REC <= p->base + p->nslabs * p->slab_bytes);
    uint64_t t = next() | 1;
    fill(r, t);
    live[nlive] = r;
    tag[nlive++] = t;
}

static void free_one(rt__metapool *p, size_t i) {
    cr_assert(intact(live[i], tag[i]), "record %p was overwritten while live", live[i]);
    rt__metapool_free(p, live[i]);
    live[i] = live[--nlive];
    tag[i] = tag[nlive];
}

/* Release every empty slab the way rt__span_pools_release does. */
static size_t release_all(rt__metapool *p) {
    size_t slabs = 0;
    void *start;
    size_t bytes, n;
    while ((n = rt__metapool_take_empty(p, 16, &start, &bytes)) != 0) {
        cr_assert_eq(bytes, n * p->slab_bytes);
        int rc = rt__os_release(start, bytes);
        cr_assert_geq(rc, 0);
        rt__metapool_return_empty(p, start, n, rc);
        cr_assert(zero(start, bytes), "a released slab does not read as zero");
        slabs += n;
    }
    return slabs;
}

Test(metapool, random_sequence_matches_the_model) {
    uint64_t seed = (uint64_t)time(NULL);
    if (getenv("METAPOOL_SEED")) seed = strtoull(getenv("METAPOOL_SEED"), NULL, 0);
    fprintf(stderr, "metapool: seed %llu (METAPOOL_SEED=%llu to repeat)\n", (unsigned long long)seed,
            (unsigned long long)seed);
    rng = seed * 2654435761u + 1;
    rt__metapool p = new_pool();
    nlive = 0;
    size_t released = 0;
    for (int step = 0; step < 200000; step++) {
        uint64_t r = next() % 1000;
        /* Phases of growth and of shrinking, so slabs fill and empty. */
        bool growing = (step / 20000) % 2 == 0;
        if (r < (growing ? 700u : 300u) && nlive < MAXLIVE) alloc_one(&p);
        else if (r < 995 && nlive) free_one(&p, next() % nlive);
        else released += release_all(&p);
        cr_assert_eq(p.inuse, nlive);
        if (step % 5000 == 0) rt__metapool_check(&p);
    }
    rt__metapool_check(&p);
    for (size_t i = 0; i < nlive; i++) cr_assert(intact(live[i], tag[i]), "record %zu lost its contents", i);
    size_t resident = (size_t)(p.resident_bytes / p.slab_bytes);
    /* Every slab that is not empty must be resident; empty ones go. */
    released += release_all(&p);
    rt__metapool_check(&p);
    size_t occupied = 0;
    for (size_t i = 0; i < p.nslabs; i++) occupied += p.groups[i / 64].slab[i % 64].nfree < p.per_slab;
    cr_assert_eq(p.resident_bytes, occupied * p.slab_bytes, "%llu resident bytes for %zu occupied slabs",
                 (unsigned long long)p.resident_bytes, occupied);
    fprintf(stderr, "metapool: %zu slabs, %zu resident before the last release, %zu occupied; %zu slab releases\n",
            p.nslabs, resident, occupied, released);
    cr_assert_gt(released, 0, "no slab was ever empty");
    while (nlive) free_one(&p, nlive - 1);
    rt__metapool_reset(&p);
    rt__metapool_check(&p);
    cr_assert_eq(p.resident_bytes, 0);
}

Test(metapool, allocation_fills_the_lowest_slabs_and_release_starts_at_the_top) {
    rt__metapool p = new_pool();
    nlive = 0;
    rng = 12345;
    for (int i = 0; i < 10000; i++) alloc_one(&p);
    size_t grown = p.nslabs, touched = (10000 + p.per_slab - 1) / p.per_slab;
    cr_assert_eq(p.resident_bytes, touched * p.slab_bytes, "slabs committed but never touched count as resident");
    /* Free everything in a scattered order, then allocate a few: they must
       land in the first slabs, not wherever the last free was. */
    while (nlive) free_one(&p, next() % nlive);
    rt__metapool_check(&p);
    size_t k = 3 * p.per_slab + 1;
    for (size_t i = 0; i < k; i++) alloc_one(&p);
    for (size_t i = 0; i < nlive; i++)
        cr_assert_lt((char *)live[i], p.base + 4 * p.slab_bytes, "record %zu is in slab %zu", i,
                     (size_t)(((char *)live[i] - p.base) / p.slab_bytes));
    /* The first run released is the top of what was touched. */
    void *start;
    size_t bytes;
    size_t n = rt__metapool_take_empty(&p, 8, &start, &bytes);
    cr_assert_eq(n, 8);
    cr_assert_eq((char *)start + bytes, p.base + touched * p.slab_bytes);
    rt__metapool_return_empty(&p, start, n, rt__os_release(start, bytes));
    cr_assert_eq(p.resident_bytes, (touched - 8) * p.slab_bytes);
    /* Filling the touched slabs again takes the released ones back before
       any slab above them. */
    while (nlive < touched * p.per_slab) alloc_one(&p);
    cr_assert_eq(p.nslabs, grown);
    cr_assert_eq(p.resident_bytes, touched * p.slab_bytes, "the released slabs were not taken back");
    for (size_t i = 0; i < nlive; i++) cr_assert_lt((char *)live[i], p.base + touched * p.slab_bytes);
    rt__metapool_check(&p);
    while (nlive) free_one(&p, nlive - 1);
    rt__metapool_reset(&p);
}

Test(metapool, a_refused_release_keeps_the_slabs_usable) {
    rt__metapool p = new_pool();
    nlive = 0;
    rng = 777;
    for (size_t i = 0; i < 4 * 102; i++) alloc_one(&p);
    while (nlive) free_one(&p, nlive - 1);
    void *start;
    size_t bytes;
    size_t n = rt__metapool_take_empty(&p, 4, &start, &bytes);
    cr_assert_eq(n, 4);
    /* Taken slabs are out of use: allocating must not hand them out. */
    for (size_t i = 0; i < p.per_slab; i++) {
        alloc_one(&p);
        cr_assert((char *)live[nlive - 1] < (char *)start || (char *)live[nlive - 1] >= (char *)start + bytes);
    }
    rt__metapool_return_empty(&p, start, n, -1);
    rt__metapool_check(&p);
    cr_assert_eq(rt__metapool_take_empty(&p, 64, &start, &bytes) > 0, true, "refused slabs are empty again");
    rt__metapool_return_empty(&p, start, bytes / p.slab_bytes, -1);
    while (nlive) free_one(&p, nlive - 1);
    rt__metapool_check(&p);
    rt__metapool_reset(&p);
}

/* Through the heap: a dead spike's span structs and bitmaps go back with
   rt_free_os_memory; the survivors' stay. */
Test(metapool, a_dead_spike_gives_its_span_records_back) {
    rt_options o = { .gc_percent = 100, .scan_thread_stacks = 0 };
    cr_assert_eq(rt_init(&o), RT_OK);
    cr_assert_eq(rt_thread_attach(), RT_OK);
    static void *keep[2048], *spike[65536];
    rt_root *r1 = rt_root_add_range(keep, sizeof keep, RT_ROOT_PRECISE);
    rt_root *r2 = rt_root_add_range(spike, sizeof spike, RT_ROOT_PRECISE);
    for (int i = 0; i < 2048; i++) keep[i] = rt_alloc(4096, RT_NOSCAN);
    for (int i = 0; i < 65536; i++) memset(spike[i] = rt_alloc(4096, RT_NOSCAN), 1, 8);
    uint64_t peak = rt__metapool_resident_total();
    rt_scav_stats s0, s1;
    rt__scavenger_read_stats(&s0);
    memset(spike, 0, sizeof spike);
    rt_free_os_memory();
    rt__scavenger_read_stats(&s1);
    uint64_t after = rt__metapool_resident_total();
    fprintf(stderr, "metapool: span and bitmap pools %.2f MiB with the spike, %.2f MiB after; "
            "%.2f MiB of metadata released\n", (double)peak / (1 << 20), (double)after / (1 << 20),
            (double)(s1.released_meta - s0.released_meta) / (1 << 20));
    cr_assert_geq(peak, 32768 * sizeof(rt_span), "the spike's 32768 spans hold %llu bytes of records",
                  (unsigned long long)peak);
    cr_assert_leq(after, peak / 8, "pools hold %llu of %llu bytes after the spike died",
                  (unsigned long long)after, (unsigned long long)peak);
    cr_assert_geq(s1.released_meta - s0.released_meta, peak / 2);
    for (int i = 0; i < 2048; i++) cr_assert_not_null(rt__span_of((uintptr_t)keep[i]));
    rt__heap_check();
    /* The pools grow again from released slabs. */
    for (int i = 0; i < 65536; i++) spike[i] = rt_alloc(4096, RT_NOSCAN);
    rt__heap_check();
    rt_root_remove(r2);
    rt_root_remove(r1);
    rt_shutdown();
    cr_assert_eq(rt__metapool_resident_total(), 0, "rt_shutdown leaves %llu bytes of pool pages",
                 (unsigned long long)rt__metapool_resident_total());
}
