/* table.c -- open-addressing hash tables keyed by interned strings.
 *
 * Owns: probing, growth and deletion (tombstones), and the EntryArray trace
 * function.  Keys are compared by pointer: every string is interned.
 *
 * Growth allocates a fresh EntryArray, fills it with plain stores (it is not
 * yet reachable from anywhere, so the collector cannot be looking at it) and
 * only then publishes it with rt_store.  Stores into a published array go
 * through rt_store / value_store. */
#include <string.h>

#include "memory.h"
#include "object.h"
#include "table.h"

#define TABLE_MAX_LOAD 0.75
#define TABLE_MIN_CAPACITY 8

void table_init(Table *table) {
    table->count = 0;
    table->entries = NULL;
}

static inline uint64_t capacity_of(const Table *table) {
    return table->entries ? table->entries->capacity : 0;
}

static Entry *find_entry(Entry *entries, uint64_t capacity, ObjString *key) {
    uint64_t index = key->hash & (capacity - 1);
    Entry *tombstone = NULL;
    for (;;) {
        Entry *entry = &entries[index];
        if (entry->key == NULL) {
            if (IS_NIL(entry->value)) return tombstone != NULL ? tombstone : entry;
            if (tombstone == NULL) tombstone = entry;
        } else if (entry->key == key) {
            return entry;
        }
        index = (index + 1) & (capacity - 1);
    }
}

bool table_get(const Table *table, ObjString *key, Value *value) {
    if (table->count == 0) return false;
    Entry *entry = find_entry(table->entries->entries, table->entries->capacity, key);
    if (entry->key == NULL) return false;
    *value = entry->value;
    return true;
}

static void grow(Table *table, uint64_t capacity) {
    /* The only allocation in this file.  Nothing needs rooting here: the
       old array is still reachable through table->entries. */
    EntryArray *fresh = capacity == TABLE_MIN_CAPACITY
        /* Every instance's first field lands here: spelling the size as a
           constant lets rt_alloc take its inline fast path. */
        ? lox_alloc(sizeof(EntryArray) + TABLE_MIN_CAPACITY * sizeof(Entry), gc_types.entry_array)
        : lox_alloc(sizeof(EntryArray) + capacity * sizeof(Entry), gc_types.entry_array);
    fresh->capacity = capacity;
    int count = 0;
    EntryArray *old = table->entries;
    if (old != NULL) {
        for (uint64_t i = 0; i < old->capacity; i++) {
            Entry *src = &old->entries[i];
            if (src->key == NULL) continue;
            Entry *dst = find_entry(fresh->entries, capacity, src->key);
            dst->key = src->key;        /* unpublished: plain stores */
            dst->value = src->value;
            count++;
        }
    }
    table->count = count;
    rt_store(&table->entries, fresh);   /* publish */
}

bool table_set(Table *table, ObjString *key, Value value) {
    uint64_t capacity = capacity_of(table);
    if (table->count + 1 > capacity * TABLE_MAX_LOAD)
        grow(table, capacity < TABLE_MIN_CAPACITY ? TABLE_MIN_CAPACITY : capacity * 2);
    Entry *entry = find_entry(table->entries->entries, table->entries->capacity, key);
    bool is_new = entry->key == NULL;
    if (is_new && IS_NIL(entry->value)) table->count++;
    rt_store(&entry->key, key);
    value_store(&entry->value, value);
    return is_new;
}

bool table_delete(Table *table, ObjString *key) {
    if (table->count == 0) return false;
    Entry *entry = find_entry(table->entries->entries, table->entries->capacity, key);
    if (entry->key == NULL) return false;
    rt_store(&entry->key, NULL);        /* deleting an edge is a store too */
    value_store(&entry->value, TRUE_VAL);
    return true;
}

void table_add_all(const Table *from, Table *to) {
    if (from->entries == NULL) return;
    /* table_set may allocate; from's array cannot change meanwhile. */
    for (uint64_t i = 0; i < from->entries->capacity; i++) {
        Entry *entry = &from->entries->entries[i];
        if (entry->key != NULL) table_set(to, entry->key, entry->value);
    }
}

void table_trace_entries(void *obj, size_t size, rt_visitor *v) {
    (void)size;
    EntryArray *array = obj;
    /* An empty slot or a tombstone (no key) holds no object: skipping it
       halves the visits of a sparse table.  Safe during a concurrent mark:
       whatever a deletion hid was shaded by its rt_store, and a value
       stored since is shaded by its own. */
    for (uint64_t i = 0; i < array->capacity; i++) {
        if (array->entries[i].key == NULL) continue;
        rt_visit(v, array->entries[i].key);
        visit_value(v, array->entries[i].value);
    }
}

