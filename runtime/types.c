/* runtime/types.c -- type descriptors: layout, traced, conservative.
 *
 * Owns: building an rt_type (pointer mask over the words of one element),
 * the registry that frees them at rt_shutdown, and the per-object pointer
 * mask for small objects whose heap bits live in their span.  Types are
 * immutable after creation, so the marker reads them without locks. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static const struct rt_type conservative_type = {
    .kind = RT__KIND_CONSERVATIVE, .magic = RT__TYPE_MAGIC, .name = "conservative",
};
const rt_type *const RT_CONSERVATIVE = &conservative_type;

typedef struct type_node { struct type_node *next; struct rt_type t; } type_node;
static type_node *all_types;
static pthread_mutex_t types_lock = PTHREAD_MUTEX_INITIALIZER;

static struct rt_type *type_new(void) {
    type_node *n = calloc(1, sizeof *n);
    if (!n) rt__fatal("out of memory creating a type descriptor");
    pthread_mutex_lock(&types_lock);
    n->next = all_types;
    all_types = n;
    pthread_mutex_unlock(&types_lock);
    n->t.magic = RT__TYPE_MAGIC;
    return &n->t;
}

void rt__types_free_all(void) {
    pthread_mutex_lock(&types_lock);
    while (all_types) {
        type_node *n = all_types;
        all_types = n->next;
        free((void *)n->t.mask);
        free(n);
    }
    pthread_mutex_unlock(&types_lock);
}

const rt_type *rt_type_layout(const char *name, size_t size, const size_t *ptr_offsets, size_t n_ptrs) {
    if (size == 0)
        rt__misuse("rt_type_layout", "type '%s' has size 0; give the object's size in bytes", name ? name : "?");
    if (n_ptrs > 0 && !ptr_offsets)
        rt__misuse("rt_type_layout", "type '%s' has %zu pointers but no offsets array", name ? name : "?", n_ptrs);
    if (n_ptrs == 0) return RT_NOSCAN;   /* nothing to scan: pointer-free objects */
    if (size % sizeof(void *) != 0)
        rt__misuse("rt_type_layout", "type '%s' holds pointers but its size %zu is not a multiple of %zu; "
                   "pass sizeof() of the struct", name ? name : "?", size, sizeof(void *));
    size_t words = (size + 7) / 8;
    uint64_t *mask = calloc((words + 63) / 64, sizeof(uint64_t));
    if (!mask) rt__fatal("out of memory creating type '%s'", name ? name : "?");
    size_t last = 0;
    for (size_t i = 0; i < n_ptrs; i++) {
        size_t off = ptr_offsets[i];
        if (off % sizeof(void *) != 0 || off + sizeof(void *) > size) {
            free(mask);
            rt__misuse("rt_type_layout", "type '%s': pointer offset %zu is not a multiple of %zu inside %zu bytes; "
                       "use offsetof() of pointer fields", name ? name : "?", off, sizeof(void *), size);
        }
        size_t w = off / 8;
        mask[w / 64] |= (uint64_t)1 << (w % 64);
        if (w + 1 > last) last = w + 1;
    }
    struct rt_type *t = type_new();
    t->kind = RT__KIND_LAYOUT;
    t->size = size;
    t->ptr_words = last;
    t->mask = mask;
    t->small_mask = size <= RT__MAX_NOHEADER_SIZE ? mask[0] : 0;
    t->name = name ? name : "layout";
    return t;
}

const rt_type *rt_type_traced(const char *name, rt_trace_fn trace) {
    if (!trace) rt__misuse("rt_type_traced", "type '%s' has no trace function; pass the function that visits its edges",
                           name ? name : "?");
    struct rt_type *t = type_new();
    t->kind = RT__KIND_TRACED;
    t->trace = trace;
    t->name = name ? name : "traced";
    return t;
}

/* Heap bits for a headerless object of `size` bytes in a slot of elemsize:
   the element mask repeated every type->size bytes (arrays), zero past size. */
uint64_t rt__type_object_mask_tiled(const rt_type *t, size_t size, size_t elemsize) {
    size_t ewords = (t->size + 7) / 8, words = (size + 7) / 8;   /* pointerful sizes are word multiples */
    if (words > elemsize / 8) words = elemsize / 8;
    RT_ASSERT(ewords >= 1 && ewords <= 64 && words <= 64);
    uint64_t m = t->small_mask;
    for (size_t n = ewords; n < 64; n *= 2) m |= m << n;   /* doubling: no division per word */
    return words == 64 ? m : m & (((uint64_t)1 << words) - 1);
}
