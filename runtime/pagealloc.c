/* runtime/pagealloc.c -- the page allocator (Go's pageAlloc, mpagealloc.go).
 *
 * Owns: which 8 KiB heap pages are in use and which free pages have been
 * returned to the OS ("scavenged").  It never touches heap memory itself;
 * it hands out page addresses to mheap, which holds the heap lock around
 * every call here.
 *
 * Algorithm.  Allocation is address-ordered first fit.  The address space
 * (48 bits) is cut into 4 MiB chunks of 512 pages; each chunk has a bitmap
 * (1 = in use) and a scavenged bitmap.  Over the chunks sits a radix tree of
 * summaries with 5 levels: the root has 2^14 entries of 16 GiB each, every
 * lower level splits an entry into 8 (2 GiB, 256 MiB, 32 MiB, 4 MiB); the
 * leaf level has one entry per chunk.  A summary says, for the pages under
 * its entry: start = free pages at the low end, max = longest free run,
 * end = free pages at the high end.  find() walks from the root: in each
 * block of entries it keeps the length of the free run reaching the current
 * entry (previous entry's end, or several fully free entries), and
 *   - if that run plus this entry's start is long enough, the allocation
 *     straddles entries and is answered at this level;
 *   - else if this entry's max is long enough, descend into it;
 *   - else the run restarts from this entry's end.
 * At the leaf the chunk bitmap is searched with bit tricks: ctz for 1 page,
 * a shrinking shift-and (findBitRange64) for n <= 64, whole-word runs for
 * n > 64.  This finds the lowest address because every straddling run
 * starts before any run inside the entry it reaches into.
 *
 * searchAddr is a hint: every page below it is in use.  find() starts at
 * its entry on every level; alloc first tries the chunk holding it directly
 * (valid: no run can start below it, and a run leaving the chunk at the top
 * starts after every run inside the chunk).  alloc raises it to the lowest
 * page the walk proves might be free, free lowers it.
 *
 * Summary encoding (uint64): bits 0-20 start, 21-41 max, 42-62 end.  Only a
 * root entry can be entirely free with 2^21 pages, which does not fit in 21
 * bits; that summary is stored as bit 63 alone, meaning start = max = end =
 * 2^21.  0 means "no free page", which is also what every entry covering
 * memory never grown reads as.
 *
 * Memory.  The five summary arrays are reserved up front as PROT_NONE
 * (about 585 MiB of address space, no RSS); grow commits the OS pages that
 * hold the entries of the new range on every level (the 128 KiB root is
 * committed at creation, because find scans it linearly).  Chunk bitmaps
 * live in a sparse two-level array: an 8192-pointer directory in the
 * allocator, each pointing at a 1 MiB block of 8192 chunks (plus a "grown"
 * bit per chunk) mapped the first time a chunk in it is grown.
 *
 * Scavenging walks grown chunks downward from scav_hi (raised by free,
 * lowered by a scavenge that runs out of candidates) and takes the highest
 * free, unscavenged runs of each chunk's bitmap words first; runs that touch
 * across words and chunks are reported to the callback as one.
 *
 * Invariants (rt__pages_check verifies all of them, leaves first):
 *   - every leaf equals the summary of its chunk bitmap (0 if not grown);
 *   - every inner entry equals the merge of its 8 children (0 if nothing
 *     below it was grown); only root entries use the all-free encoding;
 *   - every page below searchAddr is in use;
 *   - a page in use has its scavenged bit clear; the counters equal the
 *     bit counts (scav = free pages with the scavenged bit);
 *   - no free, unscavenged page lies in a chunk >= scav_hi.
 * Updates recompute the touched leaves from the bitmaps, then merge upward
 * level by level and stop at the first level where no parent changed.
 * Misuse (unaligned or overlapping grow) aborts with a one-line message;
 * freeing pages not in use is caught only in RT_DEBUG builds. */
#include "pagealloc.h"
#include "os.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Geometry ------------------------------------------------------------- */

#define PAGE_SHIFT     RT_PAGE_SHIFT_PA
#define CHUNK_SHIFT    (PAGE_SHIFT + 9)                         /* 22: 4 MiB */
#define NCHUNKS        ((size_t)1 << (RT_HEAP_ADDR_BITS - CHUNK_SHIFT)) /* 2^26 */
#define LEVELS         5
#define LEVEL_BITS     3
#define ROOT_BITS      (RT_HEAP_ADDR_BITS - CHUNK_SHIFT - (LEVELS - 1) * LEVEL_BITS) /* 14 */
#define SUM_BITS       21                                       /* 9 + 4*3 */
#define SUM_MASK       (((uint64_t)1 << SUM_BITS) - 1)
#define SUM_ALLFREE    ((uint64_t)1 << 63)
#define WORDS          (RT_CHUNK_PAGES / 64)                    /* 8 */
#define BLOCK_BITS     13                                       /* chunks per bitmap block */
#define BLOCK_CHUNKS   ((size_t)1 << BLOCK_BITS)
#define NBLOCKS        (NCHUNKS >> BLOCK_BITS)
#define MAX_SEARCH     ((uintptr_t)1 << RT_HEAP_ADDR_BITS)      /* "nothing free" */

