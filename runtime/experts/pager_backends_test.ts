/**
 * The pager's two backends against each other (runtime/experts/pager.ts): the threads
 * backend (pread workers) is the reference for the io_uring one. The same random ranges,
 * buffered and through O_DIRECT, leave identical buffers that match the file; end of file
 * after `need` is quiet; a directory and a closed fd fail with their errno; the backend is
 * chosen by argument and by SPOOL_PAGER; registered buffers are read into without pinning
 * (io_uring) and stay correct when unregistered with reads in flight. The io_uring legs
 * are skipped, with the reason, where io_uring is unavailable (the threads leg still runs).
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { KernelError, Status } from "../../ffi/mod.ts";
import { closeFile, IOError, NativeBuffer, openFile } from "../../ffi/memory.ts";
import { alignedSpanBytes, Pager } from "./pager.ts";
import { backendTest, uringUnavailable } from "./_pager_backends.ts";

const FILE_BYTES = 5 * 1024 * 1024 + 777;

function fileBytes(): Uint8Array {
  const b = new Uint8Array(FILE_BYTES);
  let x = 424242;
  for (let i = 0; i < b.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 23;
  }
  return b;
}
const data = fileBytes();

function withTempFile(fn: (path: string) => void) {
  const path = Deno.makeTempFileSync({ prefix: "spool_pager_backends_", suffix: ".bin" });
  try {
    Deno.writeFileSync(path, data);
    fn(path);
  } finally {
    Deno.removeSync(path);
  }
}

/** Random ranges (some empty, one the whole file) and where each lands in a buffer. */
function ranges(seed: number, n: number, direct: boolean) {
  let x = seed;
  const rnd = (m: number) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % m;
  };
  const out: { off: number; len: number; at: number }[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const len = i === 0 ? FILE_BYTES : i % 25 === 0 ? 0 : 1 + rnd(400_000);
    const off = i === 1 ? FILE_BYTES - len : rnd(FILE_BYTES - len + 1);
    out.push({ off, len, at: total });
    total += direct ? alignedSpanBytes(off, len) : len;
  }
  return { list: out, total };
}

/** Read the ranges with one backend into a fresh poisoned buffer; returns its bytes. */
function readWith(
  backend: "threads" | "uring",
  path: string,
  direct: boolean,
  depth: number,
): Uint8Array {
  const fd = openFile(path, direct);
  const { list, total } = ranges(77, 100, direct);
  const pager = Pager.create(depth, backend);
  const dst = new NativeBuffer(total, { align: 4096 });
  try {
    assertEquals(pager.backend, backend);
    dst.u8.fill(0xa5);
    // three tickets, waited in reverse
    const tickets: number[] = [];
    for (let k = 0; k < 3; k++) {
      for (let i = k; i < list.length; i += 3) {
        const r = list[i];
        const pos = direct
          ? pager.addDirect(fd, dst, r.at, r.len, r.off)
          : (pager.add(fd, dst, r.at, r.len, r.off), r.at);
        r.at = pos;
      }
      tickets.push(pager.flush());
    }
    for (const t of tickets.reverse()) pager.wait(t, path);
    for (const r of list) {
      assertEquals(dst.u8.subarray(r.at, r.at + r.len), data.subarray(r.off, r.off + r.len));
    }
    return dst.u8.slice();
  } finally {
    pager.close();
    dst.free();
    closeFile(fd);
  }
}

/** O_DIRECT where the file system allows it. */
function directWorks(path: string): boolean {
  try {
    closeFile(openFile(path, true));
    return true;
  } catch (e) {
    if (e instanceof IOError && e.errno === 22) return false;
    throw e;
  }
}

Deno.test({
  name: "pager backends: uring and threads leave identical buffers (buffered and O_DIRECT)",
  ignore: uringUnavailable() !== undefined,
  fn() {
    withTempFile((path) => {
      for (const depth of [1, 8]) {
        const a = readWith("threads", path, false, depth);
        const b = readWith("uring", path, false, depth);
        assert(a.length === b.length && a.every((v, i) => v === b[i]), `buffered, depth ${depth}`);
      }
      if (!directWorks(path)) {
        console.log("  O_DIRECT refused by this file system: direct leg skipped");
        return;
      }
      for (const depth of [4]) {
        const a = readWith("threads", path, true, depth);
        const b = readWith("uring", path, true, depth);
        assert(a.length === b.length && a.every((v, i) => v === b[i]), `O_DIRECT, depth ${depth}`);
      }
    });
  },
});

backendTest("end of file after `need` is quiet, before it a short read at end of file", (b) => {
  withTempFile((path) => {
    const fd = openFile(path);
    const pager = Pager.create(4, b);
    const dst = new NativeBuffer(1 << 20);
    try {
      const off = FILE_BYTES - 3000;
      pager.wait(pager.submit([{ fd, dst, len: 1 << 20, offset: off, need: 3000 }]), path);
      assertEquals(dst.u8.subarray(0, 3000), data.subarray(off));
      assertEquals(pager.stats().bytes, 3000);
      const t = pager.submit([{ fd, dst, len: 1 << 20, offset: off, need: 3001 }]);
      try {
        pager.wait(t, path);
        throw new Error("expected a short read");
      } catch (e) {
        assert(e instanceof IOError, String(e));
        assertEquals(e.status, Status.SHORT_READ);
        assertEquals([e.offset, e.length], [off, 1 << 20]);
      }
    } finally {
      pager.close();
      dst.free();
      closeFile(fd);
    }
  });
});