/* ---- the weak intern table ------------------------------------------------- */

#define INTERN_MAX_LOAD 0.75

void intern_init(InternTable *table) {
    table->count = 0;
    table->capacity = 0;
    table->entries = NULL;
}

static inline ObjString *entry_string(InternEntry *e) {
    ObjString *s = rt_weak_get(e->ref);   /* during a mark this keeps s alive: we may return it */
    if (s == NULL) {                      /* died: the entry becomes a tombstone */
        e->used = 2;
        rt_store(&e->ref, NULL);
    }
    return s;
}

ObjString *intern_find(InternTable *table, const char *chars, int length, uint32_t hash) {
    if (table->count == 0) return NULL;
    uint64_t mask = (uint64_t)table->capacity - 1;
    for (uint64_t index = hash & mask;; index = (index + 1) & mask) {
        InternEntry *e = &table->entries[index];
        if (e->used == 0) return NULL;
        if (e->used != 1 || e->hash != hash) continue;
        ObjString *s = entry_string(e);
        if (s != NULL && s->length == length && memcmp(s->chars, chars, (size_t)length) == 0) return s;
    }
}

ObjString *intern_find_concat(InternTable *table, const ObjString *a, const ObjString *b, uint32_t hash) {
    if (table->count == 0) return NULL;
    int length = a->length + b->length;
    uint64_t mask = (uint64_t)table->capacity - 1;
    for (uint64_t index = hash & mask;; index = (index + 1) & mask) {
        InternEntry *e = &table->entries[index];
        if (e->used == 0) return NULL;
        if (e->used != 1 || e->hash != hash) continue;
        ObjString *s = entry_string(e);
        if (s != NULL && s->length == length && memcmp(s->chars, a->chars, (size_t)a->length) == 0
            && memcmp(s->chars + a->length, b->chars, (size_t)b->length) == 0)
            return s;
    }
}

int intern_live_count(const InternTable *table) {
    int n = 0;
    for (int i = 0; i < table->capacity; i++)
        if (table->entries[i].used == 1 && rt_weak_get(table->entries[i].ref) != NULL) n++;
    return n;
}

/* Rebuild with room for `live` strings plus one at half load: the table
   grows, or shrinks when many strings died. */
static void rebuild(InternTable *table) {
    int live = intern_live_count(table);
    int capacity = 8;
    while ((double)(live + 1) > capacity * 0.5) capacity *= 2;
    /* The only allocation: nothing needs rooting (the old array is still
       the table's).  A collection here may clear more handles: those
       entries are skipped below. */
    InternEntry *fresh = rt_alloc_array(gc_types.intern_entry, (size_t)capacity);
    lox_checked(fresh, sizeof(InternEntry) * (size_t)capacity);
    int count = 0;
    for (int i = 0; i < table->capacity; i++) {
        InternEntry *src = &table->entries[i];
        if (src->used != 1 || rt_weak_get(src->ref) == NULL) continue;
        uint64_t mask = (uint64_t)capacity - 1, index = src->hash & mask;
        while (fresh[index].used != 0) index = (index + 1) & mask;
        fresh[index].ref = src->ref;     /* unpublished: plain stores */
        fresh[index].hash = src->hash;
        fresh[index].used = 1;
        count++;
    }
    table->count = count;
    table->capacity = capacity;
    rt_store(&table->entries, fresh);   /* publish */
}

void intern_add(InternTable *table, ObjString *string) {
    if (table->count + 1 > table->capacity * INTERN_MAX_LOAD) rebuild(table);
    rt_weak *ref = rt_weak_make(string);   /* allocates: string is rooted by the caller */
    uint64_t mask = (uint64_t)table->capacity - 1, index = string->hash & mask;
    InternEntry *slot;
    for (;; index = (index + 1) & mask) {
        slot = &table->entries[index];
        if (slot->used != 1) break;                   /* empty or tombstone */
        if (rt_weak_get(slot->ref) == NULL) break;    /* dead: reuse it */
    }
    if (slot->used == 0) table->count++;
    rt_store(&slot->ref, ref);
    slot->hash = string->hash;
    slot->used = 1;
}
