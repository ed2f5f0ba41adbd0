/**
 * The native expert pager (kernels/cpu/pager.c through runtime/experts/pager.ts): random
 * ranges read through buffered and O_DIRECT fds match the file byte for byte, offsets past
 * 2 GiB, many tickets in flight waited out of order, poll, typed errors (short read after a
 * truncate, bad fd, misaligned O_DIRECT), the ticket table limit, destroy with reads in
 * flight, and exact byte statistics. Every test that reads runs once per backend
 * (`pager[threads]: ...`, `pager[uring]: ...`; the uring ones are skipped, with the reason,
 * where io_uring is unavailable); pager_backends_test.ts compares the two.
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { KernelError, native, Status } from "../../ffi/mod.ts";
import { closeFile, IOError, NativeBuffer, openFile } from "../../ffi/memory.ts";
import {
  alignedSpan,
  alignedSpanBytes,
  MAX_TICKETS,
  measureDiskBandwidth,
  Pager,
  type ReadRequest,
} from "./pager.ts";
import { backendTest } from "./_pager_backends.ts";

const FILE_BYTES = 6 * 1024 * 1024 + 1234; // not a multiple of 4096: exercises the tail

function randomBytes(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed >>> 0;
  for (let i = 0; i < len; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** Deterministic integers in [0, n). */
class Rng {
  #x: number;
  constructor(seed: number) {
    this.#x = seed >>> 0 || 1;
  }
  int(n: number): number {
    let x = this.#x;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#x = x >>> 0;
    return this.#x % n;
  }
}

const data = randomBytes(FILE_BYTES, 12345);

function withTempFile(bytes: Uint8Array, fn: (path: string) => void) {
  const path = Deno.makeTempFileSync({ prefix: "spool_pager_", suffix: ".bin" });
  try {
    Deno.writeFileSync(path, bytes);
    fn(path);
  } finally {
    Deno.removeSync(path);
  }
}

/** An O_DIRECT fd, or undefined (with a message) where the file system refuses it. */
function openDirect(path: string): number | undefined {
  try {
    return openFile(path, true);
  } catch (e) {
    if (e instanceof IOError && e.errno === 22) {
      console.log(`  O_DIRECT refused by the file system of ${path}: direct part skipped`);
      return undefined;
    }
    throw e;
  }
}

function expectIOError(fn: () => unknown, check: (e: IOError) => void) {
  try {
    fn();
  } catch (e) {
    assert(e instanceof IOError, `expected IOError, got ${e}`);
    check(e);
    return;
  }
  throw new Error("expected an IOError");
}

function expectStatus(fn: () => unknown, status: number) {
  try {
    fn();
  } catch (e) {
    assert(e instanceof KernelError, `expected KernelError, got ${e}`);
    assertEquals(e.status, status);
    return;
  }
  throw new Error(`expected status ${status}`);
}

Deno.test("pager: alignedSpan", () => {
  assertEquals(alignedSpan(0, 0), { start: 0, end: 0, skip: 0 });
  assertEquals(alignedSpan(5000, 100), { start: 4096, end: 8192, skip: 904 });
  assertEquals(alignedSpan(4096, 4096), { start: 4096, end: 8192, skip: 0 });
  assertEquals(alignedSpan(4095, 2), { start: 0, end: 8192, skip: 4095 });
  assertEquals(alignedSpan(2 ** 33 + 7, 10, 512), { start: 2 ** 33, end: 2 ** 33 + 512, skip: 7 });
  assertEquals(alignedSpanBytes(4095, 2), 8192);
});

backendTest("random ranges through a buffered fd match the file", (backend) => {
  withTempFile(data, (path) => {
    const fd = openFile(path);
    const pager = Pager.create(4, backend);
    const rng = new Rng(7);
    const n = 300;
    const ranges: { off: number; len: number; at: number }[] = [];
    let total = 0;
    for (let i = 0; i < n; i++) {
      const len = i === 0 ? FILE_BYTES : i % 50 === 0 ? 0 : 1 + rng.int(200_000); // whole file, empties
      const off = rng.int(FILE_BYTES - len + 1);
      ranges.push({ off, len, at: total });
      total += len;
    }
    const dst = new NativeBuffer(total);
    try {
      const reqs: ReadRequest[] = ranges.map((r) => ({
        fd,
        dst,
        dstOffset: r.at,
        len: r.len,
        offset: r.off,
      }));
      // one ticket for all, then the same ranges over 7 tickets
      const t = pager.submit(reqs);
      assert(t > 0);
      pager.wait(t, path);
      for (const r of ranges) {
        assertEquals(dst.u8.subarray(r.at, r.at + r.len), data.subarray(r.off, r.off + r.len));
      }
      dst.u8.fill(0);
      const tickets: number[] = [];
      for (let k = 0; k < 7; k++) tickets.push(pager.submit(reqs.filter((_, i) => i % 7 === k)));
      for (const tk of tickets.reverse()) pager.wait(tk, path);
      for (const r of ranges) {
        assertEquals(dst.u8.subarray(r.at, r.at + r.len), data.subarray(r.off, r.off + r.len));
      }
      assertEquals(pager.stats().bytes, 2 * total);
    } finally {
      pager.close();
      dst.free();
      closeFile(fd);
    }
  });
});

