/**
 * Requantize a GGUF file (`spool quantize IN OUT TYPE`): every 2-D-or-more weight whose
 * rows fit the target's block size is converted to TYPE; norms, biases and other 1-D
 * tensors stay as they are. Tensors stream through in row chunks, so a file larger than
 * RAM converts in bounded memory.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { readGGUF, type TensorInfo } from "./reader.ts";
import { type GGUFKVEntry, GGUFWriter, kvEntriesOf } from "./writer.ts";
import { GGMLType, GGUFValueType, rowBytes, typeByName, typeInfo } from "./types.ts";
import { dequantize, quantize } from "./quantize.ts";
import { GGUFError } from "./errors.ts";

/** Target types `spool quantize` accepts. */
export const QUANTIZE_TARGETS = [
  "F32",
  "F16",
  "BF16",
  "Q8_0",
  "Q4_0",
  "Q4_K",
  "Q5_K",
  "Q6_K",
  "MXFP4",
] as const;

/** llama.cpp's `general.file_type` (llama_ftype) for a file mostly of one type. */
const FILE_TYPE: Record<string, number> = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q8_0: 7,
  Q4_K: 15,
  Q5_K: 17,
  Q6_K: 18,
  BF16: 32,
  MXFP4: 38,
};

/** Options of {@link requantizeFile}. */
export interface RequantizeOptions {
  /** Bytes of f32 held per chunk (default 64 MiB). */
  chunkBytes?: number;
  /** Called after each tensor. */
  onTensor?: (t: TensorInfo, newType: number, index: number, total: number) => void;
}

/** Whether a tensor gets converted to `target`: a weight matrix whose rows fit its blocks. */
export function shouldQuantize(t: TensorInfo, target: number): boolean {
  if (t.shape.length < 2 || !t.name.endsWith(".weight")) return false;
  return t.shape[0] % typeInfo(target).blockSize === 0;
}

/** Convert `input` into `output` with weights in `typeName`. Returns the tensors converted. */
export function requantizeFile(
  input: string,
  output: string,
  typeName: string,
  opts: RequantizeOptions = {},
): number {
  const info = typeByName(typeName.toUpperCase());
  if (!info || !(QUANTIZE_TARGETS as readonly string[]).includes(info.name)) {
    throw new GGUFError("bad_value", {
      field: "TYPE",
      detail: `cannot quantize to "${typeName}"; choose one of ${QUANTIZE_TARGETS.join(", ")}`,
    });
  }
  const target = info.id;
  const g = readGGUF(input);
  const plan = g.tensors.map((t) => ({ t, type: shouldQuantize(t, target) ? target : t.type }));
  const kv: GGUFKVEntry[] = kvEntriesOf(g).filter((e) =>
    e.key !== "general.file_type" && e.key !== "general.quantization_version"
  );
  kv.push({ key: "general.file_type", value: FILE_TYPE[info.name], type: GGUFValueType.UINT32 });
  if (info.blockSize > 1) {
    kv.push({ key: "general.quantization_version", value: 2, type: GGUFValueType.UINT32 });
  }
  const w = new GGUFWriter(output, {
    kv,
    tensors: plan.map((p) => ({ name: p.t.name, type: p.type, shape: p.t.shape })),
    alignment: g.alignment,
  });
  const fd = openSync(input, "r");
  let converted = 0;
  try {
    const chunk = opts.chunkBytes ?? 64 << 20;
    plan.forEach(({ t, type }, i) => {
      const cols = t.shape[0];
      const rows = t.nElements / cols;
      const inRow = rowBytes(t.type, cols);
      const step = Math.max(1, Math.floor(chunk / (cols * 4)));
      for (let r = 0; r < rows; r += step) {
        const n = Math.min(step, rows - r);
        const src = new Uint8Array(n * inRow);
        const got = readSync(fd, src, 0, src.length, t.absoluteOffset + r * inRow);
        if (got !== src.length) {
          throw new GGUFError("truncated", {
            path: input,
            offset: t.absoluteOffset + r * inRow + got,
            field: `tensor "${t.name}"`,
            detail: `file ended inside tensor data`,
          });
        }
        if (type === t.type) {
          w.writeTensorChunk(t.name, src);
        } else {
          const f32 = t.type === GGMLType.F32
            ? new Float32Array(src.buffer, 0, n * cols)
            : dequantize(t.type, src, n * cols);
          w.writeTensorChunk(t.name, quantize(type, f32, n, cols));
        }
      }
      if (type !== t.type) converted++;
      opts.onTensor?.(t, type, i, plan.length);
    });
    w.close();
  } catch (e) {
    w.abort();
    throw e;
  } finally {
    closeSync(fd);
  }
  return converted;
}
