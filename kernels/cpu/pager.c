/*
 * pager.c — the native expert pager (spool.h "expert pager", DESIGN.md §4).
 *
 * Experts are read from SSD with explicit reads, many in flight, never through page
 * faults. A pager owns a bounded ring of pending requests and one of two backends that read
 * them (pager.h); everything is allocated once in spool_pager_create.
 *  - threads: n I/O worker threads (pthreads) that sleep on a condition variable when idle
 *    and each run one pread at a time (this file). The reference, and the fallback.
 *  - io_uring (Linux, pager_uring.c): one thread keeps n IORING_OP_READs in flight on a
 *    ring, so n reads cost one thread's submissions and completions instead of n threads
 *    waking and sleeping. Chosen by default where io_uring works (io_uring_setup can fail
 *    with ENOSYS, EPERM under seccomp, or by the io_uring_disabled sysctl; kernels before
 *    5.6 lack IORING_OP_READ); SPOOL_PAGER=threads or spool_pager_create_backend picks one.
 * Both take the same pieces off the same queue and retire them through spool_pager_retire,
 * so everything below holds for both: n is the queue depth either way.
 *
 * Requests. spool_pager_submit copies n requests of SPOOL_PAGER_REQ_DOUBLES doubles each
 * (fd, dst address, len, file offset, need) into the ring under one ticket. Nothing is
 * read by the caller's thread: submit is a copy into the ring plus a wakeup (a condition
 * variable, or an eventfd the ring thread waits on). Workers claim *pieces* of the request
 * at the ring's head: a piece is the next [cursor, cursor + piece) of the head request, so
 * one large request is read by several workers at once and the queue depth is the thread
 * count (or the reads the ring thread keeps in flight). The piece size is chosen per ticket
 * as ceil(ticket bytes / threads) rounded up to 4096, clamped to [128 KiB, 4 MiB]: one big
 * ticket is spread over all workers, many small requests stay whole. Pieces start at
 * multiples of 4096 from the request's start, so an aligned O_DIRECT request yields
 * aligned pieces.
 *
 * need. A request must deliver its first `need` bytes (need <= len, usually need == len);
 * end of file after them ends the request quietly. This is how the aligned superset of a
 * range near end of file is read through O_DIRECT: len is rounded up to 4096 and may run
 * past end of file, need covers the requested bytes. End of file before `need` bytes is
 * SPOOL_E_SHORT_READ. A read through O_DIRECT that returns a length that is not a multiple
 * of 4096 has reached end of file (a further read at an unaligned offset would fail). A
 * short read is continued for the rest of the piece (the io_uring backend resubmits it).
 *
 * Alignment. With an O_DIRECT fd, offset, len and dst must be multiples of 4096. Submit
 * checks that only for requests that are misaligned: such a request costs one
 * fcntl(F_GETFL) (cached for consecutive requests of one fd within a call), aligned ones
 * cost nothing, and an O_DIRECT fd with a misaligned request fails the whole submit with
 * SPOOL_E_ALIGN (nothing is queued). macOS has no O_DIRECT (F_NOCACHE has no alignment
 * rule), so there is no check there.
 *
 * Tickets. A table of SPOOL_PAGER_MAX_TICKETS slots; ticket = (generation << 10) | slot,
 * always > 0. A ticket is live from submit until wait returns or poll reports it finished;
 * its outcome (status, errno, the failed range) stays readable by wait, poll and
 * spool_pager_error until its slot is reused, which happens only after the other
 * 1023 slots have been handed out (slots are taken round-robin). Submit returns
 * SPOOL_E_RANGE when all slots are live (tickets that are never waited leak their slot).
 * Once a read of a ticket failed, its remaining pieces are skipped (counted, not read).
 *
 * Threads. One mutex guards the ring, the tickets and the statistics; workers (and the ring
 * thread) hold it only to claim pieces and to retire them, never during a read. submit,
 * wait, poll, error and stat may be called from any thread (spool calls them from the
 * engine's one JS thread). submit blocks while the ring is full (workers drain it), so any
 * n is accepted. spool_pager_destroy drops queued pieces that no worker has started, waits
 * for the reads in flight (the ring thread finishes the ones on the ring), joins the
 * threads and frees the pager: after it returns nothing writes to the destination buffers.
 *
 * Statistics (spool_pager_stat): bytes delivered by successful reads, pieces read, busy
 * nanoseconds summed over pieces (from claim to retire: time inside the reads), and wall
 * nanoseconds during which at least one read was in flight. busy / wall is the mean queue
 * depth actually achieved. SPOOL_PAGER_STAT_BACKEND says which backend reads.
 *
 * Registered buffers (spool_pager_register, io_uring only): a destination registered once
 * is pinned once, and reads into it go out as IORING_OP_READ_FIXED, which spares the
 * kernel pinning the pages of every O_DIRECT read (pager_uring.c).
 */
