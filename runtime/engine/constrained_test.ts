/**
 * Constrained sampling with a real random-weight model (tiny qwen3moe, Q8_0, the real Qwen
 * vocabulary and the real Qwen3 chat template): under `tool_choice: required` every run must
 * produce a call the qwen3 parser reads back, with arguments that validate against the tool's
 * schema; under `json_schema` the output must parse and validate. Several seeds and
 * temperatures. Also: the masked distribution, logprobs, the dead-end error, and timings.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadModel } from "../api.ts";
import { ensureSyntheticModel } from "../models/synth.ts";
import { llamaTemplate, llamaVocab } from "../../test/_llama_source.ts";
import {
  compileConstraint,
  type ConstraintSpec,
  constraintVocab,
  GrammarError,
  type TokenConstraint,
} from "../grammar/mod.ts";
import { createOutputParser, type ToolDef } from "../tools/mod.ts";
import { sampleConstrained } from "./constrained.ts";
import { OPENAI_DEFAULTS, Sampler } from "./sampling.ts";

const DIR = fileURLToPath(new URL("../../test/fixtures/engine/", import.meta.url));
const MODEL = `${DIR}qwen3moe-q8-qwenvocab-constrained.gguf`;
const TEMPLATE = readFileSync(llamaTemplate("Qwen-Qwen3-0.6B.jinja"), "utf8");

function fixture(): string {
  return ensureSyntheticModel(MODEL, {
    arch: "qwen3moe",
    preset: "tiny",
    types: "Q8_0",
    seed: 5,
    vocab: llamaVocab("qwen2"),
    chatTemplate: TEMPLATE,
  });
}

const TOOLS: ToolDef[] = [
  {
    name: "get_weather",
    description: "Weather forecast",
    parameters: {
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: {
        city: { type: "string", maxLength: 12 },
        days: { type: "integer", minimum: 0 },
        unit: { type: "string", enum: ["c", "f"] },
      },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
  {
    name: "bash",
    description: "Runs a command",
    parameters: {
      type: "object",
      properties: { command: { type: "string", maxLength: 16 }, bg: { type: "boolean" } },
      required: ["command"],
      additionalProperties: false,
    },
  },
];

/** A validator for the subset the schemas above use (independent of the grammar code). */
function validate(v: unknown, s: Record<string, unknown>): string | null {
  if (s.enum && !(s.enum as unknown[]).some((e) => JSON.stringify(e) === JSON.stringify(v))) {
    return `not in enum: ${JSON.stringify(v)}`;
  }
  switch (s.type) {
    case "object": {
      if (typeof v !== "object" || v === null || Array.isArray(v)) return "not an object";
      const o = v as Record<string, unknown>;
      const props = (s.properties ?? {}) as Record<string, Record<string, unknown>>;
      for (const r of (s.required ?? []) as string[]) if (!(r in o)) return `missing ${r}`;
      for (const [k, x] of Object.entries(o)) {
        if (!props[k]) return `extra key ${k}`;
        const e = validate(x, props[k]);
        if (e) return `${k}: ${e}`;
      }
      return null;
    }
    case "string":
      if (typeof v !== "string") return "not a string";
      if (typeof s.maxLength === "number" && [...v].length > s.maxLength) return "too long";
      return null;
    case "integer":
      if (!Number.isInteger(v)) return "not an integer";
      if (typeof s.minimum === "number" && (v as number) < s.minimum) return "below minimum";
      return null;
    case "boolean":
      return typeof v === "boolean" ? null : "not a boolean";
  }
  return null;
}

const opts = { sanitizeResources: false, sanitizeOps: false };

function run(
  m: ReturnType<typeof loadModel>,
  c: TokenConstraint,
  prompt: number[],
  seed: number,
  temperature: number,
  maxTokens: number,
): { text: string; n: number; ms: number[]; ended: boolean } {
  const session = m.createSession({ nCtx: 512 });
  const sampler = new Sampler({ ...OPENAI_DEFAULTS, temperature, seed });
  const history = [...prompt];
  let logits = session.eval(prompt, "last");
  const out: number[] = [];
  const ms: number[] = [];
  let ended = false;
  try {
    for (let i = 0; i < maxTokens; i++) {
      const t0 = performance.now();
      const r = sampleConstrained(sampler, logits, history, c);
      ms.push(performance.now() - t0);
      c.advance(r.token);
      if (m.tokenizer.isEog(r.token)) {
        ended = true;
        break;
      }
      out.push(r.token);
      history.push(r.token);
      logits = session.eval([r.token], "last");
    }
  } finally {
    session.close();
  }
  return { text: m.tokenizer.decode(out, { special: true }), n: out.length, ms, ended };
}

