/**
 * `spool inspect`: what a GGUF file holds and what running it costs — the architecture and
 * hyperparameters, the tokenizer, tensor counts and bytes by type, and the split between
 * dense weights (kept resident) and routed experts (paged from disk), with the bytes one
 * token reads.
 */
import { typeInfo } from "./gguf/types.ts";

/** The parts of a parsed GGUF file that inspection needs. */
export interface InspectSource {
  version: number;
  alignment: number;
  dataOffset: number;
  fileSize: number;
  kv: ReadonlyMap<string, unknown>;
  tensors: readonly { name: string; type: number; shape: readonly number[]; nbytes: number }[];
}

/** Bytes and count of the tensors of one ggml type. */
export interface TypeTotal {
  type: string;
  count: number;
  bytes: number;
}

/** Everything `spool inspect` reports. All byte counts are exact. */
export interface InspectReport {
  file?: string;
  fileSize: number;
  version: number;
  alignment: number;
  dataOffset: number;
  architecture: string | null;
  name: string | null;
  /** `<arch>.*` metadata, with the prefix removed (arrays summarized by length). */
  hyperparameters: Record<string, unknown>;
  tokenizer: {
    model: string | null;
    pre: string | null;
    vocabSize: number;
    bos: number | null;
    eos: number | null;
    chatTemplate: boolean;
  };
  tensorCount: number;
  byType: TypeTotal[];
  totalBytes: number;
  /** Tensors outside the routed experts: embeddings, attention, router, norms, shared experts. */
  denseBytes: number;
  /** The routed experts (`*_exps` tensors), paged from disk when RAM is short. */
  expertBytes: number;
  /**
   * NextN/MTP blocks (the last `nextn_predict_layers` blocks: glm4moe, deepseek2): never
   * loaded, run or resident, so in neither dense nor expert bytes.
   */
  mtpBytes: number;
  moeLayers: number;
  expertCount: number;
  expertUsedCount: number;
  /** Bytes of one expert of one layer (gate + up + down); the largest over layers. */
  bytesPerExpert: number;
  /** Dense bytes one token reads (one embedding row, not the whole table) plus k experts per MoE layer. */
  bytesPerToken: number;
  denseBytesPerToken: number;
  expertBytesPerToken: number;
}

function num(kv: ReadonlyMap<string, unknown>, key: string): number | null {
  const v = kv.get(key);
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return null;
}

function str(kv: ReadonlyMap<string, unknown>, key: string): string | null {
  const v = kv.get(key);
  return typeof v === "string" ? v : null;
}

function arrayLength(v: unknown): number {
  if (Array.isArray(v)) return v.length;
  if (ArrayBuffer.isView(v)) return (v as unknown as { length: number }).length;
  if (v && typeof v === "object" && "length" in v) return Number((v as { length: number }).length);
  return 0;
}

/** The GGUF name of a type id, or `type<N>`. */
function typeName(id: number): string {
  try {
    return typeInfo(id).name;
  } catch {
    return `type${id}`;
  }
}

/** Compute the inspection report of a parsed GGUF file. */
export function inspectGGUF(g: InspectSource, file?: string): InspectReport {
  const kv = g.kv;
  const arch = str(kv, "general.architecture");
  const hyper: Record<string, unknown> = {};
  if (arch) {
    for (const [k, v] of kv) {
      if (!k.startsWith(arch + ".")) continue;
      const key = k.slice(arch.length + 1);
      hyper[key] = typeof v === "bigint"
        ? Number(v)
        : typeof v === "number" && !Number.isInteger(v)
        ? Number(v.toPrecision(7)) // f32 metadata: print 1e-6, not 9.999999974752427e-7
        : (Array.isArray(v) || ArrayBuffer.isView(v))
        ? `[${arrayLength(v)} values]`
        : v;
    }
  }
  const byType = new Map<string, TypeTotal>();
  let total = 0;
  let expertBytes = 0;
  let mtpBytes = 0;
  const blocks = (arch && num(kv, `${arch}.block_count`)) || 0;
  const trunk = blocks - ((arch && num(kv, `${arch}.nextn_predict_layers`)) || 0);
  const layerExpertBytes = new Map<number, number>();
  let embd: { type: number; shape: readonly number[]; nbytes: number } | undefined;
  let hasOutput = false;
  for (const t of g.tensors) {
    const name = typeName(t.type);
    const e = byType.get(name) ?? { type: name, count: 0, bytes: 0 };
    e.count++;
    e.bytes += t.nbytes;
    byType.set(name, e);
    total += t.nbytes;
    if (t.name === "token_embd.weight") embd = t;
    if (t.name === "output.weight") hasOutput = true;
    const blk = /^blk\.(\d+)\./.exec(t.name);
    if (blk && Number(blk[1]) >= trunk && trunk > 0 && trunk < blocks) {
      mtpBytes += t.nbytes;
      continue;
    }
    const m = /^blk\.(\d+)\.ffn_(gate|up|down|gate_up)_exps\.(weight|bias)$/.exec(t.name);
    if (m) {
      expertBytes += t.nbytes;
      const layer = Number(m[1]);
      layerExpertBytes.set(layer, (layerExpertBytes.get(layer) ?? 0) + t.nbytes);
    }
  }
  const denseBytes = total - expertBytes - mtpBytes;
  const nExpert = (arch && num(kv, `${arch}.expert_count`)) || 0;
  const k = (arch && num(kv, `${arch}.expert_used_count`)) || 0;
  let bytesPerExpert = 0;
  let expertPerToken = 0;
  if (nExpert > 0) {
    for (const b of layerExpertBytes.values()) {
      const per = b / nExpert;
      bytesPerExpert = Math.max(bytesPerExpert, per);
      expertPerToken += per * k;
    }
  }
  // One token reads one row of the embedding table; if the output projection is tied to
  // the embeddings, the whole table is read for the logits anyway.
  let densePerToken = denseBytes;
  if (embd && hasOutput && embd.shape.length === 2) {
    densePerToken = denseBytes - embd.nbytes + embd.nbytes / embd.shape[1];
  }
  const tokens = kv.get("tokenizer.ggml.tokens");
  return {
    file,
    fileSize: g.fileSize,
    version: g.version,
    alignment: g.alignment,
    dataOffset: g.dataOffset,
    architecture: arch,
    name: str(kv, "general.name"),
    hyperparameters: hyper,
    tokenizer: {
      model: str(kv, "tokenizer.ggml.model"),
      pre: str(kv, "tokenizer.ggml.pre"),
      vocabSize: arrayLength(tokens),
      bos: num(kv, "tokenizer.ggml.bos_token_id"),
      eos: num(kv, "tokenizer.ggml.eos_token_id"),
      chatTemplate: typeof kv.get("tokenizer.chat_template") === "string",
    },
    tensorCount: g.tensors.length,
    byType: [...byType.values()].sort((a, b) => b.bytes - a.bytes),
    totalBytes: total,
    denseBytes,
    expertBytes,
    mtpBytes,
    moeLayers: layerExpertBytes.size,
    expertCount: nExpert,
    expertUsedCount: k,
    bytesPerExpert: Math.round(bytesPerExpert),
    bytesPerToken: Math.round(densePerToken + expertPerToken),
    denseBytesPerToken: Math.round(densePerToken),
    expertBytesPerToken: Math.round(expertPerToken),
  };
}

