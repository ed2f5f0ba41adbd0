/**
 * The small qwen3moe model the scheduler tests run on (Q8_0, 3 layers, 16 experts, top-4),
 * written once under test/fixtures/engine/.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { ensureSyntheticModel } from "../models/synth.ts";

const FIXTURE = fileURLToPath(
  new URL("../../test/fixtures/engine/qwen3moe-q8-fork.gguf", import.meta.url),
);

/** Path of the fixture, written when missing. */
export function schedulerFixture(): string {
  return ensureSyntheticModel(FIXTURE, {
    arch: "qwen3moe",
    preset: "tiny",
    types: "Q8_0",
    seed: 43,
    dims: { nLayer: 3, nExpert: 16, nExpertUsed: 4 },
  });
}
