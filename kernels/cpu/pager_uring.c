/*
 * pager_uring.c — the expert pager's io_uring backend (pager.h; semantics in pager.c).
 *
 * One ring thread per pager keeps up to `depth` (= n_threads) IORING_OP_READs in flight.
 * It takes pieces off the pager's queue with spool_pager_claim exactly as a worker of the
 * threads backend would, writes one SQE per piece, and sleeps in io_uring_enter until a
 * completion arrives; each completion is retired with spool_pager_retire. No liburing: the
 * ring is set up with the raw syscalls and the SQ/CQ rings are mmapped here.
 *
 * Waking. The ring thread always waits in io_uring_enter(GETEVENTS, min_complete 1). Besides
 * the reads, one IORING_OP_READ of an eventfd is kept armed on the ring; submit (with the
 * pager's mutex held) writes to the eventfd when the ring has room for more reads and no
 * wakeup is pending yet, which completes that read and wakes the thread. So the caller's
 * submit costs a copy into the queue and at most one write(2); the reads themselves (and
 * the copies out of the page cache for buffered fds) happen on the ring thread and in the
 * kernel. The eventfd write happens under the mutex, so destroy can never close the eventfd
 * under a concurrent submit.
 *
 * Short reads are continued by resubmitting the rest of the piece, following read_piece in
 * pager.c step for step: a read that returns a length that is not a multiple of 4096 with
 * bytes still missing is followed by one probing read, whose 0 or EINVAL means end of file
 * under O_DIRECT; EINTR (and EAGAIN, bounded) is retried. So `need`, SPOOL_E_SHORT_READ,
 * errno and the failed position come out the same as with pread.
 *
 * Destroy. After stop is set and the queue dropped, spool_pager_uring_stop writes to the
 * eventfd (so the armed eventfd read completes) and joins the thread, which no longer
 * claims pieces or re-arms the eventfd and returns once every read on the ring (and the
 * eventfd read) has completed. Only then is the ring unmapped and closed: nothing the
 * kernel still holds can write into a destination buffer or into the pager afterwards.
 *
 * The ring holds depth + 1 entries (the reads and the eventfd read) and its completion
 * queue twice that, so neither can overflow. Where the headers lack io_uring (macOS, old
 * Linux headers), spool_pager_uring_start returns ENOSYS and the threads backend reads.
 */
#include "pager.h"
#include <errno.h>

#if defined(__linux__) && defined(__has_include)
#if __has_include(<linux/io_uring.h>)
#include <linux/io_uring.h>
#include <sys/syscall.h>
#if defined(__NR_io_uring_setup) && defined(__NR_io_uring_enter) && \
    defined(__NR_io_uring_register) && defined(IORING_FEAT_RW_CUR_POS)
#define PAGER_HAVE_URING 1
#endif
#endif
#endif

#ifdef PAGER_HAVE_URING
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define EAGAIN_RETRIES 64 /* a read that keeps returning EAGAIN fails with it */
#define FIXED_CHUNK (1ull << 30) /* the kernel's limit on one registered buffer */
#define WAKE_DATA 0       /* user_data of the eventfd read; reads are op index + 1 */

/* One read on the ring: a piece and how far it got. */
typedef struct {
  pager_piece pc;
  uint64_t got;   /* bytes of the piece read so far */
  int probe;      /* the last read was short and unaligned: this one tells end of file */
  int eagain;     /* EAGAIN retries so far */
  int plain;      /* a fixed-buffer read failed: read this piece with IORING_OP_READ */
  int fixed;      /* the last read went out as IORING_OP_READ_FIXED */
} uring_op;

/* A registered (fixed) buffer slot: [base, base + len) of the group registered at `group`. */
typedef struct {
  uint8_t *base, *group;
  uint64_t len;
  int state; /* FIXED_FREE, FIXED_BUSY (being (un)registered), FIXED_LIVE */
} fixed_slot;
enum { FIXED_FREE, FIXED_BUSY, FIXED_LIVE };

