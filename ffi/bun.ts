/**
 * Bun adapter: opens libspool with `bun:ffi` from the shared symbol table.
 * `bun:ffi` is reached through `import.meta.require`, which only Bun has, so Deno never
 * tries to resolve it and both runtimes can import this file.
 */
import type { NativeType } from "./symbols.ts";
import { symbols } from "./symbols.ts";
import type { Native, NativeSymbols, Ptr } from "./types.ts";

const BUN_TYPE: Record<NativeType, string> = {
  i32: "i32",
  u32: "u32",
  f32: "f32",
  f64: "f64",
  ptr: "ptr",
  void: "void",
};

interface BunFFI {
  dlopen(
    path: string,
    defs: Record<string, { args: string[]; returns: string }>,
  ): { symbols: Record<string, unknown>; close(): void };
  ptr(view: ArrayBufferView): number;
  toArrayBuffer(p: number, byteOffset: number, byteLength: number): ArrayBuffer;
}

/** Open the library at `path` under Bun. */
export function openBun(path: string): Native {
  const { dlopen, ptr: bunPtr, toArrayBuffer } =
    (import.meta as unknown as { require(id: string): BunFFI }).require("bun:ffi");
  const defs: Record<string, { args: string[]; returns: string }> = {};
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
        p = bunPtr(view) as unknown as Ptr;
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
