/**
 * Types shared by the FFI adapters.
 */
import type { NativeType, symbols } from "./symbols.ts";

declare const ptrBrand: unique symbol;
/**
 * An opaque native pointer: a `Deno.PointerObject` under Deno, a number under Bun. `null`
 * is the null pointer. Never do arithmetic on it directly; use {@link Native.offset}.
 */
export type Ptr = { readonly [ptrBrand]: true } | null;

/** JS type of a native value of type T. */
export type JsOf<T extends NativeType> = T extends "ptr" ? Ptr
  : T extends "void" ? void
  : number;

type JsArgs<P extends readonly NativeType[]> = { [I in keyof P]: JsOf<P[I]> };

/** The callable functions of the library, typed from the symbol table. */
export type NativeSymbols = {
  [K in keyof typeof symbols]: (
    ...args: JsArgs<(typeof symbols)[K]["parameters"]>
  ) => JsOf<(typeof symbols)[K]["result"]>;
};

/** What one runtime adapter provides. */
export interface Native {
  /** Which runtime loaded the library. */
  readonly runtime: "deno" | "bun";
  /** Path the library was opened from. */
  readonly path: string;
  /** The library's functions. */
  readonly sym: NativeSymbols;
  /** Pointer to the first byte of a typed array's view (cached per view object). */
  ptr(view: ArrayBufferView): Ptr;
  /** `p + bytes`. */
  offset(p: Ptr, bytes: number): Ptr;
  /** An ArrayBuffer over native memory [p, p+byteLength). Valid while the memory lives. */
  buffer(p: Ptr, byteLength: number): ArrayBuffer;
  /** Numeric address, for logging and equality only. */
  address(p: Ptr): number;
  /** Close the library. Quiesce first: no native thread may still run. */
  close(): void;
}
