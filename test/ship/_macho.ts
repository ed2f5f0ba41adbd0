/**
 * A minimal Mach-O reader for the tests: enough of a 64-bit little-endian image to check a
 * cross-compiled macOS library without a Mac. Layout from Apple's `<mach-o/loader.h>`,
 * `<mach-o/nlist.h>` and dyld's export-trie format (public headers of the cctools/dyld
 * sources): a header, then load commands; exports are the dyld export trie (what `dlsym`
 * looks names up in), imports and locals the LC_SYMTAB nlist table.
 *
 * @module
 */

/** Load command ids used here. */
export const LC = {
  SEGMENT_64: 0x19,
  SYMTAB: 0x2,
  LOAD_DYLIB: 0xc,
  ID_DYLIB: 0xd,
  CODE_SIGNATURE: 0x1d,
  DYLD_INFO_ONLY: 0x80000022,
  BUILD_VERSION: 0x32,
  DYLD_EXPORTS_TRIE: 0x80000033,
} as const;

/** Raised for bytes that are not the Mach-O this reader expects. */
export class MachOError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MachOError";
  }
}

/** One segment (LC_SEGMENT_64). */
export interface Segment {
  name: string;
  vmaddr: bigint;
  vmsize: bigint;
  fileoff: bigint;
  filesize: bigint;
}

/** What the tests look at in a Mach-O image. */
export interface MachO {
  magic: number;
  cputype: number;
  /** MH_DYLIB = 6, MH_EXECUTE = 2. */
  filetype: number;
  flags: number;
  /** Every load command id, in order. */
  commands: number[];
  segments: Segment[];
  /** LC_ID_DYLIB name. */
  installName?: string;
  /** LC_LOAD_DYLIB names. */
  dylibs: string[];
  /** LC_BUILD_VERSION: platform (1 = macOS) and minimum OS as "major.minor". */
  build?: { platform: number; minos: string };
  /** Exported names with their addresses (image-relative), from the export trie. */
  exports: Map<string, bigint>;
  /** Undefined external symbols (imports) from the symbol table. */
  imports: string[];
}

function cstr(b: Uint8Array, at: number, max = b.length - at): string {
  let end = at;
  while (end < at + max && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(at, end));
}

function uleb(b: Uint8Array, at: number): [bigint, number] {
  let v = 0n, shift = 0n, i = at;
  for (;;) {
    if (i >= b.length) throw new MachOError(`ULEB128 runs past the end at ${at}`);
    const byte = b[i++];
    v |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
    if (!(byte & 0x80)) return [v, i];
  }
}

/** Walk the dyld export trie at [off, off+size) of `b`. */
function readTrie(b: Uint8Array, off: number, size: number): Map<string, bigint> {
  const out = new Map<string, bigint>();
  const trie = b.subarray(off, off + size);
  const seen = new Set<number>();
  const walk = (node: number, prefix: string) => {
    if (seen.has(node) || node >= trie.length) throw new MachOError(`bad trie node ${node}`);
    seen.add(node);
    let [term, p] = uleb(trie, node);
    if (term > 0n) {
      const [flags, q] = uleb(trie, p);
      const [addr] = uleb(trie, q);
      if ((flags & 0x8n) === 0n) out.set(prefix, addr); // not a re-export
      p += Number(term);
    }
    const children = trie[p++];
    for (let c = 0; c < children; c++) {
      const edge = cstr(trie, p);
      p += new TextEncoder().encode(edge).length + 1;
      const [child, next] = uleb(trie, p);
      p = next;
      walk(Number(child), prefix + edge);
    }
  };
  if (size > 0) walk(0, "");
  return out;
}