backendTest(
  "O_DIRECT aligned supersets match the file, including the unaligned tail",
  (backend) => {
    withTempFile(data, (path) => {
      const fd = openDirect(path);
      if (fd === undefined) return;
      const pager = Pager.create(8, backend);
      const rng = new Rng(99);
      const ranges: { off: number; len: number; at: number; pos: number }[] = [];
      let total = 0;
      for (let i = 0; i < 200; i++) {
        const len = i === 0 ? FILE_BYTES : i === 1 ? 10 : 1 + rng.int(300_000);
        const off = i === 0 ? 0 : i === 1 ? FILE_BYTES - 10 : rng.int(FILE_BYTES - len + 1);
        ranges.push({ off, len, at: total, pos: 0 });
        total += alignedSpanBytes(off, len);
      }
      const dst = new NativeBuffer(total, { align: 4096 });
      try {
        for (const r of ranges) r.pos = pager.addDirect(fd, dst, r.at, r.len, r.off);
        pager.wait(pager.flush(), path);
        for (const r of ranges) {
          assertEquals(dst.u8.subarray(r.pos, r.pos + r.len), data.subarray(r.off, r.off + r.len));
        }
        // misaligned request on the O_DIRECT fd: ALIGN, nothing queued
        expectStatus(() => pager.submit([{ fd, dst, len: 4096, offset: 100 }]), Status.ALIGN);
        expectStatus(() => pager.submit([{ fd, dst, len: 100, offset: 0 }]), Status.ALIGN);
        expectStatus(
          () => pager.submit([{ fd, dst, dstOffset: 8, len: 4096, offset: 0 }]),
          Status.ALIGN,
        );
        // the same misaligned request through a buffered fd is fine
        const bfd = openFile(path);
        try {
          pager.wait(pager.submit([{ fd: bfd, dst, dstOffset: 8, len: 100, offset: 100 }]));
          assertEquals(dst.u8.subarray(8, 108), data.subarray(100, 200));
        } finally {
          closeFile(bfd);
        }
        // an aligned superset whose required bytes pass end of file is a short read
        const tail = alignedSpan(FILE_BYTES - 10, 10);
        expectIOError(
          () =>
            pager.wait(
              pager.submit([{ fd, dst, len: 8192, offset: tail.start, need: 8192 }]),
              path,
            ),
          (e) => assertEquals(e.status, Status.SHORT_READ),
        );
      } finally {
        pager.close();
        dst.free();
        closeFile(fd);
      }
    });
  },
);

backendTest("offsets past 2 GiB in a 3 GiB sparse file, buffered and O_DIRECT", (backend) => {
  const path = Deno.makeTempFileSync({ prefix: "spool_pager_sparse_", suffix: ".bin" });
  const size = 3 * 2 ** 30;
  const marks = [2 ** 31 - 3000, 2 ** 31 + 12345, 2 ** 32 - 77, size - 5000];
  const markBytes = marks.map((_, i) => randomBytes(5000, 1000 + i));
  try {
    const f = Deno.openSync(path, { write: true });
    f.truncateSync(size);
    for (let i = 0; i < marks.length; i++) {
      f.seekSync(marks[i], Deno.SeekMode.Start);
      let w = 0;
      while (w < markBytes[i].length) w += f.writeSync(markBytes[i].subarray(w));
    }
    f.close();
    const pager = Pager.create(4, backend);
    const dst = new NativeBuffer(marks.length * 16384, { align: 4096 });
    try {
      const bfd = openFile(path);
      try {
        const reqs = marks.map((m, i) => ({
          fd: bfd,
          dst,
          dstOffset: i * 16384,
          len: 5000,
          offset: m,
        }));
        pager.wait(pager.submit(reqs), path);
      } finally {
        closeFile(bfd);
      }
      for (let i = 0; i < marks.length; i++) {
        assertEquals(dst.u8.subarray(i * 16384, i * 16384 + 5000), markBytes[i]);
      }
      const dfd = openDirect(path);
      if (dfd === undefined) return;
      try {
        dst.u8.fill(0);
        const pos = marks.map((m, i) => pager.addDirect(dfd, dst, i * 16384, 5000, m));
        pager.wait(pager.flush(), path);
        for (let i = 0; i < marks.length; i++) {
          assertEquals(dst.u8.subarray(pos[i], pos[i] + 5000), markBytes[i]);
        }
      } finally {
        closeFile(dfd);
      }
    } finally {
      pager.close();
      dst.free();
    }
  } finally {
    Deno.removeSync(path);
  }
});

