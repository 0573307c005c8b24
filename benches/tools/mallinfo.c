/*
 * mallinfo.c: samples glibc's heap (mallinfo2) and the process's resident
 * memory (/proc/self/statm) every 50 ms, to see what a peak RSS is made of
 * over a run: heap in use, free space inside the heap, file-backed pages.
 * A measuring aid for the performance notes (README, benches/HISTORY.md); not part of the
 * agent.
 *
 *   gcc -O2 -shared -fPIC -o /tmp/mallinfo.so benches/tools/mallinfo.c -lpthread
 *   printf '#!/bin/sh\nMI_OUT=/tmp/mi LD_PRELOAD=/tmp/mallinfo.so exec %s "$@"\n' \
 *       "$PWD/target/dist/tailtrace" > /tmp/tt-mi && chmod +x /tmp/tt-mi
 *   E2E_BIN=/tmp/tt-mi E2E_SHAPES=5000 E2E_SPOOL=on E2E_LATENCY_SECS=0 cargo bench --bench e2e
 *
 * One file per agent process: $MI_OUT.<pid>, a line per sample (seconds
 * since start, then bytes): arena (heap from sbrk), inuse, free, fastfree,
 * keep (trimmable top), mmap (mapped blocks), rss, shr (file-backed).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static void *loop(void *a) {
  (void)a; usleep(200000);
  char path[256];
  const char *o = getenv("MI_OUT");
  if (!o) return 0;
  snprintf(path, sizeof path, "%s.%d", o, getpid());
  FILE *f = fopen(path, "w");
  if (!f) return 0;
  struct timespec t0; clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    struct mallinfo2 m = mallinfo2();
    long size=0, res=0, shr=0;
    FILE *s = fopen("/proc/self/statm", "r");
    if (s) { if (fscanf(s, "%ld %ld %ld", &size, &res, &shr) != 3) {} fclose(s); }
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    double el = (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(f, "%.2f arena=%zu inuse=%zu free=%zu fastfree=%zu keep=%zu mmap=%zu rss=%ld shr=%ld\n", el,
            m.arena, m.uordblks, m.fordblks, m.fsmblks, m.keepcost, m.hblkhd, res * 4096, shr * 4096);
    fflush(f);
    usleep(50000);
  }
  return 0;
}
__attribute__((constructor)) static void start(void) {
  pthread_t t; pthread_attr_t at; pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_create(&t, &at, loop, 0);
}
