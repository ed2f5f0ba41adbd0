/**
 * Deno adapter: opens libspool with `Deno.dlopen` from the shared symbol table.
 */
import type { NativeType } from "./symbols.ts";
import { symbols } from "./symbols.ts";
import type { Native, NativeSymbols, Ptr } from "./types.ts";

const DENO_TYPE: Record<NativeType, Deno.NativeResultType> = {
  i32: "i32",
  u32: "u32",
  f32: "f32",
  f64: "f64",
  ptr: "pointer",
  void: "void",
};

type DenoSymbolsDef = Record<string, Deno.ForeignFunction>;

/** Open the library at `path` under Deno. */
export function openDeno(path: string): Native {
  const defs: DenoSymbolsDef = {};
  for (const [name, def] of Object.entries(symbols)) {
    defs[name] = {
      parameters: def.parameters.map((t) => DENO_TYPE[t] as Deno.NativeType),
      result: DENO_TYPE[def.result],
    };
  }
  const lib = Deno.dlopen(path, defs);
  const cache = new WeakMap<ArrayBufferView, Ptr>();
  return {
    runtime: "deno",
    path,
    sym: lib.symbols as unknown as NativeSymbols,
    ptr(view: ArrayBufferView): Ptr {
      let p = cache.get(view);
      if (p === undefined) {
        p = Deno.UnsafePointer.of(view as Uint8Array<ArrayBuffer>) as unknown as Ptr;
        cache.set(view, p);
      }
      return p;
    },
    offset(p: Ptr, bytes: number): Ptr {
      if (bytes === 0) return p;
      return Deno.UnsafePointer.offset(p as unknown as Deno.PointerObject, bytes) as unknown as Ptr;
    },
    buffer(p: Ptr, byteLength: number): ArrayBuffer {
      return Deno.UnsafePointerView.getArrayBuffer(
        p as unknown as Deno.PointerObject,
        byteLength,
      );
    },
    address(p: Ptr): number {
      return Number(Deno.UnsafePointer.value(p as unknown as Deno.PointerValue));
    },
    close() {
      lib.close();
    },
  };
}