#include "pager.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOT_BITS 10
#define GEN_MAX ((1u << (31 - SLOT_BITS)) - 1u) /* keeps tickets positive int32 */
#define PIECE_MIN (128u << 10)
#define PIECE_MAX (4u << 20)
#define ALIGN PAGER_ALIGN
#define MAX_EXACT 9007199254740992.0 /* 2^53 */

_Static_assert((1u << SLOT_BITS) == SPOOL_PAGER_MAX_TICKETS, "ticket table size");

uint64_t spool_pager_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A double that is a finite, non-negative integer below 2^53. */
static int is_count(double v) { return v >= 0.0 && v <= MAX_EXACT && v == (double)(int64_t)v; }

/*
 * Read bytes [0, len) of a piece at file offset off into dst; at least the first `need`
 * must arrive. Loops over EINTR and short reads. Returns SPOOL_OK, SPOOL_E_SHORT_READ or
 * SPOOL_E_IO (errno in *err); *got says how many bytes were read.
 */
static int32_t read_piece(int fd, uint8_t *dst, uint64_t len, uint64_t need, uint64_t off,
                          uint64_t *got_out, int *err) {
  uint64_t got = 0;
  int32_t st = SPOOL_OK;
  while (got < len) {
    const ssize_t r = pread(fd, dst + got, (size_t)(len - got), (off_t)(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      st = SPOOL_E_IO;
      break;
    }
    if (r == 0) break;
    got += (uint64_t)r;
    if (((uint64_t)r & (ALIGN - 1)) != 0 && got < len) {
      /* maybe end of file under O_DIRECT: one more try tells (0 = end of file); on a
       * buffered fd this is an ordinary short read and the loop goes on */
      const ssize_t r2 = pread(fd, dst + got, (size_t)(len - got), (off_t)(off + got));
      if (r2 > 0) {
        got += (uint64_t)r2;
        continue;
      }
      if (r2 < 0 && errno == EINTR) continue;
      if (r2 < 0 && errno != EINVAL) {
        *err = errno;
        st = SPOOL_E_IO;
      }
      break; /* 0, or EINVAL from an unaligned O_DIRECT read at end of file */
    }
  }
  *got_out = got;
  if (st == SPOOL_OK && got < need) st = SPOOL_E_SHORT_READ;
  return st;
}

int spool_pager_claim(spool_pager *p, pager_piece *pc) {
  pager_request *rq = &p->ring[p->head % PAGER_RING_CAP];
  const uint64_t rel = rq->cursor;
  uint64_t n = rq->len - rel;
  if (n > rq->piece) n = rq->piece;
  rq->cursor += n;
  pc->fd = rq->fd;
  pc->slot = rq->slot;
  pc->dst = rq->dst + rel;
  pc->off = rq->off + rel;
  pc->len = n;
  pc->need = rq->need > rel ? (rq->need - rel < n ? rq->need - rel : n) : 0;
  pc->req_off = (double)rq->off;
  pc->req_len = (double)rq->len;
  if (rq->cursor == rq->len) {
    p->head++;
    pthread_cond_signal(&p->space_cv);
  }
  pager_ticket *t = &p->tickets[pc->slot];
  if (t->status != SPOOL_OK) { /* the ticket failed: skip the rest of its reads */
    t->pending -= n;
    if (t->pending == 0) pthread_cond_broadcast(&p->done_cv);
    return 0;
  }
  pc->t0 = spool_pager_now_ns();
  if (p->in_flight++ == 0) p->flight_start_ns = pc->t0;
  return 1;
}

void spool_pager_retire(spool_pager *p, const pager_piece *pc, int32_t st, uint64_t got,
                        int err) {
  const uint64_t now = spool_pager_now_ns();
  if (--p->in_flight == 0) p->st_wall_ns += (double)(now - p->flight_start_ns);
  p->st_busy_ns += (double)(now - pc->t0);
  pager_ticket *t = &p->tickets[pc->slot];
  if (st == SPOOL_OK) {
    p->st_bytes += (double)got;
    p->st_reads += 1.0;
  } else if (t->status == SPOOL_OK) {
    t->status = st;
    t->err_errno = st == SPOOL_E_IO ? err : 0;
    t->err_fd = pc->fd;
    t->err_off = pc->req_off;
    t->err_len = pc->req_len;
    t->err_at = (double)(pc->off + got);
  }
  t->pending -= pc->len;
  if (t->pending == 0) pthread_cond_broadcast(&p->done_cv);
}

static void *worker_main(void *arg) {
  spool_pager *p = (spool_pager *)arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stop && p->head == p->tail) pthread_cond_wait(&p->work_cv, &p->mu);
    if (p->stop) break;
    pager_piece pc;
    if (!spool_pager_claim(p, &pc)) continue;
    pthread_mutex_unlock(&p->mu);
    uint64_t got = 0;
    int err = 0;
    const int32_t st = read_piece(pc.fd, pc.dst, pc.len, pc.need, pc.off, &got, &err);
    pthread_mutex_lock(&p->mu);
    spool_pager_retire(p, &pc, st, got, err);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void pager_free(spool_pager *p) {
  pthread_cond_destroy(&p->done_cv);
  pthread_cond_destroy(&p->space_cv);
  pthread_cond_destroy(&p->work_cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

/* Start n_threads workers; 0, or the error of the first pthread_create when none started. */
static int threads_start(spool_pager *p) {
  for (int32_t i = 0; i < p->n_threads; i++) {
    const int rc = pthread_create(&p->threads[i], NULL, worker_main, p);
    if (rc != 0) {
      if (i == 0) return rc;
      break; /* keep the ones that started */
    }
    p->n_workers = i + 1;
  }
  p->n_threads = p->n_workers;
  p->backend = SPOOL_PAGER_BACKEND_THREADS;
  return 0;
}

/* The backend SPOOL_PAGER_BACKEND_AUTO stands for: SPOOL_PAGER=threads|uring, else auto. */
static int32_t backend_from_env(void) {
  const char *e = getenv("SPOOL_PAGER");
  if (e && strcmp(e, "threads") == 0) return SPOOL_PAGER_BACKEND_THREADS;
  if (e && strcmp(e, "uring") == 0) return SPOOL_PAGER_BACKEND_URING;
  return SPOOL_PAGER_BACKEND_AUTO;
}

SPOOL_API spool_pager *spool_pager_create_backend(int32_t n_threads, int32_t backend) {
  if (backend < SPOOL_PAGER_BACKEND_AUTO || backend > SPOOL_PAGER_BACKEND_URING) {
    spool_set_errno(EINVAL);
    return NULL;
  }
  if (n_threads < 1) n_threads = 1;
  if (n_threads > PAGER_MAX_THREADS) n_threads = PAGER_MAX_THREADS;
  spool_pager *p = (spool_pager *)calloc(1, sizeof(spool_pager));
  if (!p) {
    spool_set_errno(ENOMEM);
    return NULL;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work_cv, NULL);
  pthread_cond_init(&p->space_cv, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  p->next_gen = 1;
  p->n_threads = n_threads;
  if (backend == SPOOL_PAGER_BACKEND_AUTO) backend = backend_from_env();
  int rc = ENOSYS;
  if (backend != SPOOL_PAGER_BACKEND_THREADS) {
    rc = spool_pager_uring_start(p);
    if (rc == 0) p->backend = SPOOL_PAGER_BACKEND_URING;
  }
  if (rc != 0 && backend != SPOOL_PAGER_BACKEND_URING) rc = threads_start(p);
  if (rc != 0) {
    pager_free(p);
    spool_set_errno(rc);
    return NULL;
  }
  return p;
}

SPOOL_API spool_pager *spool_pager_create(int32_t n_threads) {
  return spool_pager_create_backend(n_threads, SPOOL_PAGER_BACKEND_AUTO);
}

SPOOL_API void spool_pager_destroy(spool_pager *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  p->head = p->tail; /* drop pieces nobody started */
  pthread_cond_broadcast(&p->work_cv);
  pthread_cond_broadcast(&p->space_cv);
  pthread_mutex_unlock(&p->mu);
  /* each worker finishes its read in flight, sees stop and exits; the ring thread waits
   * for the reads on the ring */
  if (p->uring) spool_pager_uring_stop(p);
  for (int32_t i = 0; i < p->n_workers; i++) pthread_join(p->threads[i], NULL);
  pager_free(p);
}

SPOOL_API int32_t spool_pager_threads(const spool_pager *p) { return p ? p->n_threads : 0; }

/* Is fd open with O_DIRECT? (never on macOS) */
static int fd_is_direct(int fd) {
#if defined(O_DIRECT)
  const int fl = fcntl(fd, F_GETFL);
  return fl >= 0 && (fl & O_DIRECT) != 0;
#else
  (void)fd;
  return 0;
#endif
}
SPOOL_API int32_t spool_pager_submit(spool_pager *p, const double *reqs, int32_t n) {
  if (!p || n < 0 || (n > 0 && !reqs)) return SPOOL_E_INVALID;
  /* validate everything first: a failed submit queues nothing */
  uint64_t total = 0;
  int32_t last_fd = -1, last_direct = 0;
  for (int32_t i = 0; i < n; i++) {
    const double *r = reqs + (size_t)i * SPOOL_PAGER_REQ_DOUBLES;
    const double fd = r[0], dst = r[1], len = r[2], off = r[3], need = r[4];
    if (!(fd >= 0.0 && fd <= 2147483647.0 && fd == (double)(int32_t)fd)) return SPOOL_E_INVALID;
    if (!is_count(dst) || !is_count(len) || !is_count(off) || !is_count(need) || need > len)
      return SPOOL_E_INVALID;
    if (len > 0.0 && dst == 0.0) return SPOOL_E_INVALID;
    const uint64_t a = (uint64_t)dst | (uint64_t)len | (uint64_t)off;
    if ((a & (ALIGN - 1)) != 0 && len > 0.0) {
      if ((int32_t)fd != last_fd) {
        last_fd = (int32_t)fd;
        last_direct = fd_is_direct(last_fd);
      }
      if (last_direct) return SPOOL_E_ALIGN;
    }
    total += (uint64_t)len;
  }
  uint64_t piece = (total + (uint64_t)p->n_threads - 1) / (uint64_t)p->n_threads;
  piece = (piece + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
  if (piece < PIECE_MIN) piece = PIECE_MIN;
  if (piece > PIECE_MAX) piece = PIECE_MAX;

  pthread_mutex_lock(&p->mu);
  if (p->stop) {
    pthread_mutex_unlock(&p->mu);
    return SPOOL_E_INVALID;
  }
  /* a free slot, round-robin from the last one handed out */
  int32_t slot = -1;
  for (uint32_t k = 0; k < SPOOL_PAGER_MAX_TICKETS; k++) {
    const uint32_t s = (p->next_slot + k) % SPOOL_PAGER_MAX_TICKETS;
    if (!p->tickets[s].live) {
      slot = (int32_t)s;
      break;
    }
  }
  if (slot < 0) {
    pthread_mutex_unlock(&p->mu);
    return SPOOL_E_RANGE;
  }
  p->next_slot = ((uint32_t)slot + 1) % SPOOL_PAGER_MAX_TICKETS;
  pager_ticket *t = &p->tickets[slot];
  const uint32_t gen = p->next_gen;
  p->next_gen = gen >= GEN_MAX ? 1 : gen + 1;
  t->gen = gen;
  t->live = 1;
  t->pending = total;
  t->status = SPOOL_OK;
  t->err_errno = 0;
  t->err_fd = -1;
  t->err_off = t->err_len = t->err_at = 0.0;
  for (int32_t i = 0; i < n; i++) {
    const double *r = reqs + (size_t)i * SPOOL_PAGER_REQ_DOUBLES;
    if (r[2] == 0.0) continue;
    while (p->tail - p->head >= PAGER_RING_CAP && !p->stop) {
      pthread_cond_wait(&p->space_cv, &p->mu);
    }
    if (p->stop) break; /* destroy raced with submit (another thread): the pager is going */
    pager_request *rq = &p->ring[p->tail % PAGER_RING_CAP];
    rq->fd = (int32_t)r[0];
    rq->dst = (uint8_t *)(uintptr_t)(uint64_t)r[1];
    rq->len = (uint64_t)r[2];
    rq->off = (uint64_t)r[3];
    rq->need = (uint64_t)r[4];
    rq->cursor = 0;
    rq->piece = piece;
    rq->slot = slot;
    p->tail++;
    if (p->uring) {
      spool_pager_uring_wake(p);
    } else {
      pthread_cond_signal(&p->work_cv);
    }
  }
  const int32_t ticket = (int32_t)((gen << SLOT_BITS) | (uint32_t)slot);
  pthread_mutex_unlock(&p->mu);
  return ticket;
}

/* The slot of a ticket handed out by this pager, or NULL. Called with the mutex held. */
static pager_ticket *find_ticket(spool_pager *p, int32_t ticket) {
  if (ticket <= 0) return NULL;
  pager_ticket *t = &p->tickets[(uint32_t)ticket & (SPOOL_PAGER_MAX_TICKETS - 1)];
  const uint32_t gen = (uint32_t)ticket >> SLOT_BITS;
  if (gen == 0 || t->gen != gen) return NULL; /* gen 0 marks a slot never handed out */
  return t;
}

SPOOL_API int32_t spool_pager_wait(spool_pager *p, int32_t ticket) {
  if (!p) return SPOOL_E_INVALID;
  pthread_mutex_lock(&p->mu);
  pager_ticket *t = find_ticket(p, ticket);
  if (!t) {
    pthread_mutex_unlock(&p->mu);
    return SPOOL_E_INVALID;
  }
  while (t->pending > 0) pthread_cond_wait(&p->done_cv, &p->mu);
  t->live = 0;
  const int32_t st = t->status;
  pthread_mutex_unlock(&p->mu);
  return st;
}

SPOOL_API int32_t spool_pager_poll(spool_pager *p, int32_t ticket) {
  if (!p) return SPOOL_E_INVALID;
  pthread_mutex_lock(&p->mu);
  pager_ticket *t = find_ticket(p, ticket);
  int32_t r;
  if (!t) {
    r = SPOOL_E_INVALID;
  } else if (t->pending > 0) {
    r = 0;
  } else {
    t->live = 0;
    r = t->status == SPOOL_OK ? 1 : t->status;
  }
  pthread_mutex_unlock(&p->mu);
  return r;
}

SPOOL_API double spool_pager_error(spool_pager *p, int32_t ticket, int32_t what) {
  if (!p) return SPOOL_E_INVALID;
  pthread_mutex_lock(&p->mu);
  pager_ticket *t = find_ticket(p, ticket);
  double v;
  if (!t) {
    v = SPOOL_E_INVALID;
  } else {
    switch (what) {
    case SPOOL_PAGER_ERR_ERRNO: v = t->err_errno; break;
    case SPOOL_PAGER_ERR_OFFSET: v = t->err_off; break;
    case SPOOL_PAGER_ERR_LENGTH: v = t->err_len; break;
    case SPOOL_PAGER_ERR_FD: v = t->err_fd; break;
    case SPOOL_PAGER_ERR_AT: v = t->err_at; break;
    default: v = SPOOL_E_INVALID; break;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return v;
}

SPOOL_API double spool_pager_stat(spool_pager *p, int32_t what) {
  if (!p) return SPOOL_E_INVALID;
  pthread_mutex_lock(&p->mu);
  double v;
  switch (what) {
  case SPOOL_PAGER_STAT_BYTES: v = p->st_bytes; break;
  case SPOOL_PAGER_STAT_READS: v = p->st_reads; break;
  case SPOOL_PAGER_STAT_BUSY_NS: v = p->st_busy_ns; break;
  case SPOOL_PAGER_STAT_WALL_NS: {
    const uint64_t open_ns = p->in_flight > 0 ? spool_pager_now_ns() - p->flight_start_ns : 0;
    v = p->st_wall_ns + (double)open_ns;
    break;
  }
  case SPOOL_PAGER_STAT_QUEUED: v = (double)(p->tail - p->head); break;
  case SPOOL_PAGER_STAT_IN_FLIGHT: v = (double)p->in_flight; break;
  case SPOOL_PAGER_STAT_BACKEND: v = (double)p->backend; break;
  case SPOOL_PAGER_STAT_FIXED_READS: v = p->st_fixed_reads; break;
  default: v = SPOOL_E_INVALID; break;
  }
  pthread_mutex_unlock(&p->mu);
  return v;
}

SPOOL_API int32_t spool_pager_register(spool_pager *p, void *buf, double len) {
  if (!p || !buf || !is_count(len) || len <= 0.0) return SPOOL_E_INVALID;
  return spool_pager_uring_register(p, (uint8_t *)buf, (uint64_t)len);
}

SPOOL_API int32_t spool_pager_unregister(spool_pager *p, void *buf) {
  if (!p || !buf) return SPOOL_E_INVALID;
  return spool_pager_uring_unregister(p, (uint8_t *)buf);
}
