/**
 * Bad files of the newer families: a missing or misshapen tensor, or inconsistent
 * hyperparameters, give a ModelLoadError that names the tensor or the key — never a crash.
 */
import { ok, throws } from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { readGGUF } from "../gguf/reader.ts";
import { encodeGGUF, kvEntriesOf, type TensorWithData } from "../gguf/writer.ts";
import { writeSyntheticModel } from "../models/synth.ts";
import { ModelConfigError } from "../models/config.ts";
import { Model, ModelLoadError } from "./model.ts";

/** Rewrite `src` into `dst` with its tensors and metadata edited. */
function rewrite(
  src: string,
  dst: string,
  edit: {
    tensors?: (t: TensorWithData[]) => TensorWithData[];
    kv?: (kv: ReturnType<typeof kvEntriesOf>) => ReturnType<typeof kvEntriesOf>;
  },
): void {
  const g = readGGUF(src);
  const bytes = readFileSync(src);
  let tensors: TensorWithData[] = g.tensors.map((t) => ({
    name: t.name,
    type: t.type,
    shape: t.shape,
    data: bytes.subarray(t.absoluteOffset, t.absoluteOffset + t.nbytes),
  }));
  tensors = edit.tensors?.(tensors) ?? tensors;
  const kv = edit.kv?.(kvEntriesOf(g)) ?? kvEntriesOf(g);
  writeFileSync(dst, encodeGGUF({ kv, tensors }));
}

for (const arch of ["glm4moe", "minimax-m2", "deepseek2"]) {
  Deno.test(`${arch}: a bad file is a ModelLoadError naming the tensor or key`, () => {
    const dir = Deno.makeTempDirSync();
    try {
      const src = `${dir}/ok.gguf`, bad = `${dir}/bad.gguf`;
      writeSyntheticModel(src, { arch, preset: "tiny", types: "Q8_0", seed: 2 });
      Model.load(src, { threads: 1 }).close();
      // a missing tensor
      const gone = arch === "deepseek2" ? "blk.1.attn_k_b.weight" : "blk.1.ffn_up_exps.weight";
      rewrite(src, bad, { tensors: (ts) => ts.filter((t) => t.name !== gone) });
      throws(() => Model.load(bad, { threads: 1 }), (e: Error) => {
        ok(e instanceof ModelLoadError, String(e));
        ok(e.message.includes(`"${gone}"`) && e.message.includes("missing"), e.message);
        return true;
      });
      // a misshapen one: half its rows
      const odd = "blk.1.attn_output.weight";
      const half = (t: TensorWithData) => ({
        ...t,
        shape: [t.shape[0], t.shape[1] / 2],
        data: t.data!.subarray(0, t.data!.length / 2),
      });
      rewrite(src, bad, { tensors: (ts) => ts.map((t) => t.name === odd ? half(t) : t) });
      throws(() => Model.load(bad, { threads: 1 }), (e: Error) => {
        ok(e instanceof ModelLoadError && e.message.includes(`"${odd}"`), e.message);
        ok(e.message.includes("expected shape"), e.message);
        return true;
      });
      // inconsistent hyperparameters: more groups used than exist
      const key = `${arch}.expert_group_used_count`;
      rewrite(src, bad, {
        kv: (kv) => [
          ...kv.filter((e) => e.key !== key && e.key !== `${arch}.expert_group_count`),
          { key: `${arch}.expert_group_count`, value: 2, type: { type: 4 } },
          { key, value: 4, type: { type: 4 } },
        ],
      });
      throws(() => Model.load(bad, { threads: 1 }), (e: Error) => {
        ok(e instanceof ModelLoadError && e instanceof ModelConfigError, String(e));
        ok((e as ModelConfigError).key === key, `${(e as ModelConfigError).key}: ${e.message}`);
        return true;
      });
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}
