/** inspectGGUF: dense, expert and NextN/MTP bytes of a file, from its tensors. */
import { deepStrictEqual, ok } from "node:assert/strict";
import { readGGUF } from "./gguf/reader.ts";
import { inspectGGUF } from "./inspect.ts";
import { writeSyntheticModel } from "./models/synth.ts";

Deno.test("inspect: NextN/MTP blocks are neither dense nor experts, and not read per token", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/glm.gguf`;
    writeSyntheticModel(path, { arch: "glm4moe", preset: "tiny", types: "Q8_0", seed: 3 });
    const g = readGGUF(path);
    const r = inspectGGUF(g, path);
    const blocks = g.kv.get("glm4moe.block_count") as number;
    const nextn = g.kv.get("glm4moe.nextn_predict_layers") as number;
    ok(nextn > 0, "the tiny glm4moe fixture has a NextN block");
    let mtp = 0, experts = 0, total = 0;
    for (const t of g.tensors) {
      total += t.nbytes;
      const layer = /^blk\.(\d+)\./.exec(t.name);
      if (layer && Number(layer[1]) >= blocks - nextn) mtp += t.nbytes;
      else if (/_exps\.(weight|bias)$/.test(t.name)) experts += t.nbytes;
    }
    deepStrictEqual(
      { mtp: r.mtpBytes, experts: r.expertBytes, dense: r.denseBytes },
      { mtp, experts, dense: total - mtp - experts },
    );
    // one MoE trunk layer (layer 0 is dense), none counted from the MTP block
    deepStrictEqual(r.moeLayers, 1);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
