/**
 * A sequence's KV cache: K and V of every attention layer, f16, position-major
 * (row j holds position j; a row is nHeadKv × head size). Each is one block of
 * (attention layers, nCtx, row) values; a large block is a lazy mapping (spool_alloc), so
 * only the positions used take memory. Recurrent layers (hybrids) keep no KV.
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

  /** Per layer, its index among the KV blocks (-1: a recurrent layer, none). */
  readonly #slot: Int32Array;
  /** KV blocks (attention layers). */
  readonly #blocks: number;

  /**
   * KV for `nCtx` positions of the layers marked in `layers` (default: all `nLayer`) laid
   * out as `layout`.
   */
  constructor(layout: KVLayout, nLayer: number, nCtx: number, layers?: readonly boolean[]) {
    this.nCtx = nCtx;
    this.#slot = new Int32Array(nLayer).fill(-1);
    let n = 0;
    for (let i = 0; i < nLayer; i++) if (layers?.[i] ?? true) this.#slot[i] = n++;
    this.kRow = layout.k;
    this.vRow = layout.vInK > 0 ? 0 : layout.v;
    this.vInK = layout.vInK;
    this.#kLayer = nCtx * this.kRow * 2;
    this.#vLayer = nCtx * this.vRow * 2;
    this.#blocks = n;
    this.#k = new NativeBuffer(Math.max(1, n * this.#kLayer), { align: 4096 });
    this.#v = new NativeBuffer(Math.max(1, n * this.#vLayer), { align: 4096 });
  }

  #index(li: number): number {
    const i = this.#slot[li];
    if (i === undefined || i < 0) throw new RangeError(`layer ${li} keeps no KV cache`);
    return i;
  }

  /** Layer `li`'s K row at position `pos`. */
  k(li: number, pos = 0): Ptr {
    return this.#k.ptrAt(this.#index(li) * this.#kLayer + pos * this.kRow * 2);
  }

  /** Layer `li`'s V row at position `pos` (inside the K row when V is a view of K). */
  v(li: number, pos = 0): Ptr {
    if (this.vInK > 0) return this.k(li, pos);
    return this.#v.ptrAt(this.#index(li) * this.#vLayer + pos * this.vRow * 2);
  }

  /**
   * Copy positions [0, n) of every layer from `src` (a cache of the same layout), e.g. to
   * fork a sequence: several samples of one prompt share its prefill.
   */
  copyFrom(src: KVCache, n: number): void {
    if (src.kRow !== this.kRow || src.vRow !== this.vRow || src.#blocks !== this.#blocks) {
      throw new Error("KVCache.copyFrom: the caches have different layouts");
    }
    if (n > this.nCtx || n > src.nCtx) {
      throw new RangeError(`KVCache.copyFrom: ${n} positions do not fit (${this.nCtx})`);
    }
    for (let i = 0; i < this.#blocks; i++) {
      const k = src.#k.u8.subarray(i * src.#kLayer, i * src.#kLayer + n * this.kRow * 2);
      this.#k.u8.set(k, i * this.#kLayer);
      if (this.vRow === 0) continue;
      const v = src.#v.u8.subarray(i * src.#vLayer, i * src.#vLayer + n * this.vRow * 2);
      this.#v.u8.set(v, i * this.#vLayer);
    }
  }

  /** Release the memory. */
  free(): void {
    this.#k.free();
    this.#v.free();
  }
}
