/*
 * pager_parity.c — standalone check of the expert pager's io_uring backend against its
 * reference, the threads backend (pread workers), through the public ABI:
 *  - random ranges over several tickets (one ticket per request group, waited out of
 *    order) land byte for byte as in the file, and both backends leave identical buffers;
 *  - end of file: past `need` is quiet, before it SPOOL_E_SHORT_READ with the position;
 *  - O_DIRECT aligned supersets, including one that runs past end of file (skipped where
 *    the file system refuses O_DIRECT);
 *  - I/O errors: a directory fd (EISDIR) and a closed fd (EBADF) with the failed range;
 *  - many tickets in flight; exact byte and piece statistics;
 *  - destroy with reads in flight: afterwards nothing writes into the destination;
 *  - SPOOL_PAGER=threads and an unknown backend.
 * Where io_uring is unavailable (qemu-user, seccomp, io_uring_disabled, old kernels) only
 * the threads backend runs, and the program says so. Exits non-zero if any check fails.
 *
 *   cc -O2 -D_GNU_SOURCE -Ikernels/include kernels/test/pager_parity.c \
 *      -Lkernels/dist/linux-x64 -lspool -Wl,-rpath,kernels/dist/linux-x64 -o /tmp/pager_parity
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "spool.h"

static int failures = 0;
static uint64_t rng_state = 0x9a6e3c1f5d2b4a87ull;

static uint32_t rnd_u32(void) { /* xorshift64 (parity.h's, which clashes with unistd.h) */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

#define FILE_BYTES (3u * 1024u * 1024u + 1234u) /* not a multiple of 4096: a ragged tail */
#define N_RANGES 240
#define POISON 0xa5

