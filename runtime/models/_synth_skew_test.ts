import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { readGGUF } from "../gguf/reader.ts";
import { hitCurve, recordDecodeTrace, topShare } from "../experts/hit_curve.ts";
import { hashSeed } from "./_synth_fill.ts";
import {
  ensureSyntheticModel,
  REAL_ROUTER_SKEW,
  resolveRouterSkew,
  Rng,
  ROUTER_SKEW_KEY,
  routerRowScales,
  RouterSkewError,
  routerSkewOf,
  synthMain,
  type SynthOptions,
  writeSyntheticModel,
} from "./synth.ts";

function tmp(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync();
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

function sha(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** A tensor's bytes in a GGUF file. */
function tensorBytes(path: string, name: string): Uint8Array {
  const t = readGGUF(path).tensorByName.get(name);
  assert.ok(t, name);
  return new Uint8Array(readFileSync(path).subarray(t.absoluteOffset, t.absoluteOffset + t.nbytes));
}

/** ~1 MB F32 models of the three routing kinds (softmax; sigmoid + exp_probs_b; with bias). */
function hashOpts(arch: string): SynthOptions {
  return {
    arch,
    types: "F32",
    seed: 7,
    vocab: "bytes",
    dims: {
      nLayer: arch === "glm4moe" ? 3 : 2,
      nEmbd: 64,
      nHead: 2,
      nHeadKv: 1,
      headDim: 32,
      nExpert: 16,
      nExpertUsed: 4,
      nFfExp: 32,
      nFf: 64,
      nFfShexp: 64,
    },
  };
}

// SHA-256 of hashOpts(arch) written by main before the router skew existed (commit d304b71).
const MAIN_SHA: Record<string, string> = {
  qwen3moe: "e797c2c5bba65d01727088a9bae3eed2efccf35b81e7056522fb75c2dfa13244",
  glm4moe: "53c7824bb7debad7def183ddf71ec73e611cef01d1bb3eadbb996f55abcf2dbb",
  "gpt-oss": "332d4100fbb19a38dfd436371db54690b73fbaaf1dc445906b0ff86a95747c08",
};

/** The router rows as the uniform generator draws them: std 2/sqrt(fan), seeded per chunk. */
function uniformRouter(seed: number, name: string, nEmbd: number, nExpert: number): Float32Array {
  const out = new Float32Array(nEmbd * nExpert);
  new Rng(hashSeed(seed, name, 0)).fillUniform(out, 0, Math.sqrt(3) * 2 / Math.sqrt(nEmbd));
  return out;
}

Deno.test("resolveRouterSkew: numbers >= 0, uniform, real; anything else is a RouterSkewError", () => {
  assert.equal(resolveRouterSkew(undefined), 0);
  assert.equal(resolveRouterSkew(0.3), 0.3);
  assert.equal(resolveRouterSkew("0.75"), 0.75);
  assert.equal(resolveRouterSkew("uniform"), 0);
  assert.equal(resolveRouterSkew("REAL"), REAL_ROUTER_SKEW);
  for (const bad of [-0.1, "-1", "steep", "", Number.NaN, Infinity]) {
    assert.throws(() => resolveRouterSkew(bad), RouterSkewError, String(bad));
  }
});

Deno.test("skew 0: the same bytes as main wrote, and the router is the plain uniform draw", () => {
  using t = tmp();
  for (const arch of Object.keys(MAIN_SHA)) {
    const o = hashOpts(arch);
    const a = `${t.dir}/${arch}-absent.gguf`, z = `${t.dir}/${arch}-0.gguf`;
    writeSyntheticModel(a, o);
    writeSyntheticModel(z, { ...o, routerSkew: 0 });
    assert.equal(sha(a), MAIN_SHA[arch], `${arch}: differs from main's file`);
    assert.equal(sha(z), MAIN_SHA[arch], `${arch}: routerSkew 0 differs from main's file`);
    assert.equal(readGGUF(z).kv.has(ROUTER_SKEW_KEY), false);
    const layer = arch === "glm4moe" ? 1 : 0; // glm4moe's layer 0 is dense
    const name = `blk.${layer}.ffn_gate_inp.weight`;
    const want = uniformRouter(7, name, 64, 16);
    assert.deepEqual(tensorBytes(z, name), new Uint8Array(want.buffer), `${arch} ${name}`);
  }
});

Deno.test("skew S: each router row is the uniform row times a log-normal scale of RMS 1, per layer", () => {
  using t = tmp();
  const S = 0.8, E = 128, D = 64;
  const o: SynthOptions = {
    ...hashOpts("qwen3moe"),
    dims: { ...hashOpts("qwen3moe").dims, nExpert: E, nExpertUsed: 8, nFfExp: 32 },
  };
  writeSyntheticModel(`${t.dir}/u.gguf`, o);
  writeSyntheticModel(`${t.dir}/s.gguf`, { ...o, routerSkew: S });
  const g = readGGUF(`${t.dir}/s.gguf`);
  assert.equal(g.kv.get(ROUTER_SKEW_KEY), Math.fround(S));
  assert.equal(routerSkewOf(`${t.dir}/s.gguf`), Math.fround(S));
  assert.equal(routerSkewOf(`${t.dir}/u.gguf`), 0);
  const top: number[] = [];
  for (const l of [0, 1]) {
    const name = `blk.${l}.ffn_gate_inp.weight`;
    const base = uniformRouter(7, name, D, E);
    const got = new Float32Array(tensorBytes(`${t.dir}/s.gguf`, name).buffer);
    const scales = routerRowScales(7, name, E, S)!;
    let sq = 0, sl = 0, sl2 = 0;
    for (let e = 0; e < E; e++) {
      const s = scales[e];
      sq += s * s;
      sl += Math.log(s);
      sl2 += Math.log(s) ** 2;
      for (let i = 0; i < D; i++) {
        assert.equal(got[e * D + i], Math.fround(base[e * D + i] * s), `${name} [${e}, ${i}]`);
      }
    }
    assert.ok(Math.abs(sq / E - 1) < 1e-9, "RMS 1");
    const logStd = Math.sqrt(sl2 / E - (sl / E) ** 2);
    assert.ok(Math.abs(logStd / S - 1) < 0.2, `log-std ${logStd}, want about ${S}`);
    top.push(scales.indexOf(Math.max(...scales)));
  }
  assert.notEqual(top[0], top[1], "each layer has its own most popular expert");
  // everything but the routers (and the metadata) is untouched
  for (const name of ["blk.0.ffn_up_exps.weight", "blk.1.attn_q.weight", "token_embd.weight"]) {
    assert.deepEqual(tensorBytes(`${t.dir}/s.gguf`, name), tensorBytes(`${t.dir}/u.gguf`, name));
  }
});

Deno.test("spool synth --router-skew: in --help, a bad value is a usage error, real is written", () => {
  using t = tmp();
  const logs: string[] = [];
  const log = console.log, err = console.error;
  console.log = (...a: unknown[]) => logs.push(a.join(" "));
  console.error = (...a: unknown[]) => logs.push(a.join(" "));
  try {
    assert.equal(synthMain(["--help"]), 0);
    const help = logs.join("\n");
    assert.match(help, /--router-skew S\|uniform\|real/);
    assert.match(help, new RegExp(`"real" = ${REAL_ROUTER_SKEW}`));
    logs.length = 0;
    const base = ["--arch", "qwen3moe", "--quiet", "--vocab", "bytes", "--n-expert", "16"];
    assert.equal(synthMain([...base, "--out", `${t.dir}/x.gguf`, "--router-skew=-2"]), 2);
    assert.match(logs.join("\n"), /--router-skew: router skew must be a number >= 0/);
    assert.equal(synthMain([...base, "--out", `${t.dir}/r.gguf`, "--router-skew", "real"]), 0);
  } finally {
    console.log = log;
    console.error = err;
  }
  assert.equal(routerSkewOf(`${t.dir}/r.gguf`), Math.fround(REAL_ROUTER_SKEW));
});

Deno.test("ensureSyntheticModel writes a fixture again when its skew differs, not when it matches", () => {
  using t = tmp();
  const p = `${t.dir}/m.gguf`;
  const o = hashOpts("qwen3moe");
  ensureSyntheticModel(p, o);
  assert.equal(sha(p), MAIN_SHA.qwen3moe);
  const ino0 = statSync(p).ino;
  ensureSyntheticModel(p, { ...o, routerSkew: 0 });
  assert.equal(statSync(p).ino, ino0, "same skew: kept");
  ensureSyntheticModel(p, { ...o, routerSkew: 0.5 });
  assert.equal(routerSkewOf(p), 0.5);
  const ino1 = statSync(p).ino;
  ensureSyntheticModel(p, { ...o, routerSkew: 0.5 });
  assert.equal(statSync(p).ino, ino1, "same skew: kept");
  ensureSyntheticModel(p, o);
  assert.equal(sha(p), MAIN_SHA.qwen3moe, "back to uniform");
  writeFileSync(p, "not a gguf");
  ensureSyntheticModel(p, o);
  assert.equal(sha(p), MAIN_SHA.qwen3moe, "an unreadable file is written again");
});

/** A 128-expert, top-8 model small enough to decode a thousand tokens in a second or two. */
function decodeOpts(arch: string, routerSkew: number): SynthOptions {
  return {
    arch,
    types: "Q8_0",
    seed: 1,
    vocab: "bytes",
    routerSkew,
    dims: {
      nLayer: arch === "glm4moe" ? 3 : 2,
      nEmbd: 128,
      nHead: 2,
      nHeadKv: 1,
      headDim: 64,
      nExpert: 128,
      nExpertUsed: 8,
      nFfExp: 64,
      nFf: 128,
    },
  };
}

// Sampled decode through the engine (temperature 1, seeded, two prompts): a larger skew
// gives a heavier-tailed popularity and a higher LRU hit rate, for each routing family.
// glm4moe's sigmoid + exp_probs_b routing is already concentrated at S = 0 (its LRU of 64
// hits ~99% on this tiny model), so its hit rate is compared at 32 experts.
for (const [arch, slots] of [["qwen3moe", 64], ["gpt-oss", 64], ["glm4moe", 32]] as const) {
  Deno.test(`${arch}: sampled decode, skew 0 < 0.5 < 1 in top-10% share and LRU hits`, async () => {
    using t = tmp();
    const res: { top10: number; hit: number }[] = [];
    for (const s of [0, 0.5, 1]) {
      const p = `${t.dir}/${s}.gguf`;
      writeSyntheticModel(p, decodeOpts(arch, s));
      const tr = await recordDecodeTrace(p, { tokens: 400, prompts: 2, threads: 1 });
      assert.equal(tr.tokens, 2 * 399);
      assert.equal(tr.perLayer[tr.perLayer.length - 1].length, tr.tokens * 8);
      res.push({ top10: topShare(tr, 0.1), hit: hitCurve(tr, [slots], 16)[0].hitRate });
    }
    const msg = JSON.stringify(res);
    for (let i = 1; i < res.length; i++) {
      assert.ok(res[i].top10 > res[i - 1].top10, `top-10% share not increasing: ${msg}`);
      assert.ok(res[i].hit > res[i - 1].hit, `LRU ${slots} hit rate not increasing: ${msg}`);
    }
    assert.ok(res[2].top10 - res[0].top10 >= 0.08, `skew 1 adds under 8 points: ${msg}`);
    assert.ok(res[2].hit - res[0].hit >= 0.1, `skew 1 adds under 10 points of hits: ${msg}`);
  });
}

Deno.test("real: sampled decode of a shallow 128-expert top-8 model hits about 67% at LRU 64", async () => {
  using t = tmp();
  const hit: number[] = [];
  for (const s of [0, REAL_ROUTER_SKEW]) {
    const p = `${t.dir}/${s}.gguf`;
    writeSyntheticModel(p, decodeOpts("qwen3moe", s));
    const tr = await recordDecodeTrace(p, { tokens: 512, prompts: 4, threads: 1 });
    hit.push(hitCurve(tr, [64], 32)[0].hitRate);
  }
  assert.ok(hit[0] < 0.6, `uniform routers hit ${hit[0]} at 64 (about 0.54 expected)`);
  assert.ok(hit[1] > 0.62 && hit[1] < 0.72, `real skew hits ${hit[1]} at 64, want about 0.67`);
});