struct pager_uring {
  int ring_fd, event_fd;
  pthread_t thread;
  /* submission queue */
  unsigned *sq_tail, *sq_mask, *sq_array;
  struct io_uring_sqe *sqes;
  unsigned sq_local_tail; /* SQEs written; published to *sq_tail before io_uring_enter */
  unsigned to_submit;     /* SQEs written, not yet taken by io_uring_enter */
  /* completion queue */
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_cqe *cqes;
  /* mappings */
  void *sq_map, *cq_map, *sqe_map;
  size_t sq_map_len, cq_map_len, sqe_map_len;
  /* the eventfd read */
  uint64_t wake_buf;
  int wake_armed; /* an eventfd read is on the ring (or written, to be submitted) */
  int woken;      /* an eventfd write is pending: no need for another */
  int wake_fails; /* eventfd reads in a row that failed (then re-arming backs off) */
  /* registered buffers (IORING_REGISTER_BUFFERS2, sparse; 0 where the kernel lacks it) */
  int fixed_ok;
  fixed_slot fixed[PAGER_FIXED_SLOTS];
  /* reads */
  int32_t depth, n_free;
  int32_t *free_ops; /* depth op indices */
  uring_op *ops;     /* depth ops */
};

static int sys_setup(unsigned entries, struct io_uring_params *prm) {
  return (int)syscall(__NR_io_uring_setup, entries, prm);
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags) {
  return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0);
}

static int sys_register(int fd, unsigned op, void *arg, unsigned n) {
  return (int)syscall(__NR_io_uring_register, fd, op, arg, n);
}

/* Does the kernel know IORING_OP_READ (5.6+)? Asked with IORING_REGISTER_PROBE (also 5.6). */
static int probe_read(int ring_fd) {
  const unsigned n = 256;
  struct io_uring_probe *pr = (struct io_uring_probe *)calloc(
      1, sizeof(struct io_uring_probe) + n * sizeof(struct io_uring_probe_op));
  if (!pr) return 0;
  int ok = 0;
  if (sys_register(ring_fd, IORING_REGISTER_PROBE, pr, n) == 0 && pr->ops_len > IORING_OP_READ) {
    ok = (pr->ops[IORING_OP_READ].flags & IO_URING_OP_SUPPORTED) != 0;
  }
  free(pr);
  return ok;
}

static void ring_free(pager_uring *u) {
  if (u->sqe_map && u->sqe_map != MAP_FAILED) munmap(u->sqe_map, u->sqe_map_len);
  if (u->cq_map && u->cq_map != MAP_FAILED && u->cq_map != u->sq_map) {
    munmap(u->cq_map, u->cq_map_len);
  }
  if (u->sq_map && u->sq_map != MAP_FAILED) munmap(u->sq_map, u->sq_map_len);
  if (u->ring_fd >= 0) close(u->ring_fd);
  if (u->event_fd >= 0) close(u->event_fd);
  free(u->ops);
  free(u->free_ops);
  free(u);
}

/* An empty (sparse) table of PAGER_FIXED_SLOTS registered buffers (5.19); 0 if refused. */
static int fixed_setup(pager_uring *u) {
#ifdef IORING_RSRC_REGISTER_SPARSE
  struct io_uring_rsrc_register rr;
  memset(&rr, 0, sizeof(rr));
  rr.nr = PAGER_FIXED_SLOTS;
  rr.flags = IORING_RSRC_REGISTER_SPARSE;
  return sys_register(u->ring_fd, IORING_REGISTER_BUFFERS2, &rr, sizeof(rr)) == 0;
#else
  (void)u;
  return 0;
#endif
}

/* Point registered-buffer slot `slot` at [base, base + len) (NULL, 0: empty); 0 or errno.
 * Pinning the pages happens here, on the caller's thread, once. */
