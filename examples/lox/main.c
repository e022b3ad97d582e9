/* main.c -- the lox command: run a script, or a REPL without one.
 *
 * Owns: command-line handling, reading files, exit codes (65 compile
 * error, 70 runtime error, 74 unreadable file, 64 usage: as clox), and the
 * order of start-up: rtgc first (gc_start), then the VM (vm_init).
 *
 * Options, before the path:
 *   --conservative  also scan the C stack and registers conservatively, as a
 *                   safety net (also LOX_CONSERVATIVE=1).  The default,
 *                   --precise, keeps objects alive through the VM's root
 *                   scanners only (docs/embedding.md, section 1).
 *   --stats         print rtgc's statistics on stderr at exit (also LOX_GCSTATS=1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "vm.h"

static bool show_stats;

static void print_stats(void) {
    if (!show_stats) return;
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    const double mib = 1 << 20;
    fprintf(stderr, "lox: %llu collections, %llu objects allocated (%.1f MiB), "
                    "heap in use %.1f MiB (spans %.1f of %.1f MiB obtained, %.1f released), "
                    "total pause %.3f ms\n",
            (unsigned long long)st.num_gc, (unsigned long long)st.mallocs,
            st.total_alloc / mib, st.heap_alloc / mib, st.heap_inuse / mib, st.heap_sys / mib,
            st.heap_released / mib, st.pause_total_ns / 1e6);
}

static void finish(int code) {
    fflush(stdout);
    print_stats();
    /* No rt_shutdown: the process is ending and the OS takes the heap back.
       An embedder that restarts the runtime would call it here. */
    exit(code);
}

static void repl(void) {
    char line[1024];
    for (;;) {
        printf("> ");
        /* Waiting for input is not heap work: hand the P back so a
           collection never waits for us. */
        rt_enter_blocking();
        char *got = fgets(line, sizeof line, stdin);
        rt_exit_blocking();
        if (got == NULL) {
            printf("\n");
            break;
        }
        interpret(line);
    }
}

/* The source is a plain malloc'd buffer: it is not a Lox object, and the
   compiler copies every string it needs out of it. */
static char *read_file(const char *path) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        fprintf(stderr, "Could not open file \"%s\".\n", path);
        exit(74);
    }
    fseek(file, 0L, SEEK_END);
    long size = ftell(file);
    rewind(file);
    if (size < 0) size = 0;
    char *buffer = malloc((size_t)size + 1);
    if (buffer == NULL) {
        fprintf(stderr, "Not enough memory to read \"%s\".\n", path);
        exit(74);
    }
    size_t bytes_read = fread(buffer, sizeof(char), (size_t)size, file);
    if (bytes_read < (size_t)size) {
        fprintf(stderr, "Could not read file \"%s\".\n", path);
        exit(74);
    }
    buffer[bytes_read] = '\0';
    fclose(file);
    return buffer;
}

static void run_file(const char *path) {
    rt_enter_blocking();                /* file I/O: no heap access */
    char *source = read_file(path);
    rt_exit_blocking();
    InterpretResult result = interpret(source);
    free(source);
    if (result == INTERPRET_COMPILE_ERROR) finish(65);
    if (result == INTERPRET_RUNTIME_ERROR) finish(70);
}

static bool env_flag(const char *name) {
    const char *v = getenv(name);
    return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

int main(int argc, const char *argv[]) {
    bool precise = !env_flag("LOX_CONSERVATIVE");
    show_stats = env_flag("LOX_GCSTATS");
    int arg = 1;
    for (; arg < argc && strncmp(argv[arg], "--", 2) == 0; arg++) {
        if (strcmp(argv[arg], "--precise") == 0) precise = true;
        else if (strcmp(argv[arg], "--conservative") == 0) precise = false;
        else if (strcmp(argv[arg], "--stats") == 0) show_stats = true;
        else break;
    }
    if (argc - arg > 1 || (arg < argc && strncmp(argv[arg], "--", 2) == 0)) {
        fprintf(stderr, "Usage: lox [--precise | --conservative] [--stats] [path]\n");
        exit(64);
    }

    if (!gc_start(precise)) exit(70);
    vm_init();

    if (arg == argc) repl();
    else run_file(argv[arg]);
    finish(0);
}