static void check(const char *what, int ok) {
  printf("%-4s %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) failures++;
}

static uint8_t *file_data;
static char file_path[4096];

static void *aligned(size_t n) {
  void *p = NULL;
  if (posix_memalign(&p, 4096, n ? n : 4096) != 0) abort();
  return p;
}

static void make_file(void) {
  const char *dir = getenv("TMPDIR");
  snprintf(file_path, sizeof(file_path), "%s/spool_pager_parity_XXXXXX", dir ? dir : "/tmp");
  const int fd = mkstemp(file_path);
  if (fd < 0) {
    perror("mkstemp");
    exit(2);
  }
  file_data = (uint8_t *)malloc(FILE_BYTES);
  for (size_t i = 0; i < FILE_BYTES; i++) file_data[i] = (uint8_t)(rnd_u32() >> 24);
  size_t w = 0;
  while (w < FILE_BYTES) {
    const ssize_t r = write(fd, file_data + w, FILE_BYTES - w);
    if (r <= 0) {
      perror("write");
      exit(2);
    }
    w += (size_t)r;
  }
  close(fd);
}

static void req(double *r, int fd, const void *dst, uint64_t len, uint64_t off, uint64_t need) {
  r[0] = fd;
  r[1] = (double)(uintptr_t)dst;
  r[2] = (double)len;
  r[3] = (double)off;
  r[4] = (double)need;
}

static const char *name_of(int32_t backend) {
  return backend == SPOOL_PAGER_BACKEND_URING ? "uring" : "threads";
}

/* N_RANGES random ranges over 6 tickets (waited in reverse) into a poisoned buffer of
 * total bytes; returns the buffer for the cross-backend comparison. */
static uint8_t *random_ranges(spool_pager *p, int32_t backend, int depth, size_t *total_out) {
  uint64_t offs[N_RANGES], lens[N_RANGES], at[N_RANGES];
  uint64_t seed = 0x1234567u, total = 0;
  for (int i = 0; i < N_RANGES; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    const uint64_t x = seed >> 20;
    lens[i] = i == 0 ? FILE_BYTES : i % 40 == 0 ? 0 : 1 + x % 300000u;
    offs[i] = (x >> 3) % (FILE_BYTES - lens[i] + 1);
    at[i] = total;
    total += lens[i];
  }
  uint8_t *dst = (uint8_t *)malloc(total);
  memset(dst, POISON, total);
  /* at depth 4 the destination is registered: io_uring reads it with READ_FIXED */
  const int fixed = depth == 4 ? spool_pager_register(p, dst, (double)total) : 0;
  const int fd = open(file_path, O_RDONLY);
  double reqs[N_RANGES * SPOOL_PAGER_REQ_DOUBLES];
  int32_t tickets[6];
  for (int k = 0; k < 6; k++) {
    int n = 0;
    for (int i = k; i < N_RANGES; i += 6) {
      req(reqs + n++ * SPOOL_PAGER_REQ_DOUBLES, fd, dst + at[i], lens[i], offs[i], lens[i]);
    }
    tickets[k] = spool_pager_submit(p, reqs, n);
  }
  int ok = 1;
  for (int k = 5; k >= 0; k--) ok &= spool_pager_wait(p, tickets[k]) == SPOOL_OK;
  for (int i = 0; i < N_RANGES; i++) ok &= memcmp(dst + at[i], file_data + offs[i], lens[i]) == 0;
  char what[128];
  snprintf(what, sizeof(what), "%s depth %d: %d random ranges over 6 tickets match the file",
           name_of(backend), depth, N_RANGES);
  check(what, ok);
  snprintf(what, sizeof(what), "%s depth %d: stats count every byte", name_of(backend), depth);
  check(what, spool_pager_stat(p, SPOOL_PAGER_STAT_BYTES) == (double)total &&
                  spool_pager_stat(p, SPOOL_PAGER_STAT_IN_FLIGHT) == 0.0 &&
                  spool_pager_stat(p, SPOOL_PAGER_STAT_QUEUED) == 0.0);
  if (depth == 4) {
    const double fr = spool_pager_stat(p, SPOOL_PAGER_STAT_FIXED_READS);
    snprintf(what, sizeof(what), "%s: registered destination (%s): %.0f of %.0f reads fixed",
             name_of(backend), fixed == 1 ? "yes" : "no", fr,
             spool_pager_stat(p, SPOOL_PAGER_STAT_READS));
    check(what, fixed >= 0 && (fixed == 1 ? fr == spool_pager_stat(p, SPOOL_PAGER_STAT_READS)
                                          : fr == 0.0) &&
                    (backend == SPOOL_PAGER_BACKEND_URING || fixed == 0));
    if (fixed == 1) check("unregister", spool_pager_unregister(p, dst) == SPOOL_OK);
    check("unregistering what is not registered is INVALID",
          spool_pager_unregister(p, dst) == SPOOL_E_INVALID);
  }
  close(fd);
  *total_out = total;
  return dst;
}

/* End of file: a request past it with need up to it is fine, one needing more is short. */
static void eof_rules(spool_pager *p, const char *name) {
  const int fd = open(file_path, O_RDONLY);
  uint8_t *dst = (uint8_t *)malloc(1 << 20);
  double r[SPOOL_PAGER_REQ_DOUBLES];
  const double b0 = spool_pager_stat(p, SPOOL_PAGER_STAT_BYTES);
  const uint64_t off = FILE_BYTES - 5000;
  req(r, fd, dst, 1 << 20, off, 5000);
  int32_t t = spool_pager_submit(p, r, 1);
  char what[128];
  snprintf(what, sizeof(what), "%s: a read past end of file after `need` is quiet", name);
  check(what, spool_pager_wait(p, t) == SPOOL_OK && memcmp(dst, file_data + off, 5000) == 0 &&
                  spool_pager_stat(p, SPOOL_PAGER_STAT_BYTES) - b0 == 5000.0);
  req(r, fd, dst, 1 << 20, off, 5001);
  t = spool_pager_submit(p, r, 1);
  snprintf(what, sizeof(what), "%s: end of file before `need` is SHORT_READ at end of file",
           name);
  check(what, spool_pager_wait(p, t) == SPOOL_E_SHORT_READ &&
                  spool_pager_error(p, t, SPOOL_PAGER_ERR_AT) == (double)FILE_BYTES &&
                  spool_pager_error(p, t, SPOOL_PAGER_ERR_OFFSET) == (double)off &&
                  spool_pager_error(p, t, SPOOL_PAGER_ERR_ERRNO) == 0.0);
  free(dst);
  close(fd);
}

/* O_DIRECT: the aligned superset of the whole file and of its last 10 bytes. */
static void direct_reads(spool_pager *p, const char *name) {
  const int fd = open(file_path, O_RDONLY | O_DIRECT);
  char what[128];
  if (fd < 0) {
    printf("skip %s: O_DIRECT refused here (errno %d)\n", name, errno);
    return;
  }
  const uint64_t sup = (FILE_BYTES + 4095u) & ~4095ull;
  uint8_t *dst = (uint8_t *)aligned(sup + 8192);
  memset(dst, POISON, sup + 8192);
  double r[2 * SPOOL_PAGER_REQ_DOUBLES];
  const uint64_t tail = (FILE_BYTES - 10) & ~4095ull;
  req(r, fd, dst, sup, 0, FILE_BYTES);
  req(r + SPOOL_PAGER_REQ_DOUBLES, fd, dst + sup, 8192, tail, FILE_BYTES - tail);
  const int32_t t = spool_pager_submit(p, r, 2);
  snprintf(what, sizeof(what), "%s: O_DIRECT supersets (whole file, ragged tail) match", name);
  check(what, spool_pager_wait(p, t) == SPOOL_OK && memcmp(dst, file_data, FILE_BYTES) == 0 &&
                  memcmp(dst + sup, file_data + tail, FILE_BYTES - tail) == 0);
  req(r, fd, dst + 1, 4096, 0, 4096);
  snprintf(what, sizeof(what), "%s: a misaligned O_DIRECT request is ALIGN", name);
  check(what, spool_pager_submit(p, r, 1) == SPOOL_E_ALIGN);
  free(dst);
  close(fd);
}

/* A directory and a closed fd fail with their errno and the failed range. */
static void io_errors(spool_pager *p, const char *name) {
  uint8_t *dst = (uint8_t *)malloc(8192);
  double r[SPOOL_PAGER_REQ_DOUBLES];
  char what[128];
  const int dfd = open("/", O_RDONLY | O_DIRECTORY);
  req(r, dfd, dst, 8192, 4096, 8192);
  int32_t t = spool_pager_submit(p, r, 1);
  snprintf(what, sizeof(what), "%s: a directory fd is SPOOL_E_IO with EISDIR", name);
  check(what, spool_pager_wait(p, t) == SPOOL_E_IO &&
                  spool_pager_error(p, t, SPOOL_PAGER_ERR_ERRNO) == (double)EISDIR &&
                  spool_pager_error(p, t, SPOOL_PAGER_ERR_FD) == (double)dfd &&
                  spool_pager_error(p, t, SPOOL_PAGER_ERR_OFFSET) == 4096.0 &&
                  spool_pager_error(p, t, SPOOL_PAGER_ERR_LENGTH) == 8192.0);
  close(dfd);
  const int cfd = open(file_path, O_RDONLY);
  close(cfd);
  req(r, cfd, dst, 100, 0, 100);
  t = spool_pager_submit(p, r, 1);
  snprintf(what, sizeof(what), "%s: a closed fd is SPOOL_E_IO with EBADF", name);
  check(what, spool_pager_wait(p, t) == SPOOL_E_IO &&
                  spool_pager_error(p, t, SPOOL_PAGER_ERR_ERRNO) == (double)EBADF);
  free(dst);
}

/* 300 tickets of 4 requests in flight at once, waited in a scrambled order. */
static void many_tickets(spool_pager *p, const char *name) {
  enum { NT = 300, PER = 4, CHUNK = 16384 };
  const int fd = open(file_path, O_RDONLY);
  uint8_t *dst = (uint8_t *)malloc((size_t)NT * PER * CHUNK);
  uint64_t offs[NT * PER];
  int32_t tickets[NT];
  for (int t = 0; t < NT; t++) {
    double r[PER * SPOOL_PAGER_REQ_DOUBLES];
    for (int j = 0; j < PER; j++) {
      offs[t * PER + j] = rnd_u32() % (FILE_BYTES - CHUNK);
      req(r + j * SPOOL_PAGER_REQ_DOUBLES, fd, dst + (size_t)(t * PER + j) * CHUNK, CHUNK,
          offs[t * PER + j], CHUNK);
    }
    tickets[t] = spool_pager_submit(p, r, PER);
  }
  int ok = 1;
  for (int k = 0; k < NT; k++) {
    const int t = (k * 7919) % NT;
    if (k % 2) {
      ok &= spool_pager_wait(p, tickets[t]) == SPOOL_OK;
    } else {
      int32_t s;
      while ((s = spool_pager_poll(p, tickets[t])) == 0) {
      }
      ok &= s == 1;
    }
  }
  for (int i = 0; i < NT * PER; i++) {
    ok &= memcmp(dst + (size_t)i * CHUNK, file_data + offs[i], CHUNK) == 0;
  }
  char what[128];
  snprintf(what, sizeof(what), "%s: %d tickets in flight, waited and polled out of order", name,
           NT);
  check(what, ok);
  free(dst);
  close(fd);
}

/* Destroy with reads in flight, then a canary in the destination must stay untouched. */
static void destroy_in_flight(int32_t backend) {
  const int fd = open(file_path, O_RDONLY);
  const size_t n = 16, bytes = n * FILE_BYTES;
  uint8_t *dst = (uint8_t *)malloc(bytes);
  int ok = 1;
  for (int round = 0; round < 5; round++) {
    spool_pager *p = spool_pager_create_backend(4, backend);
    for (size_t i = 0; i < n; i++) {
      double r[SPOOL_PAGER_REQ_DOUBLES];
      req(r, fd, dst + i * FILE_BYTES, FILE_BYTES, 0, FILE_BYTES);
      ok &= spool_pager_submit(p, r, 1) > 0;
    }
    spool_pager_destroy(p);
    memset(dst, POISON, bytes);
    const struct timespec ms = {0, 20000000};
    nanosleep(&ms, NULL);
    for (size_t i = 0; i < bytes; i++) ok &= dst[i] == POISON;
  }
  char what[128];
  snprintf(what, sizeof(what), "%s: destroy with reads in flight; nothing writes afterwards",
           name_of(backend));
  check(what, ok);
  free(dst);
  close(fd);
}

/* Stats: 10 requests under the minimum piece are 10 reads; the file over 4 workers is split. */
static void stats_exact(spool_pager *p, const char *name) {
  const int fd = open(file_path, O_RDONLY);
  uint8_t *dst = (uint8_t *)malloc(FILE_BYTES);
  double r[10 * SPOOL_PAGER_REQ_DOUBLES];
  const double b0 = spool_pager_stat(p, SPOOL_PAGER_STAT_BYTES);
  const double n0 = spool_pager_stat(p, SPOOL_PAGER_STAT_READS);
  for (int i = 0; i < 10; i++) {
    req(r + i * SPOOL_PAGER_REQ_DOUBLES, fd, dst + i * 100000, 100000, i * 123457u, 100000);
  }
  int ok = spool_pager_wait(p, spool_pager_submit(p, r, 10)) == SPOOL_OK;
  req(r, fd, dst, FILE_BYTES, 0, FILE_BYTES);
  ok &= spool_pager_wait(p, spool_pager_submit(p, r, 1)) == SPOOL_OK;
  const uint64_t depth = (uint64_t)spool_pager_threads(p);
  uint64_t piece = ((FILE_BYTES + depth - 1) / depth + 4095u) & ~4095ull;
  if (piece < (128u << 10)) piece = 128u << 10;
  if (piece > (4u << 20)) piece = 4u << 20;
  const double pieces = (double)((FILE_BYTES + piece - 1) / piece);
  char what[128];
  snprintf(what, sizeof(what), "%s: bytes and pieces counted exactly; busy >= wall > 0", name);
  const double busy = spool_pager_stat(p, SPOOL_PAGER_STAT_BUSY_NS);
  const double wall = spool_pager_stat(p, SPOOL_PAGER_STAT_WALL_NS);
  check(what, ok && memcmp(dst, file_data, FILE_BYTES) == 0 &&
                  spool_pager_stat(p, SPOOL_PAGER_STAT_BYTES) - b0 == 1e6 + FILE_BYTES &&
                  spool_pager_stat(p, SPOOL_PAGER_STAT_READS) - n0 == 10 + pieces && wall > 0 &&
                  busy >= wall * 0.99);
  free(dst);
  close(fd);
}

int main(void) {
  make_file();
  errno = 0;
  spool_pager *u = spool_pager_create_backend(4, SPOOL_PAGER_BACKEND_URING);
  const int have_uring = u != NULL;
  if (have_uring) {
    check("uring: the backend reports itself",
          spool_pager_stat(u, SPOOL_PAGER_STAT_BACKEND) == SPOOL_PAGER_BACKEND_URING);
    spool_pager_destroy(u);
  } else {
    printf("skip io_uring unavailable here (errno %d): the threads backend alone is checked\n",
           spool_last_errno());
  }
  const int32_t backends[2] = {SPOOL_PAGER_BACKEND_THREADS, SPOOL_PAGER_BACKEND_URING};
  const int depths[2] = {1, 4};
  for (int d = 0; d < 2; d++) {
    uint8_t *bufs[2] = {NULL, NULL};
    size_t total = 0;
    for (int b = 0; b < (have_uring ? 2 : 1); b++) {
      spool_pager *p = spool_pager_create_backend(depths[d], backends[b]);
      check(name_of(backends[b]), p != NULL &&
                                      spool_pager_stat(p, SPOOL_PAGER_STAT_BACKEND) == backends[b]);
      if (!p) continue;
      bufs[b] = random_ranges(p, backends[b], depths[d], &total);
      if (depths[d] == 4) {
        eof_rules(p, name_of(backends[b]));
        direct_reads(p, name_of(backends[b]));
        io_errors(p, name_of(backends[b]));
        many_tickets(p, name_of(backends[b]));
        stats_exact(p, name_of(backends[b]));
      }
      spool_pager_destroy(p);
    }
    if (bufs[0] && bufs[1]) {
      check("uring and threads leave identical buffers", memcmp(bufs[0], bufs[1], total) == 0);
    }
    free(bufs[0]);
    free(bufs[1]);
  }
  for (int b = 0; b < (have_uring ? 2 : 1); b++) destroy_in_flight(backends[b]);
  setenv("SPOOL_PAGER", "threads", 1);
  spool_pager *t = spool_pager_create(2);
  check("SPOOL_PAGER=threads picks the threads backend",
        t && spool_pager_stat(t, SPOOL_PAGER_STAT_BACKEND) == SPOOL_PAGER_BACKEND_THREADS);
  spool_pager_destroy(t);
  unsetenv("SPOOL_PAGER");
  t = spool_pager_create(2);
  check("the default backend is io_uring where it works, else threads",
        t && spool_pager_stat(t, SPOOL_PAGER_STAT_BACKEND) ==
                 (have_uring ? SPOOL_PAGER_BACKEND_URING : SPOOL_PAGER_BACKEND_THREADS));
  spool_pager_destroy(t);
  check("an unknown backend is EINVAL",
        spool_pager_create_backend(2, 7) == NULL && spool_last_errno() == EINVAL);
  unlink(file_path);
  free(file_data);
  printf("%s\n", failures ? "FAILED" : "all passed");
  return failures ? 1 : 0;
}
