/* table.h -- open-addressing hash tables keyed by interned strings.
 *
 * Owns: Table (globals, fields, methods, the string intern table).
 *
 * A Table is a small struct embedded in its owner (the VM for globals and
 * strings, an ObjClass for methods, an ObjInstance for fields); its slots
 * live in one rtgc object of the traced type "EntryArray", whose trace
 * function visits every key and every object value.  Because the Table may
 * sit inside a heap object, every pointer store into it (the entries
 * pointer, a key, a value) goes through rt_store.
 *
 * Empty slot: key NULL, value nil.  Tombstone: key NULL, value true. */
#ifndef LOX_TABLE_H
#define LOX_TABLE_H

#include "common.h"
#include "value.h"

typedef struct {
    ObjString *key;
    Value      value;
} Entry;

typedef struct EntryArray {
    uint64_t capacity;          /* a power of two */
    Entry    entries[];
} EntryArray;

typedef struct {
    int         count;          /* live entries plus tombstones */
    EntryArray *entries;        /* NULL until the first insertion */
} Table;

void table_init(Table *table);
bool table_get(const Table *table, ObjString *key, Value *value);
/* May allocate (growth): the caller keeps key and value reachable.
   Returns true if key was not present. */
bool table_set(Table *table, ObjString *key, Value value);
bool table_delete(Table *table, ObjString *key);
/* Copy every entry of from into to (inheritance).  May allocate. */
void table_add_all(const Table *from, Table *to);
/* The interned string equal to chars[0..length), if any. */
ObjString *table_find_string(const Table *table, const char *chars, int length, uint32_t hash);
/* The interned string equal to a+b, if any (concatenation without a buffer). */
ObjString *table_find_concat(const Table *table, const ObjString *a, const ObjString *b, uint32_t hash);

/* The trace function of the "EntryArray" type (registered in memory.c). */
void table_trace_entries(void *obj, size_t size, rt_visitor *v);

#endif