/* log2 of the pages one entry covers, per level (root first). */
static const unsigned level_logpages[LEVELS] = { 21, 18, 15, 12, 9 };
#define LEVEL_SHIFT(l) (level_logpages[l] + PAGE_SHIFT)         /* address -> index */
#define LEVEL_ENTRIES(l) ((size_t)1 << (ROOT_BITS + (l) * LEVEL_BITS))

typedef struct {
    uint64_t alloc[WORDS];          /* 1 = page in use */
    uint64_t scav[WORDS];           /* 1 = page scavenged (only ever on free pages) */
} pa_chunk;

typedef struct {
    pa_chunk chunk[BLOCK_CHUNKS];
    uint64_t grown[BLOCK_CHUNKS / 64];  /* 1 = chunk added by grow */
} pa_block;

struct rt__pagealloc {
    uint64_t *sum[LEVELS];          /* reserved arrays, committed per grown range */
    uintptr_t search;               /* every page below is in use */
    size_t    chunk_lo, chunk_hi;   /* grown chunk indices lie in [lo, hi) */
    size_t    scav_hi;              /* no scavenge candidate in chunks >= this */
    size_t    scav_bg;              /* background walk resumes below this chunk */
    size_t    total, inuse, scav;   /* pages */
    size_t    meta;                 /* summary bytes committed (metadata accounting) */
    size_t    ospage;
    pa_block *block[NBLOCKS];       /* sparse chunk bitmaps */
};

#ifdef RT_DEBUG
#define PA_ASSERT(c) do { if (!(c)) pa_die("assertion failed at %s:%d: %s", __FILE__, __LINE__, #c); } while (0)
#else
#define PA_ASSERT(c) ((void)0)
#endif

__attribute__((noreturn, format(printf, 1, 2), cold))
static void pa_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rtgc: pagealloc: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static inline unsigned ctz64(uint64_t x) { return (unsigned)__builtin_ctzll(x); }
static inline unsigned clz64(uint64_t x) { return (unsigned)__builtin_clzll(x); }
static inline unsigned pop64(uint64_t x) { return (unsigned)__builtin_popcountll(x); }

/* Bits [lo, hi) of a word, 0 <= lo < hi <= 64. */
static inline uint64_t word_mask(unsigned lo, unsigned hi) {
    uint64_t m = hi == 64 ? ~(uint64_t)0 : ((uint64_t)1 << hi) - 1;
    return m & ~(((uint64_t)1 << lo) - 1);
}

static inline size_t    chunk_of(uintptr_t a) { return (size_t)(a >> CHUNK_SHIFT); }
static inline uintptr_t chunk_base(size_t ci) { return (uintptr_t)ci << CHUNK_SHIFT; }
static inline unsigned  page_in_chunk(uintptr_t a) { return (unsigned)(a >> PAGE_SHIFT) & (RT_CHUNK_PAGES - 1); }

static inline pa_chunk *chunk_ptr(const rt__pagealloc *pa, size_t ci) {
    return &pa->block[ci >> BLOCK_BITS]->chunk[ci & (BLOCK_CHUNKS - 1)];
}

static inline bool chunk_grown(const rt__pagealloc *pa, size_t ci) {
    if (ci >= NCHUNKS) return false;
    const pa_block *b = pa->block[ci >> BLOCK_BITS];
    size_t i = ci & (BLOCK_CHUNKS - 1);
    return b && (b->grown[i / 64] >> (i % 64) & 1);
}

/* ---- Summaries ------------------------------------------------------------ */

static inline uint64_t sum_pack(size_t start, size_t max, size_t end) {
    if (max == (size_t)1 << SUM_BITS) return SUM_ALLFREE;
    return (uint64_t)start | (uint64_t)max << SUM_BITS | (uint64_t)end << (2 * SUM_BITS);
}
static inline size_t sum_start(uint64_t s) {
    return s & SUM_ALLFREE ? (size_t)1 << SUM_BITS : (size_t)(s & SUM_MASK);
}
static inline size_t sum_max(uint64_t s) {
    return s & SUM_ALLFREE ? (size_t)1 << SUM_BITS : (size_t)(s >> SUM_BITS & SUM_MASK);
}
static inline size_t sum_end(uint64_t s) {
    return s & SUM_ALLFREE ? (size_t)1 << SUM_BITS : (size_t)(s >> (2 * SUM_BITS) & SUM_MASK);
}

/* First bit of the first run of n (1..64) ones in c, or 64 (findBitRange64):
   after shrinking every run of ones by n-1, the survivors mark run starts.
   The shift doubles each round so it takes O(log n) steps. */
static inline unsigned bit_range64(uint64_t c, unsigned n) {
    unsigned left = n - 1, k = 1;
    while (left > 0) {
        unsigned s = left < k ? left : k;
        c &= c >> s;
        if (c == 0) return 64;
        left -= s;
        k <<= 1;
    }
    return c ? ctz64(c) : 64;
}

/* Summary of a chunk bitmap.  Internal runs are only examined in words
   holding more free bits than the best run so far. */
