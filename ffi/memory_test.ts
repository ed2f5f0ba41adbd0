/**
 * Native memory and file access: aligned buffers, mmap windows, pread, O_DIRECT reads
 * (with the buffered fall back), typed errors, and offsets past 2 GiB on a sparse file.
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { KernelError, native, Status } from "./mod.ts";
import {
  Advice,
  closeFile,
  DirectReader,
  fileSize,
  IOError,
  MappedFile,
  NativeBuffer,
  openFile,
  readAt,
} from "./memory.ts";

const n = native();
const S = n.sym;

function randomBytes(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed >>> 0;
  for (let i = 0; i < len; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** A temp file with `data`, removed after `fn`. */
function withFile(data: Uint8Array, fn: (path: string) => void, dir?: string) {
  const path = Deno.makeTempFileSync({ dir, prefix: "spool_mem_", suffix: ".bin" });
  try {
    Deno.writeFileSync(path, data);
    fn(path);
  } finally {
    Deno.removeSync(path);
  }
}

function expectIOError(fn: () => unknown, check: (e: IOError) => void) {
  try {
    fn();
  } catch (e) {
    assert(e instanceof IOError, `expected IOError, got ${e}`);
    assert(e instanceof KernelError);
    check(e);
    return;
  }
  throw new Error("expected an IOError");
}

Deno.test("NativeBuffer: aligned, zero-filled, cached views over one memory, free idempotent", () => {
  for (const align of [8, 64, 4096]) {
    const b = new NativeBuffer(10_000, { align });
    assertEquals(n.address(b.ptr) % align, 0);
    assert(b.u8.every((v) => v === 0));
    assertEquals(b.u8, b.u8); // cached
    assert(b.f32 === b.f32 && b.u16 === b.u16 && b.i32 === b.i32);
    assertEquals(b.f32.length, 2500);
    b.f32[3] = 1.5;
    assertEquals(Array.from(b.u8.subarray(12, 16)), [0, 0, 0xc0, 0x3f]);
    b.u16[0] = 0xbeef;
    assertEquals(b.i32[0] & 0xffff, 0xbeef);
    // a native copy lands in the same memory the views see
    const c = new NativeBuffer(16);
    S.spool_memcpy(c.ptr, b.ptrAt(12), 4);
    assertEquals(c.f32[0], 1.5);
    c.free();
    b.free();
    b.free();
    assert(b.freed);
    throws(() => b.ptr, /after free/);
    throws(() => b.u8, /after free/);
  }
  const z = new NativeBuffer(0);
  assertEquals(z.u8.length, 0);
  z.free();
  const f = NativeBuffer.from(new Float32Array([1, 2, 3]));
  assertEquals(Array.from(f.f32), [1, 2, 3]);
  f.free();
  throws(() => new NativeBuffer(16, { align: 3 }), RangeError);
  throws(() => new NativeBuffer(-1), RangeError);
  assert(S.spool_alloc(16, 3) === null || n.address(S.spool_alloc(16, 3)) === 0);
});

Deno.test("MappedFile: windows equal the file's bytes; advise; close once", () => {
  const data = randomBytes(300_000, 1);
  withFile(data, (path) => {
    const m = MappedFile.open(path);
    assertEquals(m.size, data.length);
    for (const [off, len] of [[0, 16], [1, 4095], [4097, 10_000], [299_990, 10], [0, 300_000]]) {
      assertEquals(m.bytes(off, len), data.subarray(off, off + len));
    }
    // pointer arithmetic into the mapping, copied natively
    const b = new NativeBuffer(64);
    S.spool_memcpy(b.ptr, m.ptrAt(123_457), 64);
    assertEquals(b.u8, data.subarray(123_457, 123_457 + 64));
    b.free();
    for (const a of Object.values(Advice)) m.advise(5000, 70_000, a);
    throws(() => m.bytes(299_999, 2), RangeError);
    throws(() => m.ptrAt(300_001), RangeError);
    // explicit reads next to the mapping
    const dst = new Uint8Array(33);
    assertEquals(m.readInto(dst, 77_777, 33), 33);
    assertEquals(dst, data.subarray(77_777, 77_810));
    m.close();
    m.close();
    throws(() => m.bytes(0, 1), /after close/);
  });
  withFile(new Uint8Array(0), (path) => {
    const m = MappedFile.open(path);
    assertEquals(m.size, 0);
    assertEquals(m.bytes(0, 0).length, 0);
    m.close();
  });
});