Deno.test("random-weight model under tool_choice required: valid calls, all seeds", opts, () => {
  const m = loadModel(fixture(), { nCtx: 512 });
  try {
    assert.equal(m.chatTemplate, TEMPLATE);
    const vocab = constraintVocab(m.tokenizer);
    const prompt = m.promptTokens([{ role: "user", content: "Weather in Paris?" }], {
      tools: TOOLS.map((t) => ({ type: "function" as const, function: { ...t } })),
      extra: { enable_thinking: false },
    });
    const all: number[] = [];
    for (
      const [seed, temperature, parallel] of [[1, 1, false], [2, 0.7, true], [3, 1.5, false], [
        4,
        0,
        false,
      ]] as const
    ) {
      const spec: ConstraintSpec = {
        kind: "tools",
        format: "qwen3",
        tools: TOOLS,
        choice: "required",
        parallel,
      };
      const r = run(m, compileConstraint(spec, vocab), prompt, seed, temperature, 400);
      all.push(...r.ms);
      assert.ok(r.ended, `seed ${seed}: no end within 400 tokens: ${JSON.stringify(r.text)}`);
      const p = createOutputParser("qwen3", { tools: TOOLS, thinking: false });
      const evs = [...p.push(r.text), ...p.end()];
      const calls = evs.filter((e) => e.type === "tool_call_end");
      const starts = evs.filter((e) => e.type === "tool_call_start");
      assert.ok(calls.length >= 1, `seed ${seed}: ${JSON.stringify(r.text)}`);
      if (!parallel) assert.equal(calls.length, 1);
      assert.equal(evs.filter((e) => e.type === "content").length, 0);
      for (const [i, e] of calls.entries()) {
        assert.equal(e.error, undefined, `${e.error}: ${JSON.stringify(r.text)}`);
        const tool = TOOLS.find((t) => t.name === starts[i].name)!;
        const err = validate(JSON.parse(e.arguments), tool.parameters);
        assert.equal(err, null, `seed ${seed}: ${err}: ${e.arguments}`);
      }
      console.log(`seed ${seed} T=${temperature}: ${r.n} tokens: ${JSON.stringify(r.text)}`);
    }
    all.sort((a, b) => a - b);
    console.log(
      `constrained sample: median ${all[all.length >> 1].toFixed(2)} ms, ` +
        `p95 ${all[Math.floor(all.length * 0.95)].toFixed(2)} ms, max ${
          all[all.length - 1].toFixed(1)
        } ms over ${all.length} tokens`,
    );
  } finally {
    m.close();
  }
});

Deno.test("random-weight model under json_schema: output parses and validates", opts, () => {
  const m = loadModel(fixture(), { nCtx: 512 });
  try {
    const vocab = constraintVocab(m.tokenizer);
    const schema = TOOLS[0].parameters;
    const prompt = m.promptTokens([{ role: "user", content: "JSON please" }]);
    for (const [seed, temperature] of [[11, 1], [12, 0.5], [13, 2]]) {
      const c = compileConstraint({ kind: "json_schema", schema }, vocab);
      const r = run(m, c, prompt, seed, temperature, 300);
      assert.ok(r.ended, JSON.stringify(r.text));
      const v = JSON.parse(r.text);
      assert.equal(validate(v, schema), null, r.text);
    }
    // json_object
    const r = run(m, compileConstraint({ kind: "json_object" }, vocab), prompt, 21, 1, 300);
    if (r.ended) assert.equal(typeof JSON.parse(r.text), "object");
  } finally {
    m.close();
  }
});

Deno.test("sampleConstrained: masked distribution, raw logprobs, dead end", () => {
  // a 4-token vocabulary: "a", "b", "{", EOG; the constraint allows only "b"
  const vocab = {
    nVocab: 4,
    piece: (id: number) => new TextEncoder().encode(["a", "b", "{", ""][id]),
    isEog: (id: number) => id === 3,
  };
  const onlyB: TokenConstraint = {
    clone: () => onlyB,
    accepts: (id) => id === 1,
    advance: () => {},
    isComplete: () => false,
  };
  const logits = Float32Array.of(5, 0, 1, -1);
  const s = new Sampler({ ...OPENAI_DEFAULTS, temperature: 1, seed: 7, logprobs: 2 });
  const raw = new Sampler({ ...OPENAI_DEFAULTS, logprobs: 2 }).sample(logits, []);
  for (let i = 0; i < 50; i++) {
    const r = sampleConstrained(s, logits, [], onlyB);
    assert.equal(r.token, 1);
    // the logprob of "b" in the unmasked distribution
    const z = Math.log(Math.exp(5) + Math.exp(0) + Math.exp(1) + Math.exp(-1));
    assert.ok(Math.abs(r.logprob - (0 - z)) < 1e-6, String(r.logprob));
  }
  assert.equal(raw.token >= 0, true);
  // a grammar with no way forward
  const none: TokenConstraint = { ...onlyB, accepts: () => false };
  assert.throws(
    () => sampleConstrained(s, logits, [], none),
    (e) => e instanceof GrammarError && e.code === "dead_end",
  );
  // json_object on this vocabulary: only "{" can start
  const c = compileConstraint({ kind: "json_object" }, vocab);
  for (let i = 0; i < 20; i++) assert.equal(sampleConstrained(s, logits, [], c).token, 2);
  // frequencies follow the masked, renormalized distribution: allow "a" or "b" only
  const ab: TokenConstraint = { ...onlyB, accepts: (id) => id === 0 || id === 1 };
  const flat = Float32Array.of(0, Math.log(3), 2, -1); // P(a) : P(b) = 1 : 3 after masking
  const s2 = new Sampler({ ...OPENAI_DEFAULTS, temperature: 1, seed: 99 });
  let nb = 0;
  const N = 4000;
  for (let i = 0; i < N; i++) if (sampleConstrained(s2, flat, [], ab).token === 1) nb++;
  assert.ok(Math.abs(nb / N - 0.75) < 0.03, `P(b) = ${nb / N}`);
});