static uint64_t chunk_summary(const uint64_t *b) {
    unsigned start = 0, end = 0, max, cur = 0;
    for (unsigned w = 0; w < WORDS; w++) {
        if (b[w] != 0) { start += ctz64(b[w]); break; }
        start += 64;
    }
    if (start == RT_CHUNK_PAGES) return sum_pack(start, start, start);
    for (unsigned w = WORDS; w-- > 0;) {
        if (b[w] != 0) { end += clz64(b[w]); break; }
        end += 64;
    }
    max = start > end ? start : end;
    for (unsigned w = 0; w < WORDS; w++) {
        uint64_t x = b[w];
        if (x == 0) { cur += 64; continue; }
        unsigned lo = ctz64(x), hi = clz64(x);
        if (cur + lo > max) max = cur + lo;
        cur = hi;
        /* free bits strictly inside the word, between its first and last 1 */
        uint64_t y = ~x & ~(((uint64_t)1 << lo) - 1) & ~(uint64_t)0 >> hi;
        if (y == 0 || pop64(y) <= max) continue;
        /* While a run longer than max starts at some bit j, measure it. */
        for (unsigned j; (j = bit_range64(y, max + 1)) < 64;) {
            y >>= j;
            max = ctz64(~y);            /* y < 2^63 here, so ~y != 0 */
            y >>= max;
        }
    }
    if (cur > max) max = cur;
    return sum_pack(start, max, end);
}

/* Merge 8 consecutive children, each covering `full` pages (mergeSummaries).
   Children are never root entries, so they never use the all-free encoding
   and the fields are read directly. */
static uint64_t sum_merge(const uint64_t *c, size_t full) {
    size_t start = c[0] & SUM_MASK, max = c[0] >> SUM_BITS & SUM_MASK, end = c[0] >> (2 * SUM_BITS);
    for (size_t i = 1; i < 8; i++) {
        size_t s = c[i] & SUM_MASK, m = c[i] >> SUM_BITS & SUM_MASK, e = c[i] >> (2 * SUM_BITS);
        if (start == i * full) start += s;
        if (end + s > max) max = end + s;
        if (m > max) max = m;
        end = s == full ? end + full : e;
    }
    return sum_pack(start, max, end);
}

/* Recompute the leaves of chunks [lo, hi] from their bitmaps, then merge
   upward, stopping at the first level where no parent changed. */
static void sum_update(rt__pagealloc *pa, size_t lo, size_t hi) {
    bool changed = false;
    for (size_t ci = lo; ci <= hi; ci++) {
        uint64_t s = chunk_summary(chunk_ptr(pa, ci)->alloc);
        if (s != pa->sum[LEVELS - 1][ci]) { pa->sum[LEVELS - 1][ci] = s; changed = true; }
    }
    for (int l = LEVELS - 2; l >= 0 && changed; l--) {
        size_t full = (size_t)1 << level_logpages[l + 1];
        uint64_t *child = pa->sum[l + 1], *par = pa->sum[l];
        lo >>= LEVEL_BITS;
        hi >>= LEVEL_BITS;
        changed = false;
        for (size_t p = lo; p <= hi; p++) {
            uint64_t s = sum_merge(child + (p << LEVEL_BITS), full);
            if (s != par[p]) { par[p] = s; changed = true; }
        }
    }
}

/* ---- Chunk bitmap search --------------------------------------------------- */

/* Word w of the bitmap with the pages below `from` forced in use. */
static inline uint64_t masked_word(const uint64_t *b, unsigned w, unsigned from) {
    return w == from / 64 ? b[w] | (((uint64_t)1 << (from % 64)) - 1) : b[w];
}

#define NOT_FOUND RT_CHUNK_PAGES

/* Index of the first free page at or after `from`, or NOT_FOUND. */
static unsigned chunk_find1(const uint64_t *b, unsigned from) {
    for (unsigned w = from / 64; w < WORDS; w++) {
        uint64_t x = masked_word(b, w, from);
        if (~x) return w * 64 + ctz64(~x);
    }
    return NOT_FOUND;
}

/* First run of n free pages at or after `from` (findSmallN, n <= 64): either
   the free bits at the top of the previous words plus the bottom of this
   one, or a run inside this word. */
static unsigned chunk_find_small(const uint64_t *b, unsigned n, unsigned from) {
    unsigned carry = 0;
    for (unsigned w = from / 64; w < WORDS; w++) {
        uint64_t x = masked_word(b, w, from);
        if (x == 0 || carry + ctz64(x) >= n) return w * 64 - carry;
        unsigned j = bit_range64(~x, n);
        if (j < 64) return w * 64 + j;
        carry = clz64(x);
    }
    return NOT_FOUND;
}

/* First run of n > 64 free pages (findLargeN): such a run is whole free words
   framed by the top of one word and the bottom of another. */
