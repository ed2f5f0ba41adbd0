/**
 * Binding a model's tensors: every tensor its architecture lists
 * ({@link ArchSpec.tensors}, the one table of names) is looked up in the GGUF, checked
 * against the listed shape and mapped as a matrix, an F32 vector or a 3-D expert tensor.
 *
 * @module
 */
import { native } from "../../ffi/mod.ts";
import type { Ptr } from "../../ffi/mod.ts";
import { Advice, type MappedFile, NativeBuffer } from "../../ffi/memory.ts";
import type { GGUFFile } from "../gguf/reader.ts";
import { GGMLType, rowBytes } from "../gguf/types.ts";
import type { TensorSpec } from "../models/config.ts";
import type { Bound, ExpertWeight, Vec, Weight } from "../models/weights.ts";
import { ModelLoadError } from "../models/errors.ts";

export { ModelLoadError };

/** How expert tensors are advised. */
export interface BindOptions {
  /** Experts are served from the cache: never fault their pages in. */
  readonly cached: boolean;
  /** Advise the kernel about mapped experts (random access, or read ahead when resident). */
  readonly willNeed: boolean;
  /**
   * The budget keeps the whole model in RAM: read the experts ahead (page cache filled in the
   * background, faults mapping whole runs of pages) instead of random-access advice, which
   * leaves every first touch a single-page fault for the length of a run.
   */
  readonly residentExperts?: boolean;
}

/** How a listed tensor is bound. */
function kindOf(spec: TensorSpec): "experts" | "vec" | "matrix" {
  if (spec.role === "expert" || spec.role === "expert_down") return "experts";
  if (spec.f32 && spec.role !== "router") return "vec";
  return "matrix";
}

function shapeText(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

/**
 * Bind every tensor of `specs` from `file` (GGUF `gguf` at `path`). Expert address tables
 * are pushed onto `tables` (the caller frees them). Tensors marked optional may be absent.
 * @throws ModelLoadError naming the tensor that is missing, misshapen, of the wrong type or
 *   running past the end of the file
 */
export function bindTensors(
  path: string,
  gguf: GGUFFile,
  file: MappedFile,
  specs: readonly TensorSpec[],
  tables: NativeBuffer[],
  opts: BindOptions,
): Map<string, Bound> {
  const n = native();
  const out = new Map<string, Bound>();
  for (const spec of specs) {
    if (spec.mtp) continue; // NextN/MTP blocks are never bound, run or resident
    const info = gguf.tensorByName.get(spec.name);
    if (!info) {
      if (spec.optional) continue;
      throw new ModelLoadError(`Cannot load ${path}: tensor "${spec.name}" is missing`);
    }
    if (info.absoluteOffset + info.nbytes > file.size) {
      throw new ModelLoadError(
        `Cannot load tensor "${spec.name}": data runs past the end of ${path}`,
      );
    }
    const want = spec.shape;
    const got = info.shape;
    const kind = kindOf(spec);
    const same = kind === "vec"
      ? info.nElements === want.reduce((a, b) => a * b, 1)
      : got.length === want.length && got.every((d, i) => d === want[i]) ||
        // a 2-D weight of one row may be stored as 1-D
        (want.length === 2 && want[1] === 1 && got.length === 1 && got[0] === want[0]);
    if (!same) {
      throw new ModelLoadError(
        `Cannot load tensor "${spec.name}": expected shape ${shapeText(want)}, got ${
          shapeText(got)
        }`,
      );
    }
    if (kind === "vec") {
      if (info.type !== GGMLType.F32) {
        throw new ModelLoadError(
          `Cannot load tensor "${spec.name}": expected F32 of ${info.nElements} values, got ${info.typeName}`,
        );
      }
      const data = new Float32Array(file.bytes(info.absoluteOffset, info.nbytes).slice().buffer);
      out.set(spec.name, { name: spec.name, ptr: n.ptr(data), data } satisfies Vec);
      continue;
    }
    const [cols, rows = 1] = want;
    if (kind === "matrix") {
      out.set(
        spec.name,
        {
          name: spec.name,
          type: info.type,
          rows,
          cols,
          ptr: file.ptrAt(info.absoluteOffset),
          rowBytes: rowBytes(info.type, cols),
        } satisfies Weight,
      );
      continue;
    }
    const e = want[2];
    const expertBytes = rowBytes(info.type, cols) * rows;
    const ptrs: Ptr[] = [];
    const table = new NativeBuffer(e * 8);
    const addrs = new BigUint64Array(table.u8.buffer, table.u8.byteOffset, e);
    for (let i = 0; i < e; i++) {
      ptrs.push(file.ptrAt(info.absoluteOffset + i * expertBytes));
      addrs[i] = BigInt(n.address(ptrs[i]));
    }
    tables.push(table);
    if (opts.cached) {
      file.advise(info.absoluteOffset, info.nbytes, Advice.RANDOM);
      file.advise(info.absoluteOffset, info.nbytes, Advice.DONTNEED);
    } else if (opts.willNeed && opts.residentExperts) {
      file.advise(info.absoluteOffset, info.nbytes, Advice.WILLNEED);
    } else if (opts.willNeed) file.advise(info.absoluteOffset, info.nbytes, Advice.RANDOM);
    out.set(
      spec.name,
      {
        name: spec.name,
        type: info.type,
        rows,
        cols,
        ptrs,
        table,
        expertBytes,
        fileOffset: info.absoluteOffset,
      } satisfies ExpertWeight,
    );
  }
  return out;
}
