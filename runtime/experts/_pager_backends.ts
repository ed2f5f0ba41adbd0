/**
 * Test helper: runs a pager test once per backend (threads, the reference, and io_uring).
 * The io_uring leg is registered as ignored, with the reason printed once, where io_uring
 * cannot be set up (qemu-user, seccomp, io_uring_disabled, kernels before 5.6, macOS).
 */
import { KernelError } from "../../ffi/mod.ts";
import { Pager } from "./pager.ts";

/** The concrete backends a test runs against. */
export const BACKENDS = ["threads", "uring"] as const;

let probed: { why?: string } | undefined;

/** Why io_uring is unavailable here, or undefined where a uring pager starts. */
export function uringUnavailable(): string | undefined {
  if (!probed) {
    try {
      Pager.create(1, "uring").close();
      probed = {};
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      probed = { why: `io_uring unavailable here (errno ${e.errno})` };
      console.log(`  pager tests: ${probed.why}: the uring legs are skipped`);
    }
  }
  return probed.why;
}

/** Register `fn` as `pager[<backend>]: <name>` for each backend. */
export function backendTest(
  name: string,
  fn: (backend: (typeof BACKENDS)[number]) => void | Promise<void>,
): void {
  for (const backend of BACKENDS) {
    Deno.test({
      name: `pager[${backend}]: ${name}`,
      ignore: backend === "uring" && uringUnavailable() !== undefined,
      fn: () => fn(backend),
    });
  }
}
