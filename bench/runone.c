/* runone.c -- measure one benchmark process for bench/run.
 *
 * Usage: runone OUTFILE TIMEOUT_S PROGRAM [ARGS...]
 * Forks, execs PROGRAM, waits with wait4 and writes one line to OUTFILE:
 *   wall_s user_s sys_s maxrss_kb minflt majflt status timed_out
 * then exits with PROGRAM's exit code (128+signal if it was killed).
 *
 * Why a C helper: Linux carries the RSS high-water mark of the forking
 * process into the child's ru_maxrss across exec, so a child forked straight
 * from the Python runner never reports less than the runner's own RSS (about
 * 15 MB).  Forked from this small program, the floor is about 1 MB.
 * After TIMEOUT_S seconds the child is killed with SIGKILL. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t child;
static volatile sig_atomic_t timed_out;

static void on_alarm(int sig) {
    (void)sig;
    timed_out = 1;
    if (child > 0) kill(child, SIGKILL);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: runone OUTFILE TIMEOUT_S PROGRAM [ARGS...]\n");
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    if (!out) { perror(argv[1]); return 2; }
    unsigned timeout = (unsigned)atoi(argv[2]);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) {
        execvp(argv[3], argv + 3);
        perror(argv[3]);
        _exit(127);
    }
    child = pid;
    struct sigaction sa = { .sa_handler = on_alarm };
    sigaction(SIGALRM, &sa, NULL);
    if (timeout) alarm(timeout);
    int status = 0;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {}
    clock_gettime(CLOCK_MONOTONIC, &t1);
    alarm(0);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(out, "%.6f %.6f %.6f %ld %ld %ld %d %d\n", wall,
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
            ru.ru_maxrss, ru.ru_minflt, ru.ru_majflt, status, (int)timed_out);
    fclose(out);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