/** Human-readable byte count: 1.23 GiB, 456.0 MiB, 789 B. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 1 : 2)} ${units[i]}`;
}

function pct(a: number, b: number): string {
  return b > 0 ? `${(100 * a / b).toFixed(1)}%` : "-";
}

/** Render the report as text for a terminal. */
export function formatReport(r: InspectReport): string {
  const lines: string[] = [];
  const row = (k: string, v: unknown) => lines.push(`  ${k.padEnd(34)} ${v}`);
  lines.push(`${r.file ?? "GGUF"}: GGUF v${r.version}, ${formatBytes(r.fileSize)}`);
  row("architecture", r.architecture ?? "(none)");
  if (r.name) row("name", r.name);
  lines.push("hyperparameters");
  for (const [k, v] of Object.entries(r.hyperparameters)) row(k, v);
  lines.push("tokenizer");
  row(
    "model",
    `${r.tokenizer.model ?? "(none)"}${r.tokenizer.pre ? ` (pre: ${r.tokenizer.pre})` : ""}`,
  );
  row("vocabulary size", r.tokenizer.vocabSize);
  row("bos / eos", `${r.tokenizer.bos ?? "-"} / ${r.tokenizer.eos ?? "-"}`);
  row("chat template", r.tokenizer.chatTemplate ? "yes" : "no");
  lines.push(
    `tensors: ${r.tensorCount}, ${
      formatBytes(r.totalBytes)
    } (alignment ${r.alignment}, data at byte ${r.dataOffset})`,
  );
  for (const t of r.byType) {
    row(
      t.type,
      `${String(t.count).padStart(5)} tensors  ${formatBytes(t.bytes).padStart(11)}  ${
        pct(t.bytes, r.totalBytes).padStart(6)
      }`,
    );
  }
  lines.push("dense vs experts");
  row(
    "dense (resident)",
    `${formatBytes(r.denseBytes)} (${r.denseBytes} B, ${pct(r.denseBytes, r.totalBytes)})`,
  );
  row(
    "routed experts (paged)",
    `${formatBytes(r.expertBytes)} (${r.expertBytes} B, ${pct(r.expertBytes, r.totalBytes)})`,
  );
  if (r.mtpBytes > 0) {
    row(
      "NextN/MTP blocks (skipped)",
      `${formatBytes(r.mtpBytes)} (${r.mtpBytes} B, ${pct(r.mtpBytes, r.totalBytes)})`,
    );
  }
  if (r.expertCount > 0) {
    row(
      "experts",
      `${r.expertCount} per layer, ${r.expertUsedCount} used per token, ${r.moeLayers} MoE layers`,
    );
    row("one expert", `${formatBytes(r.bytesPerExpert)} (${r.bytesPerExpert} B)`);
  }
  row(
    "read per token",
    `${formatBytes(r.bytesPerToken)} (${r.bytesPerToken} B) = dense ${
      formatBytes(r.denseBytesPerToken)
    } + experts ${formatBytes(r.expertBytesPerToken)}`,
  );
  return lines.join("\n");
}
