/**
 * Command-line flags of `spool synth` that set {@link SynthDims}: the shape flags every family
 * takes and the hyperparameter flags of glm4moe, minimax-m2, deepseek2 and the hybrids. Each flag left out
 * keeps the preset's (or the architecture's default) value.
 *
 * @module
 */

import type { SynthDims } from "./_synth_presets.ts";

type Kind = "positive" | "count" | "number" | "gating" | "bool" | "pattern" | "sections";

/** flag → [SynthDims field, value kind]. */
const FLAGS: Record<string, readonly [keyof SynthDims, Kind]> = {
  "n-layer": ["nLayer", "positive"],
  "n-embd": ["nEmbd", "positive"],
  "n-head": ["nHead", "positive"],
  "n-head-kv": ["nHeadKv", "positive"],
  "head-dim": ["headDim", "positive"],
  "n-expert": ["nExpert", "positive"],
  "n-expert-used": ["nExpertUsed", "positive"],
  "n-ff-exp": ["nFfExp", "positive"],
  "n-ff-shexp": ["nFfShexp", "positive"],
  ctx: ["nCtx", "positive"],
  "sliding-window": ["slidingWindow", "positive"],
  "rope-freq-base": ["ropeFreqBase", "number"],
  "rms-eps": ["rmsEps", "number"],
  "n-ff": ["nFf", "count"],
  "n-dense-lead": ["nLayerDenseLead", "count"],
  "n-nextn": ["nLayerNextn", "count"],
  "n-expert-shared": ["nExpertShared", "count"],
  "rope-dim": ["ropeDim", "count"],
  "qk-norm": ["qkNorm", "count"],
  gating: ["expertGating", "gating"],
  "expert-weights-norm": ["expertWeightsNorm", "bool"],
  "expert-weights-scale": ["expertWeightsScale", "number"],
  "n-expert-groups": ["nExpertGroups", "count"],
  "n-expert-groups-used": ["nExpertGroupUsed", "count"],
  "q-lora-rank": ["qLoraRank", "count"],
  "kv-lora-rank": ["kvLoraRank", "positive"],
  "qk-nope-dim": ["qkNopeDim", "positive"],
  "v-head-dim": ["vHeadDim", "positive"],
  "yarn-factor": ["yarnFactor", "number"],
  "yarn-orig-ctx": ["yarnOrigCtx", "count"],
  "yarn-log-mul": ["yarnLogMul", "number"],
  "full-attn-interval": ["fullAttnInterval", "positive"],
  "recurrent-layers": ["recurrentLayers", "pattern"],
  "ssm-conv-kernel": ["ssmConvKernel", "positive"],
  "ssm-state-size": ["ssmStateSize", "positive"],
  "ssm-group-count": ["ssmGroupCount", "positive"],
  "ssm-time-step-rank": ["ssmTimeStepRank", "positive"],
  "rope-sections": ["ropeSections", "sections"],
};

/** Names of every dims flag (without `--`). */
export const DIM_FLAG_NAMES: readonly string[] = Object.keys(FLAGS);

/** Usage lines of the dims flags. */
export const HPARAM_FLAG_USAGE =
  `  Shape: [--n-layer N] [--n-embd N] [--n-head N] [--n-head-kv N] [--head-dim N]
  [--n-expert N] [--n-expert-used N] [--n-ff-exp N] [--n-ff-shexp N] [--ctx N]
  [--sliding-window N] [--rope-freq-base X] [--rms-eps X]
  glm4moe, deepseek2: [--n-ff N (dense FFN)] [--n-dense-lead N] [--n-nextn N (MTP blocks)]
  [--n-expert-shared N]; glm4moe, minimax-m2: [--rope-dim N (0 = whole head)];
  glm4moe: [--qk-norm 0|1]; routing: [--gating softmax|sigmoid]
  [--expert-weights-norm true|false] [--expert-weights-scale X] [--n-expert-groups N]
  [--n-expert-groups-used N]; deepseek2 MLA: [--q-lora-rank N (0 = none)] [--kv-lora-rank N]
  [--qk-nope-dim N] [--v-head-dim N] [--rope-dim N] [--yarn-factor X (0 = none)]
  [--yarn-orig-ctx N] [--yarn-log-mul X]
  qwen35moe, qwen3next (hybrids): [--full-attn-interval N] [--recurrent-layers PATTERN (r/a per
  layer, e.g. rrra)] [--ssm-conv-kernel N] [--ssm-state-size N (key = value head size)]
  [--ssm-group-count N (key heads)] [--ssm-time-step-rank N (value heads)] [--n-nextn N]
  [--rope-dim N]; qwen35moe: [--rope-sections T,H,W,E]`;

function parse(kind: Kind, v: string): number | boolean | string | number[] | undefined {
  switch (kind) {
    case "positive":
    case "count": {
      const n = Number(v);
      const ok = Number.isInteger(n) && (kind === "count" ? n >= 0 : n > 0);
      return ok ? n : undefined;
    }
    case "number": {
      const n = Number(v);
      return v.trim() !== "" && Number.isFinite(n) && n >= 0 ? n : undefined;
    }
    case "gating":
      return v === "softmax" || v === "sigmoid" ? v : undefined;
    case "bool":
      return v === "true" ? true : v === "false" ? false : undefined;
    case "pattern":
      return /^[ra]+$/.test(v) ? v : undefined;
    case "sections": {
      const a = v.split(",").map((x) => Number(x));
      return a.length === 4 && a.every((x) => Number.isInteger(x) && x >= 0) ? a : undefined;
    }
  }
}

const EXPECT: Record<Kind, string> = {
  positive: "a positive integer",
  count: "an integer >= 0",
  number: "a number >= 0",
  gating: "softmax or sigmoid",
  bool: "true or false",
  pattern: `"r" (recurrent) and "a" (attention) per layer, e.g. rrra`,
  sections: "four integers >= 0, e.g. 11,11,10,0",
};

/**
 * The dims the parsed flag `values` set, or an error message naming the bad flag.
 */
export function flagsToDims(
  values: Record<string, string | boolean | undefined>,
): Partial<SynthDims> | string {
  const dims: Record<string, unknown> = {};
  for (const [flag, [field, kind]] of Object.entries(FLAGS)) {
    const v = values[flag];
    if (typeof v !== "string") continue;
    const x = parse(kind, v);
    if (x === undefined) return `--${flag} must be ${EXPECT[kind]}, got "${v}"`;
    dims[field] = x;
  }
  return dims as Partial<SynthDims>;
}