static int fixed_update(pager_uring *u, int slot, void *base, uint64_t len) {
#ifdef IORING_RSRC_REGISTER_SPARSE
  struct iovec iov = {base, (size_t)len};
  struct io_uring_rsrc_update2 up;
  memset(&up, 0, sizeof(up));
  up.offset = (uint32_t)slot;
  up.data = (uint64_t)(uintptr_t)&iov;
  up.nr = 1;
  return sys_register(u->ring_fd, IORING_REGISTER_BUFFERS_UPDATE, &up, sizeof(up)) < 0 ? errno
                                                                                        : 0;
#else
  (void)u, (void)slot, (void)base, (void)len;
  return ENOSYS;
#endif
}

/* Set up the ring (depth + 1 entries) and map it; 0 or an errno. */
static int ring_setup(pager_uring *u) {
  struct io_uring_params prm;
  memset(&prm, 0, sizeof(prm));
#ifdef IORING_SETUP_COOP_TASKRUN
  /* completions run when the ring thread enters the kernel anyway: no interrupts (5.19) */
  prm.flags = IORING_SETUP_COOP_TASKRUN;
#endif
  u->ring_fd = sys_setup((unsigned)u->depth + 1u, &prm);
  if (u->ring_fd < 0 && errno == EINVAL && prm.flags != 0) {
    memset(&prm, 0, sizeof(prm));
    u->ring_fd = sys_setup((unsigned)u->depth + 1u, &prm);
  }
  if (u->ring_fd < 0) return errno;
  if (!probe_read(u->ring_fd)) return ENOSYS;
  u->fixed_ok = fixed_setup(u);
  u->sq_map_len = prm.sq_off.array + prm.sq_entries * sizeof(unsigned);
  u->cq_map_len = prm.cq_off.cqes + prm.cq_entries * sizeof(struct io_uring_cqe);
  const int single = (prm.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single && u->cq_map_len > u->sq_map_len) u->sq_map_len = u->cq_map_len;
  u->sq_map = mmap(NULL, u->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                   u->ring_fd, IORING_OFF_SQ_RING);
  if (u->sq_map == MAP_FAILED) return errno;
  u->cq_map = single ? u->sq_map
                     : mmap(NULL, u->cq_map_len, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_POPULATE, u->ring_fd, IORING_OFF_CQ_RING);
  if (u->cq_map == MAP_FAILED) return errno;
  u->sqe_map_len = prm.sq_entries * sizeof(struct io_uring_sqe);
  u->sqe_map = mmap(NULL, u->sqe_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                    u->ring_fd, IORING_OFF_SQES);
  if (u->sqe_map == MAP_FAILED) return errno;
  uint8_t *sq = (uint8_t *)u->sq_map, *cq = (uint8_t *)u->cq_map;
  u->sq_tail = (unsigned *)(sq + prm.sq_off.tail);
  u->sq_mask = (unsigned *)(sq + prm.sq_off.ring_mask);
  u->sq_array = (unsigned *)(sq + prm.sq_off.array);
  u->sqes = (struct io_uring_sqe *)u->sqe_map;
  u->sq_local_tail = *u->sq_tail;
  u->cq_head = (unsigned *)(cq + prm.cq_off.head);
  u->cq_tail = (unsigned *)(cq + prm.cq_off.tail);
  u->cq_mask = (unsigned *)(cq + prm.cq_off.ring_mask);
  u->cqes = (struct io_uring_cqe *)(cq + prm.cq_off.cqes);
  if (prm.sq_entries < (unsigned)u->depth + 1u || prm.cq_entries < (unsigned)u->depth + 1u) {
    return ENOMEM; /* the kernel clamped the ring below what stays in flight */
  }
  return 0;
}

/* A zeroed SQE at the tail (there is always room: at most depth + 1 are outstanding). */
static struct io_uring_sqe *sqe_next(pager_uring *u) {
  const unsigned idx = u->sq_local_tail & *u->sq_mask;
  struct io_uring_sqe *sqe = &u->sqes[idx];
  memset(sqe, 0, sizeof(*sqe));
  u->sq_array[idx] = idx;
  u->sq_local_tail++;
  u->to_submit++;
  return sqe;
}

