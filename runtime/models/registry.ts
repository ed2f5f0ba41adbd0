/**
 * Architecture registry: GGUF `general.architecture` → {@link ArchSpec}.
 *
 * Adding an architecture is one file in this folder plus one line in {@link ARCHS}; a test
 * fails when a model file is not registered.
 *
 * @module
 */

import type { ArchSpec, KVSource } from "./config.ts";
import { deepseek2 } from "./deepseek2.ts";
import { glm4Moe } from "./glm4_moe.ts";
import { gptOss } from "./gpt_oss.ts";
import { minimaxM2 } from "./minimax_m2.ts";
import { mixtral } from "./mixtral.ts";
import { olmoe } from "./olmoe.ts";
import { qwen2Moe } from "./qwen2_moe.ts";
import { qwen3Moe } from "./qwen3_moe.ts";
import { qwen35Moe } from "./qwen35_moe.ts";
import { qwen3Next } from "./qwen3_next.ts";

export type {
  ArchSpec,
  DeltaNetConfig,
  KVEntry,
  KVSource,
  MLAConfig,
  ModelConfig,
  Routing,
  RoutingSpec,
  TensorRole,
  TensorSpec,
} from "./config.ts";
export { ModelConfigError, resolveRouting } from "./config.ts";

/** Every supported architecture, keyed by GGUF architecture string. */
export const ARCHS: Readonly<Record<string, ArchSpec>> = Object.freeze({
  [qwen3Moe.arch]: qwen3Moe,
  [mixtral.arch]: mixtral,
  [olmoe.arch]: olmoe,
  [gptOss.arch]: gptOss,
  [qwen2Moe.arch]: qwen2Moe,
  [glm4Moe.arch]: glm4Moe,
  [minimaxM2.arch]: minimaxM2,
  [deepseek2.arch]: deepseek2,
  [qwen35Moe.arch]: qwen35Moe,
  [qwen3Next.arch]: qwen3Next,
});

/** Module file (in runtime/models/) of each registered spec, for the registration test. */
export const ARCH_FILES: Readonly<Record<string, string>> = Object.freeze({
  "qwen3_moe.ts": qwen3Moe.arch,
  "mixtral.ts": mixtral.arch,
  "olmoe.ts": olmoe.arch,
  "gpt_oss.ts": gptOss.arch,
  "qwen2_moe.ts": qwen2Moe.arch,
  "glm4_moe.ts": glm4Moe.arch,
  "minimax_m2.ts": minimaxM2.arch,
  "deepseek2.ts": deepseek2.arch,
  "qwen35_moe.ts": qwen35Moe.arch,
  "qwen3_next.ts": qwen3Next.arch,
});

/** GGUF architecture strings spool supports, sorted. */
export function supportedArchs(): string[] {
  return Object.keys(ARCHS).sort();
}

/** A GGUF architecture spool has no spec for. */
export class UnsupportedArchError extends Error {
  /** The architecture asked for. */
  readonly arch: string;
  /** The architectures spool supports. */
  readonly supported: readonly string[];

  /**
   * @param arch the architecture asked for
   * @param detail extra context
   */
  constructor(arch: string, detail?: string) {
    const supported = supportedArchs();
    super(
      `Unsupported model architecture "${arch}"${detail ? ` (${detail})` : ""}; ` +
        `supported: ${supported.join(", ")}`,
    );
    this.name = "UnsupportedArchError";
    this.arch = arch;
    this.supported = supported;
  }
}

/**
 * The spec of GGUF architecture `arch`.
 * @throws UnsupportedArchError listing the supported architectures
 */
export function getArch(arch: string): ArchSpec {
  const spec = Object.hasOwn(ARCHS, arch) ? ARCHS[arch] : undefined;
  if (spec === undefined) throw new UnsupportedArchError(arch);
  return spec;
}

/**
 * The spec for a GGUF's metadata (`general.architecture`). A `llama` file without experts is
 * a dense Llama, which spool (a MoE runtime) does not support.
 * @throws UnsupportedArchError
 */
export function archOf(kv: KVSource): ArchSpec {
  const arch = kv.get("general.architecture");
  if (typeof arch !== "string") {
    throw new UnsupportedArchError(String(arch), "general.architecture is missing");
  }
  const spec = getArch(arch);
  if (arch === "llama") {
    const n = kv.get("llama.expert_count");
    if (typeof n !== "number" || n === 0) {
      throw new UnsupportedArchError(arch, "dense llama, no llama.expert_count");
    }
  }
  return spec;
}
