/**
 * A placeholder forward pass for architectures whose specs (config, tensors) exist before
 * their forward pass does (qwen35moe, qwen3next on the `q35` branch): it throws a clear error
 * instead of computing anything. TEMPORARY: the architecture's real forward replaces it.
 *
 * @module
 */

import type { LayerForward } from "./step.ts";
import { UnsupportedForwardError } from "./errors.ts";

/** A {@link LayerForward} that throws {@link UnsupportedForwardError} for `arch`. */
export function forwardPending(arch: string): LayerForward {
  return () => {
    throw new UnsupportedForwardError(arch);
  };
}
