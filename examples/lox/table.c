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
    EntryArray *fresh = lox_alloc(sizeof(EntryArray) + capacity * sizeof(Entry), gc_types.entry_array);
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
        grow(table, capacity < 8 ? 8 : capacity * 2);
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

ObjString *table_find_string(const Table *table, const char *chars, int length, uint32_t hash) {
    if (table->count == 0) return NULL;
    uint64_t mask = table->entries->capacity - 1;
    uint64_t index = hash & mask;
    for (;;) {
        Entry *entry = &table->entries->entries[index];
        if (entry->key == NULL) {
            if (IS_NIL(entry->value)) return NULL;
        } else if (entry->key->length == length && entry->key->hash == hash
                   && memcmp(entry->key->chars, chars, (size_t)length) == 0) {
            return entry->key;
        }
        index = (index + 1) & mask;
    }
}

ObjString *table_find_concat(const Table *table, const ObjString *a, const ObjString *b, uint32_t hash) {
    if (table->count == 0) return NULL;
    int length = a->length + b->length;
    uint64_t mask = table->entries->capacity - 1;
    uint64_t index = hash & mask;
    for (;;) {
        Entry *entry = &table->entries->entries[index];
        if (entry->key == NULL) {
            if (IS_NIL(entry->value)) return NULL;
        } else if (entry->key->length == length && entry->key->hash == hash
                   && memcmp(entry->key->chars, a->chars, (size_t)a->length) == 0
                   && memcmp(entry->key->chars + a->length, b->chars, (size_t)b->length) == 0) {
            return entry->key;
        }
        index = (index + 1) & mask;
    }
}

void table_trace_entries(void *obj, size_t size, rt_visitor *v) {
    (void)size;
    EntryArray *array = obj;
    for (uint64_t i = 0; i < array->capacity; i++) {
        rt_visit(v, array->entries[i].key);
        visit_value(v, array->entries[i].value);
    }
}