backendTest("many tickets in flight, waited out of order, and polled", (backend) => {
  withTempFile(data, (path) => {
    const fd = openFile(path);
    const pager = Pager.create(3, backend);
    const rng = new Rng(5);
    const nT = 200, perT = 4, chunk = 64 * 1024;
    const dst = new NativeBuffer(nT * perT * chunk);
    try {
      const want: { t: number; offs: number[] }[] = [];
      for (let t = 0; t < nT; t++) {
        const offs: number[] = [];
        for (let j = 0; j < perT; j++) {
          const off = rng.int(FILE_BYTES - chunk);
          offs.push(off);
          pager.add(fd, dst, (t * perT + j) * chunk, chunk, off);
        }
        want.push({ t: pager.flush(), offs });
      }
      assertEquals(new Set(want.map((w) => w.t)).size, nT, "tickets are distinct");
      // poll a third until done, wait the rest in a shuffled order
      const order = want.map((_, i) => i).sort((a, b) => ((a * 7919) % nT) - ((b * 7919) % nT));
      for (const i of order) {
        if (i % 3 === 0) {
          let spins = 0;
          while (!pager.poll(want[i].t, path)) spins++;
          assert(spins >= 0);
          assertEquals(pager.poll(want[i].t, path), true, "a finished ticket stays done");
        } else {
          pager.wait(want[i].t, path);
          pager.wait(want[i].t, path); // waiting again returns the stored outcome
        }
      }
      for (let t = 0; t < nT; t++) {
        for (let j = 0; j < perT; j++) {
          const at = (t * perT + j) * chunk, off = want[t].offs[j];
          assertEquals(dst.u8.subarray(at, at + chunk), data.subarray(off, off + chunk));
        }
      }
      const s = pager.stats();
      assertEquals(s.bytes, nT * perT * chunk);
      assertEquals(s.reads, nT * perT);
      assertEquals(s.queued, 0);
      assertEquals(s.inFlight, 0);
    } finally {
      pager.close();
      dst.free();
      closeFile(fd);
    }
  });
});

backendTest("a file truncated after opening gives SHORT_READ naming path and range", (backend) => {
  withTempFile(data, (path) => {
    const fd = openFile(path);
    const pager = Pager.create(2, backend);
    const dst = new NativeBuffer(1 << 20);
    try {
      Deno.truncateSync(path, 1_000_000);
      // the first request is fine, the second crosses the new end of file
      const t = pager.submit([
        { fd, dst, len: 1000, offset: 0 },
        { fd, dst, dstOffset: 4096, len: 500_000, offset: 900_000 },
      ]);
      expectIOError(() => pager.wait(t, path), (e) => {
        assertEquals(e.status, Status.SHORT_READ);
        assertEquals(e.path, path);
        assertEquals(e.offset, 900_000);
        assertEquals(e.length, 500_000);
        assert(e.message.includes(path) && e.message.includes("offset 900000"), e.message);
        assert(e.message.includes("short read"), e.message);
      });
      // the error stays readable: waiting again throws the same
      expectIOError(() => pager.wait(t, (fd) => `file of fd ${fd}`), (e) => {
        assertEquals(e.path, `file of fd ${fd}`);
      });
      // entirely past the end, through poll
      const t2 = pager.submit([{ fd, dst, len: 10, offset: 2_000_000 }]);
      expectIOError(() => {
        while (!pager.poll(t2, path));
      }, (e) => assertEquals(e.status, Status.SHORT_READ));
      assertEquals(pager.stats().bytes, 1000);
    } finally {
      pager.close();
      dst.free();
      closeFile(fd);
    }
  });
});

backendTest("a bad fd is an I/O error with errno EBADF", (backend) => {
  const pager = Pager.create(2, backend);
  const dst = new NativeBuffer(8192);
  try {
    const t = pager.submit([{ fd: 1_000_000, dst, len: 4096, offset: 0 }]);
    expectIOError(() => pager.wait(t, "nowhere.gguf"), (e) => {
      assertEquals(e.status, Status.IO);
      assertEquals(e.errno, 9);
      assert(e.message.includes("nowhere.gguf") && e.message.includes("EBADF"), e.message);
    });
  } finally {
    pager.close();
    dst.free();
  }
});

