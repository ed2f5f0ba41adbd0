/*
 * file.c — files and native memory (spool.h "files and memory").
 *
 * Model files are opened read-only and either mapped (MAP_SHARED, PROT_READ; dense
 * weights stay mapped) or read explicitly with pread (experts, DESIGN.md §4). Sizes and
 * offsets cross the ABI as doubles (exact up to 2^53) and are checked to be finite,
 * non-negative integers before they become off_t / size_t.
 *
 * O_DIRECT: spool_pread_direct reads the 4096-aligned superset
 *   [floor(offset/4096)*4096, ceil((offset+len)/4096)*4096)
 * into a 4096-aligned buffer and returns where the requested bytes start inside it. Near
 * end of file the kernel returns fewer bytes than asked (a length that is not a multiple
 * of 4096); that ends the read, and only a file that ends before offset+len is a
 * SPOOL_E_SHORT_READ. On macOS, SPOOL_OPEN_DIRECT sets F_NOCACHE instead (no alignment
 * requirement there, but the same aligned reads work).
 *
 * Every failing system call records errno through spool_set_errno and returns SPOOL_E_IO
 * (or NULL for spool_mmap / spool_alloc).
 */
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define DIRECT_ALIGN 4096.0
#define MAX_EXACT 9007199254740992.0 /* 2^53 */

/* A double that is a finite, non-negative integer below 2^53. */
static int is_count(double v) { return v >= 0.0 && v <= MAX_EXACT && v == (double)(int64_t)v; }

static long page_size(void) {
  static long ps = 0;
  if (!ps) {
    ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) ps = 4096;
  }
  return ps;
}

SPOOL_API int32_t spool_file_open(const char *path, int32_t flags) {
  if (!path || (flags & ~SPOOL_OPEN_DIRECT)) return SPOOL_E_INVALID;
  int oflags = O_RDONLY | O_CLOEXEC;
#if defined(O_DIRECT)
  if (flags & SPOOL_OPEN_DIRECT) oflags |= O_DIRECT;
#endif
  int fd;
  do {
    fd = open(path, oflags);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    /* with O_DIRECT, EINVAL means the file system does not support it (tmpfs, some FUSE):
     * the caller sees SPOOL_E_IO with errno EINVAL and falls back to buffered reads */
    spool_set_errno(errno);
    return SPOOL_E_IO;
  }
#if defined(__APPLE__)
  if ((flags & SPOOL_OPEN_DIRECT) && fcntl(fd, F_NOCACHE, 1) < 0) {
    spool_set_errno(errno);
    close(fd);
    return SPOOL_E_IO;
  }
#endif
  return fd;
}

SPOOL_API spool_status spool_file_close(int32_t fd) {
  if (fd < 0) return SPOOL_E_INVALID;
  if (close(fd) < 0 && errno != EINTR) { /* after EINTR the fd is gone on Linux and macOS */
    spool_set_errno(errno);
    return SPOOL_E_IO;
  }
  return SPOOL_OK;
}

SPOOL_API double spool_file_size(int32_t fd) {
  if (fd < 0) return SPOOL_E_INVALID;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    spool_set_errno(errno);
    return SPOOL_E_IO;
  }
  return (double)st.st_size;
}

SPOOL_API void *spool_mmap(int32_t fd, double size) {
  if (fd < 0 || !is_count(size) || size == 0.0 || size > (double)SIZE_MAX) {
    spool_set_errno(EINVAL);
    return NULL;
  }
  void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    spool_set_errno(errno);
    return NULL;
  }
  return p;
}

SPOOL_API spool_status spool_munmap(void *addr, double size) {
  if (!addr || !is_count(size) || size == 0.0) return SPOOL_E_INVALID;
  if (munmap(addr, (size_t)size) < 0) {
    spool_set_errno(errno);
    return SPOOL_E_IO;
  }
  return SPOOL_OK;
}

SPOOL_API spool_status spool_madvise(void *addr, double offset, double len, int32_t advice) {
  if (!addr || !is_count(offset) || !is_count(len)) return SPOOL_E_INVALID;
  int adv;
  switch (advice) {
  case SPOOL_MADV_NORMAL: adv = MADV_NORMAL; break;
  case SPOOL_MADV_RANDOM: adv = MADV_RANDOM; break;
  case SPOOL_MADV_SEQUENTIAL: adv = MADV_SEQUENTIAL; break;
  case SPOOL_MADV_WILLNEED: adv = MADV_WILLNEED; break;
  case SPOOL_MADV_DONTNEED: adv = MADV_DONTNEED; break;
  default: return SPOOL_E_INVALID;
  }
  if (len == 0.0) return SPOOL_OK;
  const uintptr_t ps = (uintptr_t)page_size();
  const uintptr_t start = ((uintptr_t)addr + (uintptr_t)offset) & ~(ps - 1);
  const uintptr_t end = ((uintptr_t)addr + (uintptr_t)offset + (uintptr_t)len + ps - 1) & ~(ps - 1);
  if (madvise((void *)start, (size_t)(end - start), adv) < 0) {
    spool_set_errno(errno);
    return SPOOL_E_IO;
  }
  return SPOOL_OK;
}

