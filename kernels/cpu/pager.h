/*
 * pager.h — the expert pager's state, shared by its two backends (not part of the ABI).
 * pager.c holds the queue, the tickets, the statistics and the threads backend (pthreads
 * running pread); pager_uring.c the io_uring backend (one thread keeping the ring full).
 * Both claim pieces from the same queue and retire them through the same function, so
 * tickets, `need`, errors and statistics mean the same whichever backend reads.
 */
#ifndef SPOOL_PAGER_H
#define SPOOL_PAGER_H

#include "internal.h"
#include <pthread.h>

#define PAGER_RING_CAP 4096u
#define PAGER_MAX_THREADS 256
#define PAGER_ALIGN 4096u
#define PAGER_FIXED_SLOTS 64 /* registered buffers of an io_uring pager (each <= 1 GiB) */

typedef struct {
  uint8_t *dst;
  uint64_t off, len, need, cursor, piece;
  int32_t fd;
  int32_t slot;
} pager_request;

typedef struct {
  uint32_t gen;      /* generation of the ticket in this slot (0: never used) */
  int live;          /* handed out and not yet released by wait/poll */
  uint64_t pending;  /* bytes not yet retired (read or skipped) */
  int32_t status;    /* SPOOL_OK or the first failure */
  int32_t err_errno; /* errno of the first SPOOL_E_IO */
  int32_t err_fd;
  double err_off, err_len, err_at; /* failed request's range; file position where it stopped */
} pager_ticket;

/* One piece claimed from the head of the queue: bytes [0, len) at file offset off into dst,
 * the first `need` of which must arrive; req_off/req_len name the request it belongs to. */
typedef struct {
  uint8_t *dst;
  uint64_t off, len, need;
  int32_t fd, slot;
  double req_off, req_len;
  uint64_t t0; /* when it was claimed (its busy time runs from here to its retire) */
} pager_piece;

typedef struct pager_uring pager_uring; /* pager_uring.c */

struct spool_pager {
  pthread_mutex_t mu;
  pthread_cond_t work_cv;  /* ring not empty, or stop (threads backend) */
  pthread_cond_t space_cv; /* ring has room */
  pthread_cond_t done_cv;  /* a ticket finished, or all reads drained */
  int stop;
  int32_t backend;   /* SPOOL_PAGER_BACKEND_THREADS or SPOOL_PAGER_BACKEND_URING */
  int32_t n_threads; /* queue depth: workers, or reads in flight on the ring */
  int32_t n_workers; /* pthreads started (threads backend) */
  pthread_t threads[PAGER_MAX_THREADS];
  pager_uring *uring; /* io_uring backend state, or NULL */
  pager_request ring[PAGER_RING_CAP];
  uint32_t head, tail; /* ring indices (mod 2^32); count = tail - head */
  pager_ticket tickets[SPOOL_PAGER_MAX_TICKETS];
  uint32_t next_slot;
  uint32_t next_gen;
  /* statistics */
  int32_t in_flight;
  uint64_t flight_start_ns;
  double st_bytes, st_reads, st_busy_ns, st_wall_ns;
  double st_fixed_reads; /* pieces read into registered buffers (io_uring) */
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t spool_pager_now_ns(void);

/* With the mutex held and the queue not empty: take the next piece of the head request.
 * Returns 1 when the piece must be read (it counts as in flight until retired), 0 when its
 * ticket already failed and the piece was skipped (retired here). */
int spool_pager_claim(spool_pager *p, pager_piece *pc);

/* With the mutex held: a claimed piece finished with status st (SPOOL_OK, SPOOL_E_IO with
 * errno err, SPOOL_E_SHORT_READ), got bytes read. Updates the statistics (busy time from
 * claim to now, so busy >= wall exactly) and the ticket, and wakes its waiters when done. */
void spool_pager_retire(spool_pager *p, const pager_piece *pc, int32_t st, uint64_t got,
                        int err);

/* io_uring backend (pager_uring.c). start: set up the ring and its thread for a pager whose
 * mutex, condition variables and n_threads are set; 0, or the errno that says why not
 * (ENOSYS where io_uring is missing, was compiled out, or lacks IORING_OP_READ). */
int spool_pager_uring_start(spool_pager *p);
/* With the mutex held, after queueing: make sure the ring thread will look at the queue. */
void spool_pager_uring_wake(spool_pager *p);
/* After stop was set and the queue dropped (mutex not held): wait for the reads in flight,
 * join the thread, release the ring. */
void spool_pager_uring_stop(spool_pager *p);
/* spool_pager_register / _unregister for the io_uring backend (no-ops elsewhere). */
int32_t spool_pager_uring_register(spool_pager *p, uint8_t *base, uint64_t len);
int32_t spool_pager_uring_unregister(spool_pager *p, uint8_t *base);

#endif /* SPOOL_PAGER_H */
