/**
 * Bun adapter: opens libspool with `bun:ffi` from the shared symbol table.
 * `bun:ffi` is reached through `import.meta.require`, which only Bun has, so Deno never
 * tries to resolve it and both runtimes can import this file.
 */
import type { NativeType } from "./symbols.ts";
import { symbols } from "./symbols.ts";
import type { Native, NativeSymbols, Ptr } from "./types.ts";

/** bun:ffi's names for the runtime-neutral types (each one of bun-types' `FFITypeOrString`). */
type BunTypeName = "i32" | "u32" | "f32" | "f64" | "ptr" | "void";

const BUN_TYPE: Record<NativeType, BunTypeName> = {
  i32: "i32",
  u32: "u32",
  f32: "f32",
  f64: "f64",
  ptr: "ptr",
  void: "void",
};

/** The views bun:ffi's `ptr` takes (any ArrayBufferView at run time: these are all there are). */
type BunView =
  | DataView
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

/** The part of `bun:ffi` the adapter uses (test/bun/_ffi_types.ts checks it against bun-types). */
export interface BunFFI {
  dlopen(
    path: string,
    defs: Record<string, { args: BunTypeName[]; returns: BunTypeName }>,
  ): { symbols: Record<string, unknown>; close(): void };
  ptr(view: BunView): number;
  toArrayBuffer(p: number, byteOffset: number, byteLength: number): ArrayBuffer;
}

/** Open the library at `path` under Bun. */
export function openBun(path: string): Native {
  const { dlopen, ptr: bunPtr, toArrayBuffer } =
    (import.meta as unknown as { require(id: string): BunFFI }).require("bun:ffi");
  const defs: Record<string, { args: BunTypeName[]; returns: BunTypeName }> = {};
  for (const [name, def] of Object.entries(symbols)) {
    defs[name] = { args: def.parameters.map((t) => BUN_TYPE[t]), returns: BUN_TYPE[def.result] };
  }
  const lib = dlopen(path, defs);
  const cache = new WeakMap<ArrayBufferView, Ptr>();
  return {
    runtime: "bun",
    path,
    sym: lib.symbols as unknown as NativeSymbols,
    ptr(view: ArrayBufferView): Ptr {
      let p = cache.get(view);
      if (p === undefined) {
        p = bunPtr(view as BunView) as unknown as Ptr;
        cache.set(view, p);
      }
      return p;
    },
    offset(p: Ptr, bytes: number): Ptr {
      return ((p as unknown as number) + bytes) as unknown as Ptr;
    },
    buffer(p: Ptr, byteLength: number): ArrayBuffer {
      return toArrayBuffer(p as unknown as number, 0, byteLength);
    },
    address(p: Ptr): number {
      return (p as unknown as number) ?? 0;
    },
    close() {
      lib.close();
    },
  };
}
