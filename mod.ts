/**
 * spool — a local inference runtime for Mixture-of-Experts language models.
 *
 * This module is the public library API. What exists today: reading, writing and
 * quantizing GGUF files, inspecting what a model costs per token, the architecture
 * registry with a random-weight model generator, and the native kernels behind one C ABI.
 *
 * ```ts
 * import { inspectGGUF, readGGUF } from "./mod.ts";
 * const report = inspectGGUF(readGGUF("model.gguf"));
 * console.log(report.denseBytes, report.expertBytes, report.bytesPerToken);
 * ```
 *
 * @module
 */
export * from "./runtime/gguf/mod.ts";
export { formatBytes, formatReport, inspectGGUF } from "./runtime/inspect.ts";
export type { InspectReport, InspectSource, TypeTotal } from "./runtime/inspect.ts";
export { check, Impl, KernelError, KernelLoadError, native, Status } from "./ffi/mod.ts";
export type { Native, Ptr } from "./ffi/mod.ts";
