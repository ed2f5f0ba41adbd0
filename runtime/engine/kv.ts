/**
 * A sequence's KV cache: K and V of every layer, f16, position-major
 * (row j holds position j; a row is nHeadKv × head size). Each is one block of
 * (nLayer, nCtx, row) values; a large block is a lazy mapping (spool_alloc), so only the
 * positions used take memory.
 *
 * @module
 */
import type { Ptr } from "../../ffi/mod.ts";
import { NativeBuffer } from "../../ffi/memory.ts";
import type { KVLayout } from "../models/config.ts";

/** f16 K/V storage of one sequence. */
export class KVCache {
  /** Positions it holds. */
  readonly nCtx: number;
  /** Values per K row and per V row. */
  readonly kRow: number;
  readonly vRow: number;
  readonly #k: NativeBuffer;
  readonly #v: NativeBuffer;
  /** Bytes of one layer's K (V). */
  readonly #kLayer: number;
  readonly #vLayer: number;

  /** V is the first `vInK` values of each K row (0: V stored apart). */
  readonly vInK: number;

  /** KV for `nCtx` positions of `nLayer` layers laid out as `layout`. */
  constructor(layout: KVLayout, nLayer: number, nCtx: number) {
    this.nCtx = nCtx;
    this.kRow = layout.k;
    this.vRow = layout.vInK > 0 ? 0 : layout.v;
    this.vInK = layout.vInK;
    this.#kLayer = nCtx * this.kRow * 2;
    this.#vLayer = nCtx * this.vRow * 2;
    this.#k = new NativeBuffer(nLayer * this.#kLayer, { align: 4096 });
    this.#v = new NativeBuffer(Math.max(1, nLayer * this.#vLayer), { align: 4096 });
  }

  /** Layer `li`'s K row at position `pos`. */
  k(li: number, pos = 0): Ptr {
    return this.#k.ptrAt(li * this.#kLayer + pos * this.kRow * 2);
  }

  /** Layer `li`'s V row at position `pos` (inside the K row when V is a view of K). */
  v(li: number, pos = 0): Ptr {
    if (this.vInK > 0) return this.k(li, pos);
    return this.#v.ptrAt(li * this.#vLayer + pos * this.vRow * 2);
  }

  /** Release the memory. */
  free(): void {
    this.#k.free();
    this.#v.free();
  }
}