/* A read SQE; fixed >= 0 makes it IORING_OP_READ_FIXED from that registered buffer. */
static void prep_read(pager_uring *u, int fd, void *dst, unsigned len, uint64_t off,
                      uint64_t user_data, int fixed) {
  struct io_uring_sqe *sqe = sqe_next(u);
  sqe->opcode = fixed >= 0 ? IORING_OP_READ_FIXED : IORING_OP_READ;
  sqe->fd = fd;
  sqe->off = off;
  sqe->addr = (uint64_t)(uintptr_t)dst;
  sqe->len = len;
  sqe->user_data = user_data;
  if (fixed >= 0) sqe->buf_index = (uint16_t)fixed;
}

/* The live registered buffer holding [dst, dst + len), or -1 (mutex held). */
static int fixed_for(const pager_uring *u, const uint8_t *dst, uint64_t len) {
  for (int s = 0; s < PAGER_FIXED_SLOTS; s++) {
    const fixed_slot *f = &u->fixed[s];
    if (f->state == FIXED_LIVE && dst >= f->base && dst + len <= f->base + f->len) return s;
  }
  return -1;
}

/* (Re)submit the rest of an op's piece. Pieces are at most 4 MiB, so len fits. */
static void op_submit(pager_uring *u, int32_t i) {
  uring_op *op = &u->ops[i];
  uint8_t *dst = op->pc.dst + op->got;
  const uint64_t len = op->pc.len - op->got;
  const int fixed = op->plain ? -1 : fixed_for(u, dst, len);
  op->fixed = fixed >= 0;
  prep_read(u, op->pc.fd, dst, (unsigned)len, op->pc.off + op->got, (uint64_t)i + 1u, fixed);
}

static void arm_wake(pager_uring *u) {
  prep_read(u, u->event_fd, &u->wake_buf, sizeof(u->wake_buf), 0, WAKE_DATA, -1);
  u->wake_armed = 1;
}

/* Claim pieces while reads are free (mutex held). */
static void fill(spool_pager *p, pager_uring *u) {
  while (u->n_free > 0 && p->head != p->tail) {
    pager_piece pc;
    if (!spool_pager_claim(p, &pc)) continue;
    const int32_t i = u->free_ops[--u->n_free];
    uring_op *op = &u->ops[i];
    op->pc = pc;
    op->got = 0;
    op->probe = 0;
    op->eagain = 0;
    op->plain = 0;
    op_submit(u, i);
  }
}

/* One completion of read op i with result res (mutex held): go on, or retire the piece.
 * The steps are read_piece's in pager.c, one read at a time. */
static void op_complete(spool_pager *p, pager_uring *u, int32_t i, int32_t res) {
  uring_op *op = &u->ops[i];
  int32_t st = SPOOL_OK;
  int err = 0;
  if (res == -EINTR || (res == -EAGAIN && op->eagain++ < EAGAIN_RETRIES)) {
    op->probe = 0; /* read_piece goes back to an ordinary read */
    op_submit(u, i);
    return;
  }
  if (res < 0 && op->fixed) {
    /* a fixed-buffer read failed (its buffer may have been unregistered since the SQE was
     * written): the same read once more without it tells whether the error is real */
    op->plain = 1;
    op_submit(u, i);
    return;
  }
  if (res < 0) {
    if (!(op->probe && res == -EINVAL)) { /* EINVAL after a short unaligned read: EOF */
      st = SPOOL_E_IO;
      err = -res;
    }
  } else if (res > 0) {
    op->got += (uint64_t)res;
    if (op->got < op->pc.len) {
      op->probe = !op->probe && ((uint64_t)res & (PAGER_ALIGN - 1)) != 0;
      op_submit(u, i);
      return;
    }
  } /* res == 0: end of file */
  if (st == SPOOL_OK && op->got < op->pc.need) st = SPOOL_E_SHORT_READ;
  if (st == SPOOL_OK && op->fixed) p->st_fixed_reads += 1.0;
  spool_pager_retire(p, &op->pc, st, op->got, err);
  u->free_ops[u->n_free++] = i;
}