static unsigned chunk_find_large(const uint64_t *b, unsigned n, unsigned from) {
    unsigned start = 0, size = 0;
    for (unsigned w = from / 64; w < WORDS; w++) {
        uint64_t x = masked_word(b, w, from);
        if (x == 0) {
            if (size == 0) start = w * 64;
            size += 64;
        } else {
            if (size == 0) start = w * 64;
            size += ctz64(x);
            if (size >= n) return start;
            size = clz64(x);
            start = w * 64 + 64 - size;
        }
        if (size >= n) return start;
    }
    return NOT_FOUND;
}

static unsigned chunk_find(const uint64_t *b, size_t n, unsigned from) {
    if (n == 1) return chunk_find1(b, from);
    if (n <= 64) return chunk_find_small(b, (unsigned)n, from);
    return chunk_find_large(b, (unsigned)n, from);
}

/* ---- find: the tree walk ------------------------------------------------- */

/* Address of the first run of npages free pages, or 0.  *first receives a
   lower bound on the lowest free page (>= searchAddr), tightened while the
   walk follows the first non-empty entry of every level. */
static uintptr_t pa_find(const rt__pagealloc *pa, size_t npages, uintptr_t *first) {
    uintptr_t ff = pa->search;
    bool tight = true;
    size_t i = 0;                           /* entry chosen at the level above */
    *first = ff;
    for (int l = 0; l < LEVELS; l++) {
        unsigned shift = LEVEL_SHIFT(l);
        size_t full = (size_t)1 << level_logpages[l];
        size_t lo, hi, sidx = (size_t)(pa->search >> shift);
        if (l == 0) {
            lo = sidx;
            hi = pa->chunk_hi ? ((pa->chunk_hi - 1) >> ((LEVELS - 1) * LEVEL_BITS)) + 1 : 0;
        } else {
            lo = i << LEVEL_BITS;
            hi = lo + 8;
            if ((sidx & ~(size_t)7) == lo) lo = sidx;
        }
        const uint64_t *ent = pa->sum[l];
        size_t run = 0;
        uintptr_t runbase = 0;
        bool seen = false, descended = false;
        for (size_t j = lo; j < hi; j++) {
            uint64_t s = ent[j];
            if (s == 0) { run = 0; continue; }
            uintptr_t base = (uintptr_t)j << shift;
            bool is_first = !seen;
            seen = true;
            if (is_first && tight && base > ff) ff = base;
            size_t st = sum_start(s);
            if (run + st >= npages) {       /* straddles: answered here */
                *first = ff;
                return run ? runbase : base;
            }
            if (sum_max(s) >= npages) {
                if (!is_first) tight = false;
                i = j;
                descended = true;
                break;
            }
            if (st == full) {
                if (run == 0) runbase = base;
                run += full;
            } else {
                run = sum_end(s);
                runbase = base + (((uintptr_t)full - run) << PAGE_SHIFT);
            }
        }
        if (!descended) {
            if (l == 0) { *first = MAX_SEARCH; return 0; }
            pa_die("summary level %d index %zu promises a run of %zu pages that its children lack",
                   l - 1, i, npages);
        }
    }
    /* i is a chunk index whose leaf max >= npages. */
    const uint64_t *b = chunk_ptr(pa, i)->alloc;
    unsigned from = chunk_of(pa->search) == i ? page_in_chunk(pa->search) : 0;
    unsigned j = chunk_find(b, npages, from);
    if (j == NOT_FOUND)
        pa_die("leaf summary %zu promises a run of %zu pages its bitmap lacks", i, npages);
    if (tight) {
        uintptr_t f = chunk_base(i) + ((uintptr_t)chunk_find1(b, from) << PAGE_SHIFT);
        if (f > ff) ff = f;
    }
    *first = ff;
    return chunk_base(i) + ((uintptr_t)j << PAGE_SHIFT);
}

/* ---- Bitmap range updates ----------------------------------------------- */

/* Mark [addr, addr+npages) in use; returns how many were scavenged. */
static size_t alloc_range(rt__pagealloc *pa, uintptr_t addr, size_t npages) {
    size_t scav = 0, c0 = chunk_of(addr);
    size_t p = addr >> PAGE_SHIFT, end = p + npages;
    while (p < end) {
        pa_chunk *ch = chunk_ptr(pa, p >> 9);
        unsigned w = (unsigned)(p & 511) / 64, lo = (unsigned)p % 64;
        unsigned hi = end - p >= 64 - lo ? 64 : lo + (unsigned)(end - p);
        uint64_t m = word_mask(lo, hi);
        PA_ASSERT((ch->alloc[w] & m) == 0);
        if (ch->scav[w] & m) {
            scav += pop64(ch->scav[w] & m);
            ch->scav[w] &= ~m;
        }
        ch->alloc[w] |= m;
        p += hi - lo;
    }
    sum_update(pa, c0, chunk_of(addr + ((npages - 1) << PAGE_SHIFT)));
    return scav;
}

/* ---- Public interface ----------------------------------------------------- */