Deno.test("readAt: unaligned offsets into NativeBuffer and Uint8Array; short read is typed", () => {
  const data = randomBytes(50_001, 2);
  withFile(data, (path) => {
    const fd = openFile(path);
    try {
      assertEquals(fileSize(fd, path), 50_001);
      const nb = new NativeBuffer(20_000);
      for (const [off, len] of [[0, 1], [3, 4096], [4095, 8193], [49_000, 1001]]) {
        assertEquals(readAt(fd, nb, len, off, path), len);
        assertEquals(nb.u8.subarray(0, len), data.subarray(off, off + len));
        const u = new Uint8Array(len + 7);
        readAt(fd, u, len, off, path, 7);
        assertEquals(u.subarray(7), data.subarray(off, off + len));
      }
      expectIOError(() => readAt(fd, nb, 4096, 49_000, path), (e) => {
        assertEquals(e.status, Status.SHORT_READ);
        assertEquals(e.offset, 49_000);
        assertEquals(e.message, `Cannot read 4096 bytes at offset 49000 of ${path}: short read`);
      });
      expectIOError(() => readAt(fd, nb, 10, 60_000, path), (e) => {
        assertEquals(e.status, Status.SHORT_READ);
      });
      throws(() => readAt(fd, nb, 20_001, 0, path), RangeError); // does not fit dst
      assertEquals(S.spool_pread(fd, nb.ptr, 1.5, 0), Status.INVALID);
      assertEquals(S.spool_pread(fd, nb.ptr, 4, -1), Status.INVALID);
      nb.free();
    } finally {
      closeFile(fd, path);
    }
    expectIOError(() => readAt(fd, new Uint8Array(4), 4, 0, path), (e) => {
      assertEquals(e.status, Status.IO);
      assertEquals(e.errno, 9); // EBADF: closed
    });
  });
  expectIOError(() => openFile("/nonexistent/spool/model.gguf"), (e) => {
    assertEquals(e.errno, 2);
    assertEquals(
      e.message,
      "Cannot open /nonexistent/spool/model.gguf: I/O error (errno 2 ENOENT)",
    );
  });
});

Deno.test("DirectReader: O_DIRECT aligned superset reads at unaligned offsets, EOF block", () => {
  const data = randomBytes(3 * 4096 + 1234, 3); // ends inside a block
  withFile(data, (path) => {
    const r = DirectReader.open(path);
    try {
      // /tmp here is ext4, which supports O_DIRECT; elsewhere the fall back is fine too
      if (!r.direct) console.warn(`O_DIRECT unsupported for ${path}; testing buffered reads`);
      const buf = DirectReader.alloc(3 * 4096 + 1234);
      for (
        const [off, len] of [[0, 1], [1, 4095], [4095, 2], [5000, 8000], [12_000, 1522], [
          0,
          data.length,
        ], [data.length - 1, 1]]
      ) {
        assert(r.span(off, len) <= buf.byteLength);
        const at = r.read(buf, off, len);
        if (r.direct) assertEquals(at, off % 4096);
        assertEquals(buf.u8.subarray(at, at + len), data.subarray(off, off + len));
        assertEquals(r.readBytes(off, len), data.subarray(off, off + len));
      }
      expectIOError(() => r.read(buf, data.length - 10, 11), (e) => {
        assertEquals(e.status, Status.SHORT_READ);
        assertEquals(
          e.message,
          `Cannot read 11 bytes at offset ${data.length - 10} of ${path}: short read`,
        );
      });
      if (r.direct) {
        assertEquals(S.spool_direct_span(4095, 2), 8192);
        assertEquals(S.spool_direct_span(4096, 4096), 4096);
        assertEquals(S.spool_direct_span(0, 0), 0);
        // a target that is not 4096-aligned is refused
        const fd = openFile(path, true);
        assertEquals(S.spool_pread_direct(fd, buf.ptrAt(8), 10, 0), Status.ALIGN);
        closeFile(fd);
      }
      buf.free();
    } finally {
      r.close();
      r.close();
    }
  });
});