backendTest("a directory fd fails with EISDIR, a closed fd with EBADF", (b) => {
  const dir = Deno.makeTempDirSync({ prefix: "spool_pager_dir_" });
  const pager = Pager.create(2, b);
  const dst = new NativeBuffer(8192);
  try {
    const dfd = openFile(dir);
    const t = pager.submit([{ fd: dfd, dst, len: 8192, offset: 4096 }]);
    try {
      pager.wait(t, dir);
      throw new Error("expected EISDIR");
    } catch (e) {
      assert(e instanceof IOError, String(e));
      assertEquals([e.status, e.errno, e.offset, e.length], [Status.IO, 21, 4096, 8192]);
    } finally {
      closeFile(dfd);
    }
    const t2 = pager.submit([{ fd: dfd, dst, len: 100, offset: 0 }]); // closed above
    throws(() => pager.wait(t2, "closed"), (e) => e instanceof IOError && e.errno === 9);
  } finally {
    pager.close();
    dst.free();
    Deno.removeSync(dir);
  }
});

Deno.test("pager backends: chosen by argument, by SPOOL_PAGER, and auto falls back", () => {
  const why = uringUnavailable();
  const before = Deno.env.get("SPOOL_PAGER");
  const withEnv = (value: string | undefined, fn: () => void) => {
    if (value === undefined) Deno.env.delete("SPOOL_PAGER");
    else Deno.env.set("SPOOL_PAGER", value);
    try {
      fn();
    } finally {
      if (before === undefined) Deno.env.delete("SPOOL_PAGER");
      else Deno.env.set("SPOOL_PAGER", before);
    }
  };
  const threads = Pager.create(2, "threads");
  assertEquals([threads.backend, threads.threads], ["threads", 2]);
  threads.close();
  if (why === undefined) {
    const u = Pager.create(3, "uring");
    assertEquals([u.backend, u.threads], ["uring", 3]);
    u.close();
  } else {
    throws(
      () => Pager.create(3, "uring"),
      (e) => e instanceof KernelError && e.errno > 0 && /io_uring/.test(e.message),
    );
  }
  withEnv(undefined, () => {
    const auto = Pager.create(2);
    assertEquals(auto.backend, why === undefined ? "uring" : "threads");
    auto.close();
  });
  withEnv("threads", () => {
    const p = Pager.create(2);
    assertEquals(p.backend, "threads");
    p.close();
  });
  // deno-lint-ignore no-explicit-any
  throws(() => Pager.create(2, "aio" as any), RangeError);
});

backendTest("registered buffers: same bytes, counted, and unregistering mid-read is safe", (b) => {
  withTempFile((path) => {
    const direct = directWorks(path);
    const fd = openFile(path, direct);
    const pager = Pager.create(4, b);
    const span = alignedSpanBytes(0, FILE_BYTES);
    const dst = new NativeBuffer(4 * span, { align: 4096 });
    try {
      const fixed = pager.register(dst);
      assertEquals(pager.register(dst), fixed, "registering twice is the same");
      const empty = new NativeBuffer(0);
      assertEquals(pager.register(empty), false, "nothing to register");
      empty.free();
      // the threads backend has nothing to gain; io_uring registers (kernel 5.19+)
      if (b === "threads") assertEquals(fixed, false);
      if (b === "uring" && !fixed) console.log("  io_uring refused the registration here");
      const readAll = (k: number) => {
        const pos = pager.addDirect(fd, dst, k * span, FILE_BYTES, 0);
        return { t: pager.flush(), pos };
      };
      const r0 = readAll(0);
      pager.wait(r0.t, path);
      assertEquals(dst.u8.subarray(r0.pos, r0.pos + FILE_BYTES), data);
      const s0 = pager.stats();
      assertEquals(s0.fixedReads > 0, fixed, JSON.stringify(s0));
      if (fixed) assertEquals(s0.fixedReads, s0.reads);
      // unregister with reads in flight: they finish (retried without the buffer if needed)
      const inFlight = [1, 2, 3].map(readAll);
      pager.unregister(dst);
      for (const r of inFlight) pager.wait(r.t, path);
      for (const r of inFlight) assertEquals(dst.u8.subarray(r.pos, r.pos + FILE_BYTES), data);
      // afterwards reads are plain ones
      const before = pager.stats().fixedReads;
      dst.u8.fill(0);
      const r1 = readAll(0);
      pager.wait(r1.t, path);
      assertEquals(dst.u8.subarray(r1.pos, r1.pos + FILE_BYTES), data);
      assertEquals(pager.stats().fixedReads, before);
      pager.unregister(dst); // not registered any more: a no-op
    } finally {
      pager.close();
      dst.free();
      closeFile(fd);
    }
  });
});