rt__pagealloc *rt__pages_new(void) {
    rt__pagealloc *pa = rt__os_alloc(sizeof *pa);
    if (!pa) return NULL;
    memset(pa, 0, sizeof *pa);
    pa->ospage = rt__os_pagesize();
    pa->search = MAX_SEARCH;
    pa->scav_bg = SIZE_MAX;
    pa->meta = LEVEL_ENTRIES(0) * sizeof(uint64_t);
    for (int l = 0; l < LEVELS; l++) {
        size_t bytes = LEVEL_ENTRIES(l) * sizeof(uint64_t);
        pa->sum[l] = rt__os_reserve(bytes, pa->ospage);
        if (!pa->sum[l] || (l == 0 && rt__os_commit(pa->sum[0], bytes) != 0)) {
            rt__pages_destroy(pa);
            return NULL;
        }
    }
    return pa;
}

void rt__pages_destroy(rt__pagealloc *pa) {
    if (!pa) return;
    for (int l = 0; l < LEVELS; l++)
        if (pa->sum[l]) rt__os_unreserve(pa->sum[l], LEVEL_ENTRIES(l) * sizeof(uint64_t));
    for (size_t i = 0; i < NBLOCKS; i++)
        if (pa->block[i]) rt__os_free(pa->block[i], sizeof(pa_block));
    rt__os_free(pa, sizeof *pa);
}

int rt__pages_grow(rt__pagealloc *pa, uintptr_t base, size_t bytes) {
    if (bytes == 0) return 0;
    if ((base | bytes) & (RT_CHUNK_BYTES - 1) || base + bytes < base || base + bytes > MAX_SEARCH)
        pa_die("rt__pages_grow(%#lx, %#zx): range must be chunk aligned and below 2^%d",
               (unsigned long)base, bytes, RT_HEAP_ADDR_BITS);
    size_t c0 = chunk_of(base), c1 = chunk_of(base + bytes - 1);

    /* Everything that can fail comes first; nothing visible changes on failure. */
    for (int l = 1; l < LEVELS; l++) {
        unsigned shift = (LEVELS - 1 - l) * LEVEL_BITS;
        uintptr_t a = (uintptr_t)(pa->sum[l] + (c0 >> shift)) & ~(uintptr_t)(pa->ospage - 1);
        uintptr_t e = (uintptr_t)(pa->sum[l] + (c1 >> shift) + 1);
        e = (e + pa->ospage - 1) & ~(uintptr_t)(pa->ospage - 1);
        if (rt__os_commit((void *)a, e - a) != 0) return -1;
        pa->meta += e - a;
    }
    for (size_t bi = c0 >> BLOCK_BITS; bi <= c1 >> BLOCK_BITS; bi++) {
        if (pa->block[bi]) continue;
        pa->block[bi] = rt__os_alloc(sizeof(pa_block));
        if (!pa->block[bi]) return -1;
    }
    for (size_t ci = c0; ci <= c1; ci++)
        if (chunk_grown(pa, ci))
            pa_die("rt__pages_grow: chunk at %#lx was already added", (unsigned long)chunk_base(ci));

    for (size_t ci = c0; ci <= c1; ci++) {
        pa_block *b = pa->block[ci >> BLOCK_BITS];
        size_t k = ci & (BLOCK_CHUNKS - 1);
        b->grown[k / 64] |= (uint64_t)1 << (k % 64);
        memset(b->chunk[k].alloc, 0, sizeof b->chunk[k].alloc);
        memset(b->chunk[k].scav, 0xff, sizeof b->chunk[k].scav);
    }
    size_t pages = bytes >> PAGE_SHIFT;
    pa->total += pages;
    pa->scav += pages;
    if (pa->chunk_hi == 0 || c0 < pa->chunk_lo) pa->chunk_lo = c0;
    if (c1 + 1 > pa->chunk_hi) pa->chunk_hi = c1 + 1;
    if (base < pa->search) pa->search = base;
    sum_update(pa, c0, c1);
    return 0;
}

uintptr_t rt__pages_alloc(rt__pagealloc *pa, size_t npages, size_t *scavenged) {
    if (scavenged) *scavenged = 0;
    if (npages == 0 || npages > pa->total - pa->inuse) return 0;

    uintptr_t addr, first;
    size_t ci = chunk_of(pa->search);
    if (ci < pa->chunk_hi && chunk_grown(pa, ci) && sum_max(pa->sum[LEVELS - 1][ci]) >= npages) {
        /* Fast path: the first fit lies in searchAddr's chunk. */
        const uint64_t *b = chunk_ptr(pa, ci)->alloc;
        unsigned from = page_in_chunk(pa->search);
        unsigned j = chunk_find(b, npages, from);
        unsigned f = npages == 1 ? j : chunk_find1(b, from);
        PA_ASSERT(j != NOT_FOUND);
        addr = chunk_base(ci) + ((uintptr_t)j << PAGE_SHIFT);
        first = chunk_base(ci) + ((uintptr_t)f << PAGE_SHIFT);
    } else {
        addr = pa_find(pa, npages, &first);
        if (addr == 0) {
            if (npages == 1) pa->search = MAX_SEARCH;   /* not one page free */
            return 0;
        }
    }
    size_t sc = alloc_range(pa, addr, npages);
    if (first == addr) first = addr + (npages << PAGE_SHIFT);
    if (first > pa->search) pa->search = first;
    pa->inuse += npages;
    pa->scav -= sc;
    if (scavenged) *scavenged = sc;
    return addr;
}

