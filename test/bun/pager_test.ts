/**
 * Bun leg of runtime/experts/pager_test.ts: the native expert pager through bun:ffi
 * (pointers are numbers there): random ranges through buffered and O_DIRECT fds, tickets
 * waited out of order and polled, a short read after a truncate, a bad fd, misaligned
 * O_DIRECT, exact byte statistics and close with reads in flight; each once per backend
 * (threads, and io_uring where it can be set up).
 *
 *   ./node_modules/.bin/bun test test/bun/pager_test.ts
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KernelError, Status } from "../../ffi/mod.ts";
import { closeFile, IOError, NativeBuffer, openFile } from "../../ffi/memory.ts";
import { alignedSpanBytes, Pager } from "../../runtime/experts/pager.ts";

const FILE_BYTES = 3 * 1024 * 1024 + 777;

function randomBytes(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed >>> 0;
  for (let i = 0; i < len; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const data = randomBytes(FILE_BYTES, 4242);

/** Why io_uring is unavailable here, or undefined. */
const uringWhy = (() => {
  try {
    Pager.create(1, "uring").close();
    return undefined;
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    return `io_uring unavailable here (errno ${e.errno})`;
  }
})();
if (uringWhy) console.log(`pager tests: ${uringWhy}: the uring legs are skipped`);

/** Register `fn` once per backend; the uring leg is skipped where io_uring is unavailable. */
function backendTest(name: string, fn: (backend: "threads" | "uring") => void) {
  test(`pager[threads]: ${name}`, () => fn("threads"));
  test.skipIf(uringWhy !== undefined)(`pager[uring]: ${name}`, () => {
    fn("uring");
  });
}

function withTempFile(fn: (path: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), "spool_pager_bun_"));
  const path = join(dir, "data.bin");
  try {
    writeFileSync(path, data);
    fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}

backendTest("random ranges, buffered and O_DIRECT, tickets out of order and polled", (backend) => {
  withTempFile((path) => {
    const pager = Pager.create(4, backend);
    let x = 17;
    const rnd = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x % n;
    };
    const ranges = Array.from({ length: 120 }, () => {
      const len = 1 + rnd(100_000);
      return { off: rnd(FILE_BYTES - len + 1), len, at: 0, pos: 0 };
    });
    ranges.push({ off: FILE_BYTES - 5, len: 5, at: 0, pos: 0 }); // the unaligned tail
    let total = 0;
    for (const r of ranges) {
      r.at = total;
      total += alignedSpanBytes(r.off, r.len);
    }
    const dst = new NativeBuffer(total, { align: 4096 });
    const fd = openFile(path);
    try {
      const tickets: number[] = [];
      for (let k = 0; k < 6; k++) {
        for (let i = k; i < ranges.length; i += 6) {
          pager.add(fd, dst, ranges[i].at, ranges[i].len, ranges[i].off);
        }
        tickets.push(pager.flush());
      }
      for (const t of tickets.reverse()) {
        if (t % 2) pager.wait(t, path);
        else while (!pager.poll(t, path));
      }
      for (const r of ranges) {
        expect(dst.u8.subarray(r.at, r.at + r.len)).toEqual(data.subarray(r.off, r.off + r.len));
      }
      let direct: number | undefined;
      try {
        direct = openFile(path, true);
      } catch (e) {
        if (!(e instanceof IOError && e.errno === 22)) throw e;
        console.log("O_DIRECT refused by the file system: direct part skipped");
      }
      if (direct !== undefined) {
        try {
          dst.u8.fill(0);
          for (const r of ranges) r.pos = pager.addDirect(direct, dst, r.at, r.len, r.off);
          pager.wait(pager.flush(), path);
          for (const r of ranges) {
            expect(dst.u8.subarray(r.pos, r.pos + r.len)).toEqual(
              data.subarray(r.off, r.off + r.len),
            );
          }
          const e = catchError(() => pager.submit([{ fd: direct!, dst, len: 4096, offset: 10 }]));
          expect(e).toBeInstanceOf(KernelError);
          expect((e as KernelError).status).toBe(Status.ALIGN);
        } finally {
          closeFile(direct);
        }
      }
    } finally {
      pager.close();
      dst.free();
      closeFile(fd);
    }
  });
});

backendTest("truncated file, bad fd, exact stats, close with reads in flight", (backend) => {
  withTempFile((path) => {
    const fd = openFile(path);
    const pager = Pager.create(3, backend);
    const dst = new NativeBuffer(FILE_BYTES);
    try {
      pager.wait(pager.submit([{ fd, dst, len: FILE_BYTES, offset: 0 }]), path);
      expect(dst.u8).toEqual(data);
      pager.wait(pager.submit([{ fd, dst, len: 1000, offset: 5 }]), path);
      expect(pager.stats().bytes).toBe(FILE_BYTES + 1000);

      truncateSync(path, 500_000);
      const t = pager.submit([{ fd, dst, len: 200_000, offset: 400_000 }]);
      const e = catchError(() => pager.wait(t, path)) as IOError;
      expect(e).toBeInstanceOf(IOError);
      expect(e.status).toBe(Status.SHORT_READ);
      expect(e.offset).toBe(400_000);
      expect(e.length).toBe(200_000);
      expect(e.message).toContain(path);
      expect(e.message).toContain("offset 400000");

      const bad = catchError(() =>
        pager.wait(pager.submit([{ fd: 999_999, dst, len: 10, offset: 0 }]), "x.gguf")
      ) as IOError;
      expect(bad.status).toBe(Status.IO);
      expect(bad.errno).toBe(9);
      expect(pager.stats().bytes).toBe(FILE_BYTES + 1000);
    } finally {
      pager.close();
      dst.free();
      closeFile(fd);
    }
    // close while reads are queued and in flight
    writeFileSync(path, data);
    const fd2 = openFile(path);
    const p2 = Pager.create(4, backend);
    const big = new NativeBuffer(16 * FILE_BYTES);
    for (let i = 0; i < 16; i++) {
      p2.submit([{ fd: fd2, dst: big, dstOffset: i * FILE_BYTES, len: FILE_BYTES, offset: 0 }]);
    }
    p2.close();
    big.free();
    closeFile(fd2);
  });
});