/* Take every completion off the CQ (mutex held). */
static void reap(spool_pager *p, pager_uring *u) {
  unsigned head = *u->cq_head;
  const unsigned tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
  const unsigned mask = *u->cq_mask;
  while (head != tail) {
    const struct io_uring_cqe *c = &u->cqes[head & mask];
    const uint64_t ud = c->user_data;
    const int32_t res = c->res;
    head++;
    if (ud == WAKE_DATA) {
      u->wake_armed = 0;
      if (res >= 0) u->woken = 0; /* the pending write was consumed */
      u->wake_fails = res >= 0 || res == -EINTR ? 0 : u->wake_fails + 1;
    } else {
      op_complete(p, u, (int32_t)(ud - 1u), res);
    }
  }
  __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
}

/* Sleep a millisecond without the mutex: the back-off of a ring that misbehaves. */
static void back_off(spool_pager *p) {
  pthread_mutex_unlock(&p->mu);
  const struct timespec ms = {0, 1000000};
  nanosleep(&ms, NULL);
  pthread_mutex_lock(&p->mu);
}

static void *ring_main(void *arg) {
  spool_pager *p = (spool_pager *)arg;
  pager_uring *u = p->uring;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (!p->stop) {
      if (!u->wake_armed) {
        /* an eventfd read that keeps failing would spin here: poll the queue each ms */
        if (u->wake_fails > 2) back_off(p);
        arm_wake(u);
      }
      fill(p, u);
    } else if (u->n_free == u->depth && !u->wake_armed) {
      break; /* stopping, and nothing of ours is on the ring any more */
    }
    const unsigned n = u->to_submit;
    __atomic_store_n(u->sq_tail, u->sq_local_tail, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&p->mu);
    /* something is always outstanding here (the eventfd read, or reads), so this returns */
    const int r = sys_enter(u->ring_fd, n, 1, IORING_ENTER_GETEVENTS);
    const int e = errno;
    pthread_mutex_lock(&p->mu);
    if (r > 0) u->to_submit -= (unsigned)r < n ? (unsigned)r : n;
    reap(p, u);
    /* not expected of a healthy ring: back off instead of spinning */
    if (r < 0 && e != EINTR && e != EAGAIN && e != EBUSY) back_off(p);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int spool_pager_uring_start(spool_pager *p) {
  pager_uring *u = (pager_uring *)calloc(1, sizeof(pager_uring));
  if (!u) return ENOMEM;
  u->ring_fd = u->event_fd = -1;
  u->depth = p->n_threads;
  u->ops = (uring_op *)calloc((size_t)u->depth, sizeof(uring_op));
  u->free_ops = (int32_t *)calloc((size_t)u->depth, sizeof(int32_t));
  int rc = u->ops && u->free_ops ? 0 : ENOMEM;
  if (rc == 0) rc = ring_setup(u);
  if (rc == 0) {
    u->event_fd = eventfd(0, EFD_CLOEXEC);
    if (u->event_fd < 0) rc = errno;
  }
  if (rc == 0) {
    for (int32_t i = 0; i < u->depth; i++) u->free_ops[i] = u->depth - 1 - i;
    u->n_free = u->depth;
    p->uring = u;
    rc = pthread_create(&u->thread, NULL, ring_main, p);
    if (rc != 0) p->uring = NULL;
  }
  if (rc != 0) ring_free(u);
  return rc;
}

void spool_pager_uring_wake(spool_pager *p) {
  pager_uring *u = p->uring;
  if (u->woken || u->n_free == 0) return; /* a wakeup is pending, or a completion will do */
  u->woken = 1;
  const uint64_t one = 1;
  while (write(u->event_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

void spool_pager_uring_stop(spool_pager *p) {
  pager_uring *u = p->uring;
  pthread_mutex_lock(&p->mu);
  const uint64_t one = 1;
  while (write(u->event_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
  pthread_mutex_unlock(&p->mu);
  pthread_join(u->thread, NULL);
  p->uring = NULL;
  ring_free(u);
}

int32_t spool_pager_uring_register(spool_pager *p, uint8_t *base, uint64_t len) {
  pager_uring *u = p->uring;
  if (!u || !u->fixed_ok) return 0;
  const int n = (int)((len + FIXED_CHUNK - 1) / FIXED_CHUNK);
  int slots[PAGER_FIXED_SLOTS], got = 0;
  pthread_mutex_lock(&p->mu);
  for (int s = 0; s < PAGER_FIXED_SLOTS && got < n; s++) {
    if (u->fixed[s].state == FIXED_FREE) slots[got++] = s;
  }
  if (got == n) {
    for (int k = 0; k < n; k++) u->fixed[slots[k]].state = FIXED_BUSY;
  }
  pthread_mutex_unlock(&p->mu);
  if (got < n) return SPOOL_E_RANGE;
  /* pin without the mutex (it can take a while for gigabytes): the ring thread goes on */
  int err = 0, done = 0;
  for (; done < n && !err; done++) {
    const uint64_t at = (uint64_t)done * FIXED_CHUNK;
    err = fixed_update(u, slots[done], base + at, len - at < FIXED_CHUNK ? len - at : FIXED_CHUNK);
  }
  if (err) {
    for (int k = 0; k < done - 1; k++) fixed_update(u, slots[k], NULL, 0);
  }
  pthread_mutex_lock(&p->mu);
  for (int k = 0; k < n; k++) {
    fixed_slot *f = &u->fixed[slots[k]];
    const uint64_t at = (uint64_t)k * FIXED_CHUNK;
    f->base = base + at;
    f->group = base;
    f->len = len - at < FIXED_CHUNK ? len - at : FIXED_CHUNK;
    f->state = err ? FIXED_FREE : FIXED_LIVE;
  }
  pthread_mutex_unlock(&p->mu);
  if (err) spool_set_errno(err);
  return err ? 0 : 1;
}

int32_t spool_pager_uring_unregister(spool_pager *p, uint8_t *base) {
  pager_uring *u = p->uring;
  if (!u) return SPOOL_E_INVALID;
  int slots[PAGER_FIXED_SLOTS], n = 0;
  pthread_mutex_lock(&p->mu);
  for (int s = 0; s < PAGER_FIXED_SLOTS; s++) {
    if (u->fixed[s].state == FIXED_LIVE && u->fixed[s].group == base) {
      u->fixed[s].state = FIXED_BUSY; /* no new read uses it from here on */
      slots[n++] = s;
    }
  }
  pthread_mutex_unlock(&p->mu);
  if (n == 0) return SPOOL_E_INVALID;
  /* reads already on the ring keep the kernel's reference to the old pages; a read whose
   * SQE was written but not yet submitted fails and is retried without the buffer */
  for (int k = 0; k < n; k++) fixed_update(u, slots[k], NULL, 0);
  pthread_mutex_lock(&p->mu);
  for (int k = 0; k < n; k++) u->fixed[slots[k]].state = FIXED_FREE;
  pthread_mutex_unlock(&p->mu);
  return SPOOL_OK;
}

#else /* no io_uring here: the threads backend reads */

int spool_pager_uring_start(spool_pager *p) {
  (void)p;
  return ENOSYS;
}
void spool_pager_uring_wake(spool_pager *p) { (void)p; }
void spool_pager_uring_stop(spool_pager *p) { (void)p; }
int32_t spool_pager_uring_register(spool_pager *p, uint8_t *base, uint64_t len) {
  (void)p, (void)base, (void)len;
  return 0;
}
int32_t spool_pager_uring_unregister(spool_pager *p, uint8_t *base) {
  (void)p, (void)base;
  return SPOOL_E_INVALID;
}

#endif