void rt__pages_free(rt__pagealloc *pa, uintptr_t base, size_t npages) {
    if (npages == 0) return;
    PA_ASSERT((base & ((1u << PAGE_SHIFT) - 1)) == 0 && npages <= pa->inuse);
    size_t p = base >> PAGE_SHIFT, end = p + npages;
    while (p < end) {
        PA_ASSERT(chunk_grown(pa, p >> 9));
        pa_chunk *ch = chunk_ptr(pa, p >> 9);
        unsigned w = (unsigned)(p & 511) / 64, lo = (unsigned)p % 64;
        unsigned hi = end - p >= 64 - lo ? 64 : lo + (unsigned)(end - p);
        uint64_t m = word_mask(lo, hi);
        PA_ASSERT((ch->alloc[w] & m) == m);
        ch->alloc[w] &= ~m;
        p += hi - lo;
    }
    size_t c1 = chunk_of(base + ((npages - 1) << PAGE_SHIFT));
    sum_update(pa, chunk_of(base), c1);
    pa->inuse -= npages;
    if (base < pa->search) pa->search = base;
    if (c1 + 1 > pa->scav_hi) pa->scav_hi = c1 + 1;
    if (c1 + 1 > pa->scav_bg) pa->scav_bg = c1 + 1;
}

/* Highest grown chunk below ci, or SIZE_MAX; skips unmapped blocks and
   64 ungrown chunks at a time. */
static size_t prev_grown(const rt__pagealloc *pa, size_t ci) {
    while (ci > pa->chunk_lo) {
        ci--;
        const pa_block *b = pa->block[ci >> BLOCK_BITS];
        if (!b) { ci &= ~(BLOCK_CHUNKS - 1); continue; }
        size_t k = ci & (BLOCK_CHUNKS - 1);
        uint64_t g = b->grown[k / 64] & word_mask(0, (unsigned)(k % 64) + 1);
        if (g) return (ci & ~(size_t)63) + 63 - clz64(g);
        ci &= ~(size_t)63;
    }
    return SIZE_MAX;
}

size_t rt__pages_scavenge(rt__pagealloc *pa, size_t max_pages,
                          void (*fn)(uintptr_t base, size_t npages, void *ctx), void *ctx) {
    size_t done = 0, ci = pa->scav_hi, pend_n = 0;
    uintptr_t pend_base = 0;
    if (max_pages == 0) return 0;
    while (done < max_pages && (ci = prev_grown(pa, ci)) != SIZE_MAX) {
        if (pa->sum[LEVELS - 1][ci] == 0) continue;             /* all in use */
        pa_chunk *ch = chunk_ptr(pa, ci);
        for (unsigned w = WORDS; w-- > 0 && done < max_pages;) {
            uint64_t cand = ~ch->alloc[w] & ~ch->scav[w];
            while (cand && done < max_pages) {
                unsigned top = 63 - clz64(cand);
                uint64_t up = cand << (63 - top);               /* run's top at bit 63 */
                size_t len = ~up == 0 ? 64 : clz64(~up);
                if (len > max_pages - done) len = max_pages - done;
                unsigned lo = top + 1 - (unsigned)len;
                uint64_t m = word_mask(lo, top + 1);
                ch->scav[w] |= m;
                cand &= ~m;
                done += len;
                uintptr_t a = chunk_base(ci) + ((uintptr_t)(w * 64 + lo) << PAGE_SHIFT);
                if (pend_n && a + (len << PAGE_SHIFT) == pend_base) {
                    pend_base = a;
                    pend_n += len;
                } else {
                    if (pend_n && fn) fn(pend_base, pend_n, ctx);
                    pend_base = a;
                    pend_n = len;
                }
            }
        }
    }
    if (pend_n && fn) fn(pend_base, pend_n, ctx);
    pa->scav += done;
    /* Stopped early: chunk ci may still hold candidates; else none remain. */
    pa->scav_hi = done >= max_pages && ci != SIZE_MAX ? ci + 1 : 0;
    return done;
}

/* ---- Scavenging without the lock held (rt__pages_scav_take/return) --------
 *
 * The heap's scavenger cannot keep the heap lock across madvise, and a
 * page must not be handed out while the OS is zeroing it.  So a run is
 * taken out of the free pool (marked in use, exactly like an allocation),
 * released with no lock held, and given back already scavenged.  Runs are
 * the highest free, unscavenged pages of the highest chunk that has any,
 * never longer than a chunk; a run that covers the bottom of a free 2 MiB
 * huge page is stretched down to its start rather than splitting it.  The
 * background walk (force = false) skips chunks at least 96.875% in use
 * (Go's scavChunkHiOccFrac: they will be reused soon and are the best huge
 * page candidates) and remembers where it stopped in scav_bg, raised by
 * frees and reset by rt__pages_scav_newgen. */

#define HUGE_PAGES  256u            /* 2 MiB / 8 KiB */
#define DENSE_PAGES 496u            /* 496 of 512 pages in use */