/* Read up to len bytes at off, looping over short reads and EINTR. Stops at end of file,
 * or (stop_unaligned) after a read that returned a length not a multiple of 4096 (the
 * end of file under O_DIRECT, where a further read at an unaligned offset would fail).
 * Returns the bytes read, or -1 with errno recorded. */
static int64_t read_loop(int fd, uint8_t *dst, uint64_t len, uint64_t off, int stop_unaligned) {
  uint64_t got = 0;
  while (got < len) {
    uint64_t want = len - got;
    if (want > 0x40000000u) want = 0x40000000u; /* 1 GiB per call (Linux caps at ~2 GiB) */
    const ssize_t r = pread(fd, dst + got, (size_t)want, (off_t)(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      spool_set_errno(errno);
      return -1;
    }
    if (r == 0) break;
    got += (uint64_t)r;
    if (stop_unaligned && ((uint64_t)r % 4096u) != 0) break;
  }
  return (int64_t)got;
}

SPOOL_API double spool_pread(int32_t fd, void *dst, double len, double offset) {
  if (fd < 0 || !is_count(len) || !is_count(offset)) return SPOOL_E_INVALID;
  if (len == 0.0) return 0.0;
  if (!dst) return SPOOL_E_INVALID;
  const int64_t got = read_loop(fd, (uint8_t *)dst, (uint64_t)len, (uint64_t)offset, 0);
  if (got < 0) return SPOOL_E_IO;
  if ((double)got < len) return SPOOL_E_SHORT_READ;
  return (double)got;
}

SPOOL_API double spool_direct_span(double offset, double len) {
  if (!is_count(offset) || !is_count(len)) return SPOOL_E_INVALID;
  const double start = floor(offset / DIRECT_ALIGN) * DIRECT_ALIGN;
  const double end = ceil((offset + len) / DIRECT_ALIGN) * DIRECT_ALIGN;
  return end - start;
}

SPOOL_API double spool_pread_direct(int32_t fd, void *dst, double len, double offset) {
  if (fd < 0 || !dst || !is_count(len) || !is_count(offset)) return SPOOL_E_INVALID;
  if (((uintptr_t)dst & 4095u) != 0) return SPOOL_E_ALIGN;
  const uint64_t off = (uint64_t)offset, n = (uint64_t)len;
  const uint64_t start = off & ~(uint64_t)4095u;
  const uint64_t end = (off + n + 4095u) & ~(uint64_t)4095u;
  const uint64_t lead = off - start;
  if (n == 0) return (double)lead;
  const int64_t got = read_loop(fd, (uint8_t *)dst, end - start, start, 1);
  if (got < 0) return SPOOL_E_IO;
  if ((uint64_t)got < lead + n) return SPOOL_E_SHORT_READ;
  return (double)lead;
}

/*
 * Large blocks (>= LAZY_MIN bytes, alignment up to a page) are anonymous mappings: the
 * kernel hands out zero pages on first touch, so a multi-GiB expert arena costs nothing
 * until slots fill (no memset of every page at load, and memory use grows with the cache's
 * contents). spool_free finds them in a small table and unmaps them; a full table falls
 * back to the heap.
 */
#define LAZY_MIN ((size_t)32 << 20)
#define LAZY_MAX 256
static struct { void *p; size_t n; } lazy_blocks[LAZY_MAX];
static pthread_mutex_t lazy_mu = PTHREAD_MUTEX_INITIALIZER;

static void *lazy_alloc(size_t n) {
  pthread_mutex_lock(&lazy_mu);
  int slot = -1;
  for (int i = 0; i < LAZY_MAX; i++) {
    if (!lazy_blocks[i].p) {
      slot = i;
      break;
    }
  }
  void *p = NULL;
  if (slot >= 0) {
    p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) p = NULL;
    else {
      lazy_blocks[slot].p = p;
      lazy_blocks[slot].n = n;
    }
  }
  pthread_mutex_unlock(&lazy_mu);
  return p;
}

static int lazy_free(void *p) {
  pthread_mutex_lock(&lazy_mu);
  int found = 0;
  for (int i = 0; i < LAZY_MAX; i++) {
    if (lazy_blocks[i].p == p) {
      munmap(p, lazy_blocks[i].n);
      lazy_blocks[i].p = NULL;
      lazy_blocks[i].n = 0;
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&lazy_mu);
  return found;
}

SPOOL_API void *spool_alloc(double size, int32_t align) {
  if (!is_count(size) || size > (double)SIZE_MAX || align < (int32_t)sizeof(void *) ||
      (align & (align - 1)) != 0) {
    spool_set_errno(EINVAL);
    return NULL;
  }
  const size_t n = size > 0.0 ? (size_t)size : 1;
  if (n >= LAZY_MIN && align <= 4096) {
    void *p = lazy_alloc(n);
    if (p) return p;
  }
  void *p = NULL;
  const int rc = posix_memalign(&p, (size_t)align, n);
  if (rc != 0) {
    spool_set_errno(rc);
    return NULL;
  }
  memset(p, 0, n);
  return p;
}

SPOOL_API void spool_free(void *ptr) {
  if (!ptr) return;
  if (!lazy_free(ptr)) free(ptr);
}

SPOOL_API void spool_memcpy(void *dst, const void *src, double n) {
  if (!dst || !src || !is_count(n) || n == 0.0) return;
  memmove(dst, src, (size_t)n);
}