/** Parse a thin 64-bit little-endian Mach-O image. */
export function parseMachO(bytes: Uint8Array): MachO {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = v.getUint32(0, true);
  if (magic !== 0xfeedfacf) {
    throw new MachOError(`not a 64-bit little-endian Mach-O (magic 0x${magic.toString(16)})`);
  }
  const m: MachO = {
    magic,
    cputype: v.getUint32(4, true),
    filetype: v.getUint32(12, true),
    flags: v.getUint32(24, true),
    commands: [],
    segments: [],
    dylibs: [],
    exports: new Map(),
    imports: [],
  };
  const ncmds = v.getUint32(16, true);
  let at = 32;
  let trie: [number, number] | undefined;
  let symtab: [number, number, number, number] | undefined;
  for (let i = 0; i < ncmds; i++) {
    const cmd = v.getUint32(at, true), size = v.getUint32(at + 4, true);
    if (size < 8 || at + size > bytes.length) throw new MachOError(`bad load command ${i}`);
    m.commands.push(cmd);
    if (cmd === LC.SEGMENT_64) {
      m.segments.push({
        name: cstr(bytes, at + 8, 16),
        vmaddr: v.getBigUint64(at + 24, true),
        vmsize: v.getBigUint64(at + 32, true),
        fileoff: v.getBigUint64(at + 40, true),
        filesize: v.getBigUint64(at + 48, true),
      });
    } else if (cmd === LC.ID_DYLIB || cmd === LC.LOAD_DYLIB) {
      const name = cstr(bytes, at + v.getUint32(at + 8, true), size);
      if (cmd === LC.ID_DYLIB) m.installName = name;
      else m.dylibs.push(name);
    } else if (cmd === LC.BUILD_VERSION) {
      const minos = v.getUint32(at + 12, true);
      m.build = {
        platform: v.getUint32(at + 8, true),
        minos: `${minos >>> 16}.${(minos >>> 8) & 0xff}`,
      };
    } else if (cmd === LC.DYLD_EXPORTS_TRIE) {
      trie = [v.getUint32(at + 8, true), v.getUint32(at + 12, true)];
    } else if (cmd === LC.DYLD_INFO_ONLY) {
      trie = [v.getUint32(at + 40, true), v.getUint32(at + 44, true)];
    } else if (cmd === LC.SYMTAB) {
      symtab = [0, 1, 2, 3].map((k) => v.getUint32(at + 8 + 4 * k, true)) as typeof symtab;
    }
    at += size;
  }
  if (trie) m.exports = readTrie(bytes, trie[0], trie[1]);
  if (symtab) {
    const [symoff, nsyms, stroff] = symtab;
    for (let i = 0; i < nsyms; i++) {
      const e = symoff + 16 * i; // nlist_64: strx u32, type u8, sect u8, desc u16, value u64
      const type = bytes[e + 4];
      if ((type & 0xe0) === 0 && (type & 0x0e) === 0 && (type & 0x01)) { // N_UNDF | N_EXT
        m.imports.push(cstr(bytes, stroff + v.getUint32(e, true)));
      }
    }
  }
  return m;
}

/** File offset of an image address (inside one of the segments). */
export function fileOffset(m: MachO, addr: bigint): number {
  for (const s of m.segments) {
    if (addr >= s.vmaddr && addr < s.vmaddr + s.filesize) {
      return Number(s.fileoff + addr - s.vmaddr);
    }
  }
  throw new MachOError(`address 0x${addr.toString(16)} is in no segment's file range`);
}

/** What {@link verifyCodeSignature} found. */
export interface CodeSignature {
  /** CodeDirectory flags (0x2 = adhoc). */
  flags: number;
  /** The signing identifier. */
  ident: string;
  pages: number;
  pageSize: number;
}

/**
 * Check the embedded code signature the way the macOS kernel checks a page before running
 * it: the CodeDirectory (in the LC_CODE_SIGNATURE SuperBlob, big-endian) holds a SHA-256 per
 * page of the file up to codeLimit; every one must match. Throws a {@link MachOError} naming
 * the first page that does not.
 */
export function verifyCodeSignature(
  bytes: Uint8Array,
  sha256: (b: Uint8Array) => Uint8Array,
): CodeSignature {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ncmds = v.getUint32(16, true);
  let at = 32, sig: [number, number] | undefined;
  for (let i = 0; i < ncmds; i++) {
    if (v.getUint32(at, true) === LC.CODE_SIGNATURE) {
      sig = [v.getUint32(at + 8, true), v.getUint32(at + 12, true)];
    }
    at += v.getUint32(at + 4, true);
  }
  if (!sig) throw new MachOError("no LC_CODE_SIGNATURE");
  const [off] = sig;
  if (v.getUint32(off) !== 0xfade0cc0) throw new MachOError("signature is not a SuperBlob");
  const count = v.getUint32(off + 8);
  let cd = -1;
  for (let i = 0; i < count; i++) {
    const type = v.getUint32(off + 12 + 8 * i);
    if (type === 0) cd = off + v.getUint32(off + 12 + 8 * i + 4); // CSSLOT_CODEDIRECTORY
  }
  if (cd < 0 || v.getUint32(cd) !== 0xfade0c02) throw new MachOError("no CodeDirectory");
  const flags = v.getUint32(cd + 12);
  const hashOffset = v.getUint32(cd + 16);
  const ident = cstr(bytes, cd + v.getUint32(cd + 20));
  const nCodeSlots = v.getUint32(cd + 28);
  const codeLimit = v.getUint32(cd + 32);
  const hashSize = bytes[cd + 36], hashType = bytes[cd + 37], pageSize = 1 << bytes[cd + 39];
  if (hashType !== 2 || hashSize !== 32) throw new MachOError(`hash type ${hashType} not SHA-256`);
  if (nCodeSlots !== Math.ceil(codeLimit / pageSize)) {
    throw new MachOError(`${nCodeSlots} code slots for ${codeLimit} bytes`);
  }
  for (let p = 0; p < nCodeSlots; p++) {
    const page = bytes.subarray(p * pageSize, Math.min((p + 1) * pageSize, codeLimit));
    const want = bytes.subarray(cd + hashOffset + 32 * p, cd + hashOffset + 32 * (p + 1));
    const got = sha256(page);
    if (!got.every((b, i) => b === want[i])) {
      throw new MachOError(`page ${p} (at ${p * pageSize}) does not match its signed hash`);
    }
  }
  return { flags, ident, pages: nCodeSlots, pageSize };
}