static unsigned chunk_inuse(const pa_chunk *ch) {
    unsigned n = 0;
    for (unsigned w = 0; w < WORDS; w++) n += pop64(ch->alloc[w]);
    return n;
}

/* The highest run of free, unscavenged pages of a chunk: returns its end
   (exclusive page index) and sets *lo to its start; 0 if there is none. */
static unsigned chunk_top_run(const pa_chunk *ch, unsigned *lo) {
    int w = WORDS - 1;
    uint64_t cand = 0;
    for (; w >= 0; w--)
        if ((cand = ~ch->alloc[w] & ~ch->scav[w]) != 0) break;
    if (w < 0) return 0;
    unsigned top = 63 - clz64(cand);
    uint64_t up = cand << (63 - top);                   /* run's top at bit 63 */
    unsigned len = ~up == 0 ? 64 : clz64(~up);
    unsigned hi = (unsigned)w * 64 + top + 1, l = hi - len;
    while (l % 64 == 0 && l > 0) {                      /* the run goes on below */
        unsigned w2 = l / 64 - 1;
        uint64_t c2 = ~ch->alloc[w2] & ~ch->scav[w2];
        unsigned n = ~c2 == 0 ? 64 : clz64(~c2);
        l -= n;
        if (n < 64) break;
    }
    *lo = l;
    return hi;
}

size_t rt__pages_scav_take(rt__pagealloc *pa, size_t max_pages, bool force, uintptr_t *base) {
    if (max_pages == 0) return 0;
    size_t start = pa->scav_hi;
    if (!force && pa->scav_bg < start) start = pa->scav_bg;
    bool from_top = start == pa->scav_hi;
    size_t ci = start, skipped_hi = 0;
    unsigned lo = 0, hi = 0;
    while ((ci = prev_grown(pa, ci)) != SIZE_MAX) {
        if (pa->sum[LEVELS - 1][ci] == 0) continue;     /* every page in use */
        const pa_chunk *ch = chunk_ptr(pa, ci);
        if (!force && chunk_inuse(ch) >= DENSE_PAGES) {
            if (ci + 1 > skipped_hi) skipped_hi = ci + 1;
            continue;
        }
        if ((hi = chunk_top_run(ch, &lo)) != 0) break;
    }
    if (ci == SIZE_MAX) {
        if (from_top) pa->scav_hi = skipped_hi;
        if (!force) pa->scav_bg = 0;
        return 0;
    }
    if (from_top) pa->scav_hi = ci + 1 > skipped_hi ? ci + 1 : skipped_hi;
    if (!force) pa->scav_bg = ci + 1;
    unsigned from = hi - lo > max_pages ? hi - (unsigned)max_pages : lo;
    unsigned hp = from & ~(HUGE_PAGES - 1);
    if (from != hp && lo <= hp) from = hp;              /* do not split a free huge page */
    size_t n = hi - from;
    *base = chunk_base(ci) + ((uintptr_t)from << PAGE_SHIFT);
    alloc_range(pa, *base, n);
    pa->inuse += n;
    return n;
}

void rt__pages_scav_return(rt__pagealloc *pa, uintptr_t base, size_t npages, bool released) {
    if (npages == 0) return;
    size_t p = base >> PAGE_SHIFT, end = p + npages;
    while (p < end) {
        pa_chunk *ch = chunk_ptr(pa, p >> 9);
        unsigned w = (unsigned)(p & 511) / 64, lo = (unsigned)p % 64;
        unsigned hi = end - p >= 64 - lo ? 64 : lo + (unsigned)(end - p);
        uint64_t m = word_mask(lo, hi);
        PA_ASSERT((ch->alloc[w] & m) == m && (ch->scav[w] & m) == 0);
        ch->alloc[w] &= ~m;
        if (released) ch->scav[w] |= m;
        p += hi - lo;
    }
    size_t c1 = chunk_of(base + ((npages - 1) << PAGE_SHIFT));
    sum_update(pa, chunk_of(base), c1);
    pa->inuse -= npages;
    if (released) pa->scav += npages;
    if (base < pa->search) pa->search = base;
    if (!released) {                                    /* candidates again */
        if (c1 + 1 > pa->scav_hi) pa->scav_hi = c1 + 1;
        if (c1 + 1 > pa->scav_bg) pa->scav_bg = c1 + 1;
    }
}

void rt__pages_scav_newgen(rt__pagealloc *pa) { pa->scav_bg = SIZE_MAX; }

size_t rt__pages_meta_bytes(const rt__pagealloc *pa) { return pa->meta; }

size_t rt__pages_total(const rt__pagealloc *pa) { return pa->total; }
size_t rt__pages_inuse(const rt__pagealloc *pa) { return pa->inuse; }
size_t rt__pages_scavenged(const rt__pagealloc *pa) { return pa->scav; }

/* Pages outside every grown range are reported neither allocated nor scavenged. */
bool rt__pages_is_allocated(const rt__pagealloc *pa, uintptr_t addr) {
    size_t ci = chunk_of(addr);
    if (!chunk_grown(pa, ci)) return false;
    unsigned i = page_in_chunk(addr);
    return chunk_ptr(pa, ci)->alloc[i / 64] >> (i % 64) & 1;
}