Deno.test("DirectReader: falls back to buffered reads where O_DIRECT is refused", () => {
  const data = randomBytes(10_000, 4);
  const dirs = ["/dev/shm", undefined].filter((d) => {
    try {
      return d === undefined || Deno.statSync(d).isDirectory;
    } catch {
      return false;
    }
  });
  for (const dir of dirs) {
    withFile(data, (path) => {
      let directOpen = true;
      try {
        closeFile(openFile(path, true));
      } catch (e) {
        assert(e instanceof IOError && e.errno === 22, `O_DIRECT open failed with ${e}`);
        directOpen = false;
      }
      const r = DirectReader.open(path);
      if (!directOpen) assertEquals(r.direct, false); // the fall back
      assertEquals(r.readBytes(4097, 3000), data.subarray(4097, 7097));
      r.close();
      // a file system that refuses O_DIRECT (EINVAL at open), simulated
      const refuse = (p: string, direct: boolean) => {
        if (direct) throw new IOError("open", p, Status.IO, 22);
        return openFile(p, false);
      };
      const fb = DirectReader.open(path, { openFn: refuse });
      assertEquals(fb.direct, false);
      assertEquals(fb.readBytes(1, 9998), data.subarray(1, 9999));
      fb.close();
      // any other open failure is not swallowed
      throws(
        () => DirectReader.open(path, { openFn: () => openFile(path + ".missing") }),
        IOError,
      );
      const b = DirectReader.open(path, { direct: false });
      assertEquals(b.direct, false);
      assertEquals(b.span(4097, 3000), 3000);
      const nb = new NativeBuffer(3000);
      assertEquals(b.read(nb, 4097, 3000), 0);
      assertEquals(nb.u8, data.subarray(4097, 7097));
      nb.free();
      b.close();
    }, dir);
  }
});

Deno.test("offsets past 2 GiB: sparse 3 GiB file, marker at 2.5 GiB via mmap, pread, O_DIRECT", () => {
  const path = Deno.makeTempFileSync({ prefix: "spool_sparse_", suffix: ".bin" });
  const size = 3 * 2 ** 30;
  const at = 2.5 * 2 ** 30 + 123; // unaligned, past 2^31
  const marker = new TextEncoder().encode("spool-marker-2.5GiB");
  try {
    const f = Deno.openSync(path, { write: true });
    f.truncateSync(size);
    f.seekSync(at, Deno.SeekMode.Start);
    f.writeSync(marker);
    f.close();
    const m = MappedFile.open(path);
    try {
      assertEquals(m.size, size);
      assertEquals(m.bytes(at, marker.length), marker);
      assertEquals(m.bytes(at - 5, 5), new Uint8Array(5)); // hole reads as zeros
      m.advise(at, marker.length, Advice.WILLNEED);
      const nb = new NativeBuffer(64);
      S.spool_memcpy(nb.ptr, m.ptrAt(at), marker.length);
      assertEquals(nb.u8.subarray(0, marker.length), marker);
      assertEquals(m.readInto(nb, at, marker.length), marker.length);
      assertEquals(nb.u8.subarray(0, marker.length), marker);
      nb.free();
      expectIOError(() => m.readInto(new Uint8Array(8), size - 4, 8), (e) => {
        assertEquals(e.message, `Cannot read 8 bytes at offset ${size - 4} of ${path}: short read`);
      });
    } finally {
      m.close();
    }
    const r = DirectReader.open(path);
    try {
      assertEquals(r.readBytes(at, marker.length), marker);
      assertEquals(r.readBytes(size - 3, 3), new Uint8Array(3));
    } finally {
      r.close();
    }
  } finally {
    Deno.removeSync(path);
  }
});