backendTest("invalid requests, unknown tickets and the ticket table limit", (backend) => {
  const pager = Pager.create(1, backend);
  const dst = new NativeBuffer(4096);
  try {
    throws(() => pager.add(0, dst, 100, 4000, 0), RangeError); // does not fit
    throws(() => pager.add(0, dst, 0, 10, 0, 11), RangeError); // need > len
    pager.discard();
    expectStatus(() => pager.submit([{ fd: -1, dst, len: 1, offset: 0 }]), Status.INVALID);
    expectStatus(() => pager.submit([{ fd: 0, dst, len: 1, offset: 0.5 }]), Status.INVALID);
    expectStatus(() => pager.wait(123456), Status.INVALID);
    expectStatus(() => pager.poll(-3), Status.INVALID);
    expectStatus(() => pager.wait(5), Status.INVALID); // generation 0: never handed out
    // zero-length tickets finish at once; MAX_TICKETS live ones fill the table
    const tickets: number[] = [];
    for (let i = 0; i < MAX_TICKETS; i++) tickets.push(pager.submit([]));
    expectStatus(() => pager.submit([]), Status.RANGE);
    pager.wait(tickets[500]);
    const again = pager.submit([]); // reuses the freed slot with a new ticket id
    assert(!tickets.includes(again));
    expectStatus(() => pager.wait(tickets[500]), Status.INVALID); // slot reused: unknown now
    for (const t of tickets) if (t !== tickets[500]) pager.wait(t);
    pager.wait(again);
    // staging grows past its first capacity (256 requests)
    for (let i = 0; i < 1000; i++) pager.add(0, dst, 0, 0, 0);
    pager.wait(pager.flush());
  } finally {
    pager.close();
    dst.free();
  }
  throws(() => pager.submit([]), /after close/);
  pager.close(); // idempotent
});

backendTest("close with reads in flight drops the queue and joins the workers", (backend) => {
  withTempFile(data, (path) => {
    const fd = openFile(path);
    for (let round = 0; round < 5; round++) {
      const pager = Pager.create(4, backend);
      const dst = new NativeBuffer(16 * FILE_BYTES);
      for (let i = 0; i < 16; i++) {
        pager.submit([{ fd, dst, dstOffset: i * FILE_BYTES, len: FILE_BYTES, offset: 0 }]);
      }
      pager.close(); // must not crash, and nothing writes to dst afterwards
      dst.free();
    }
    closeFile(fd);
  });
});

backendTest("stats count bytes and reads exactly, busy and wall time are plausible", (backend) => {
  withTempFile(data, (path) => {
    const fd = openFile(path);
    const pager = Pager.create(4, backend);
    const dst = new NativeBuffer(FILE_BYTES);
    try {
      assertEquals(pager.stats(), {
        bytes: 0,
        reads: 0,
        busyNs: 0,
        wallNs: 0,
        queued: 0,
        inFlight: 0,
        fixedReads: 0,
      });
      const t0 = performance.now();
      // 10 requests of 100 000 bytes: each under the minimum piece, so one read each
      const reqs = Array.from({ length: 10 }, (_, i) => ({
        fd,
        dst,
        dstOffset: i * 100_000,
        len: 100_000,
        offset: i * 123_457,
      }));
      pager.wait(pager.submit(reqs));
      // one request of the whole file over 4 threads: pieces of ceil(FILE_BYTES/4) rounded to 4096
      pager.wait(pager.submit([{ fd, dst, len: FILE_BYTES, offset: 0 }]));
      const ms = performance.now() - t0;
      assertEquals(dst.u8, data);
      const s = pager.stats();
      assertEquals(s.bytes, 1_000_000 + FILE_BYTES);
      const piece = Math.ceil(Math.ceil(FILE_BYTES / 4) / 4096) * 4096;
      assertEquals(s.reads, 10 + Math.ceil(FILE_BYTES / piece));
      assert(s.busyNs > 0 && s.wallNs > 0, JSON.stringify(s));
      assert(s.wallNs <= ms * 1e6 + 1e6, `wall ${s.wallNs} ns > elapsed ${ms} ms`);
      assert(s.busyNs >= s.wallNs * 0.99, "busy time sums over workers: >= wall time");
    } finally {
      pager.close();
      dst.free();
      closeFile(fd);
    }
  });
});

backendTest("measureDiskBandwidth runs on a small file", (backend) => {
  withTempFile(data, (path) => {
    const r = measureDiskBandwidth(path, {
      depths: [1, 4],
      seconds: 0.05,
      requestBytes: 256 * 1024,
      backend,
    });
    assertEquals(r.rows.map((x) => x.depth), [1, 4]);
    assertEquals(r.backend, backend);
    assertEquals(r.size, FILE_BYTES);
    for (const row of r.rows) {
      assert(row.bytes > 0 && row.gbps > 0 && row.bytes % (256 * 1024) === 0, JSON.stringify(row));
      assert(row.cpuSecPerGB >= 0 && Number.isFinite(row.cpuSecPerGB), JSON.stringify(row));
    }
  });
});

Deno.test("pager: the native library is the one in use", () => {
  assert(typeof native().sym.spool_pager_create === "function");
});