bool rt__pages_is_scavenged(const rt__pagealloc *pa, uintptr_t addr) {
    size_t ci = chunk_of(addr);
    if (!chunk_grown(pa, ci)) return false;
    unsigned i = page_in_chunk(addr);
    return chunk_ptr(pa, ci)->scav[i / 64] >> (i % 64) & 1;
}

/* Is any chunk in [lo, hi) grown? */
static bool any_grown(const rt__pagealloc *pa, size_t lo, size_t hi) {
    if (lo < pa->chunk_lo) lo = pa->chunk_lo;
    if (hi > pa->chunk_hi) hi = pa->chunk_hi;
    while (lo < hi) {
        const pa_block *b = pa->block[lo >> BLOCK_BITS];
        if (!b) { lo = (lo | (BLOCK_CHUNKS - 1)) + 1; continue; }
        size_t k = lo & (BLOCK_CHUNKS - 1), n = 64 - k % 64;
        if (n > hi - lo) n = hi - lo;
        if (b->grown[k / 64] & word_mask((unsigned)(k % 64), (unsigned)(k % 64 + n))) return true;
        lo += n;
    }
    return false;
}

static void check_entry(const rt__pagealloc *pa, int l, size_t j) {
    unsigned below = (LEVELS - 1 - l) * LEVEL_BITS;     /* log2 chunks per entry */
    uint64_t want = 0, have = pa->sum[l][j];
    if (l == LEVELS - 1) {
        if (chunk_grown(pa, j)) want = chunk_summary(chunk_ptr(pa, j)->alloc);
    } else if (any_grown(pa, j << below, (j + 1) << below)) {
        want = sum_merge(pa->sum[l + 1] + (j << LEVEL_BITS), (size_t)1 << level_logpages[l + 1]);
    }
    if (have != want)
        pa_die("check: level %d index %zu: summary %#llx (start %zu max %zu end %zu), "
               "expected %#llx (start %zu max %zu end %zu)", l, j,
               (unsigned long long)have, sum_start(have), sum_max(have), sum_end(have),
               (unsigned long long)want, sum_start(want), sum_max(want), sum_end(want));
}

int rt__pages_check(const rt__pagealloc *pa) {
    /* Every block of 8 entries that has a grown chunk below it, leaf first,
       so a bad leaf is reported before the parents it spoils. */
    for (int l = LEVELS - 1; l >= 1; l--) {
        unsigned below = (LEVELS - l) * LEVEL_BITS;     /* log2 chunks per block */
        size_t last = SIZE_MAX;
        for (size_t ci = pa->chunk_lo; ci < pa->chunk_hi; ci++) {
            if (!chunk_grown(pa, ci) || ci >> below == last) continue;
            last = ci >> below;
            for (size_t j = last << LEVEL_BITS; j < (last + 1) << LEVEL_BITS; j++)
                check_entry(pa, l, j);
        }
    }
    for (size_t j = 0; j < LEVEL_ENTRIES(0); j++) check_entry(pa, 0, j);

    size_t total = 0, inuse = 0, scav = 0;
    for (size_t ci = pa->chunk_lo; ci < pa->chunk_hi; ci++) {
        if (!chunk_grown(pa, ci)) continue;
        const pa_chunk *ch = chunk_ptr(pa, ci);
        total += RT_CHUNK_PAGES;
        for (unsigned w = 0; w < WORDS; w++) {
            if (ch->alloc[w] & ch->scav[w])
                pa_die("check: chunk %zu word %u: pages both in use and scavenged", ci, w);
            inuse += pop64(ch->alloc[w]);
            scav += pop64(ch->scav[w]);
            if (ci >= pa->scav_hi && ~ch->alloc[w] & ~ch->scav[w])
                pa_die("check: chunk %zu word %u: unscavenged free pages above scav_hi %zu",
                       ci, w, pa->scav_hi);
        }
    }
    if (total != pa->total || inuse != pa->inuse || scav != pa->scav)
        pa_die("check: counters total/inuse/scavenged %zu/%zu/%zu, bitmaps say %zu/%zu/%zu",
               pa->total, pa->inuse, pa->scav, total, inuse, scav);
    if (pa->search < MAX_SEARCH) {
        for (size_t ci = pa->chunk_lo; ci < pa->chunk_hi && chunk_base(ci) < pa->search; ci++) {
            if (!chunk_grown(pa, ci)) continue;
            unsigned f = chunk_find1(chunk_ptr(pa, ci)->alloc, 0);
            if (f != NOT_FOUND && chunk_base(ci) + ((uintptr_t)f << PAGE_SHIFT) < pa->search)
                pa_die("check: free page %#lx lies below searchAddr %#lx",
                       (unsigned long)(chunk_base(ci) + ((uintptr_t)f << PAGE_SHIFT)),
                       (unsigned long)pa->search);
        }
    } else if (pa->inuse != pa->total) {
        /* MAX_SEARCH is only set when not one page was free. */
        pa_die("check: searchAddr says full but %zu pages are free", pa->total - pa->inuse);
    }
    return 0;
}
