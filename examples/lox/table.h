/* table.h -- open-addressing hash tables keyed by interned strings.
 *
 * Owns: Table (globals, fields, methods) and InternTable (the string
 * intern table, whose entries are weak).
 *
 * A Table is a small struct embedded in its owner (the VM for globals,
 * an ObjClass for methods, an ObjInstance for fields); its slots
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

/* The trace function of the "EntryArray" type (registered in memory.c). */
void table_trace_entries(void *obj, size_t size, rt_visitor *v);

/* ---- the string intern table: weak ----------------------------------------
 * Each entry holds an rtgc weak handle to an interned string (and its
 * hash), so the table never keeps a string alive: a string no program
 * references any more is collected, its handle then reads NULL, and the
 * entry counts as a tombstone.  A rebuild (when the table fills up) keeps
 * only the strings still alive, so the table also shrinks.
 *
 * The slots are an rtgc array of InternEntry (layout type: `ref` is a
 * pointer, keeping the handle, not the string, alive); the InternTable
 * itself lives in the VM struct, whose scanner visits the array. */
typedef struct {
    rt_weak  *ref;              /* handle to the string; NULL if empty or a tombstone */
    uint32_t  hash;
    uint32_t  used;             /* 0 empty, 1 entry (its string may have died), 2 tombstone */
} InternEntry;

typedef struct {
    int          count;         /* slots used: entries (dead ones too) plus tombstones */
    int          capacity;      /* a power of two, 0 before the first insertion */
    InternEntry *entries;
} InternTable;

void intern_init(InternTable *table);
/* The live interned string equal to chars[0..length) / to a+b, if any.
   Entries whose string died become tombstones on the way. */
ObjString *intern_find(InternTable *table, const char *chars, int length, uint32_t hash);
ObjString *intern_find_concat(InternTable *table, const ObjString *a, const ObjString *b, uint32_t hash);
/* Enter string (rooted by the caller: this allocates). */
void intern_add(InternTable *table, ObjString *string);
/* Strings in the table that are still alive. */
int intern_live_count(const InternTable *table);

#endif
