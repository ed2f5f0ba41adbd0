/**
 * A sequence's recurrent state (hybrid models: Qwen3.5's Gated DeltaNet layers): per
 * recurrent layer, the convolution state (the last kernel − 1 inputs per channel) and the
 * recurrent state (per value head a key × value matrix), f32, of fixed size whatever the
 * context. Unlike a KV cache it cannot be cut back to a shorter prefix; {@link Checkpoints}
 * keep copies at chosen positions so a conversation that extends a cached prefix resumes
 * from the latest copy inside it instead of re-reading the whole prompt.
 *
 * @module
 */
import type { Ptr } from "../../ffi/mod.ts";
import { NativeBuffer } from "../../ffi/memory.ts";
import type { RecurrentLayout } from "../models/config.ts";

/** The conv and recurrent states of every recurrent layer of one sequence. */
export class RecurrentState {
  readonly layout: RecurrentLayout;
  /** One block: per recurrent layer [conv (convFloats) | state (stateFloats)]. */
  readonly #buf: NativeBuffer;
  readonly #slot: Int32Array;
  readonly #layerFloats: number;

  /** Zeroed states for the recurrent layers of `layout`. */
  constructor(layout: RecurrentLayout) {
    this.layout = layout;
    this.#slot = new Int32Array(layout.layers.length).fill(-1);
    let n = 0;
    for (const [i, r] of layout.layers.entries()) if (r) this.#slot[i] = n++;
    this.#layerFloats = layout.convFloats + layout.stateFloats;
    this.#buf = new NativeBuffer(Math.max(1, n * this.#layerFloats * 4));
  }

  /** Bytes held. */
  get byteLength(): number {
    return this.#buf.byteLength;
  }

  #at(li: number): number {
    const s = this.#slot[li];
    if (s === undefined || s < 0) throw new RangeError(`layer ${li} is not recurrent`);
    return s * this.#layerFloats * 4;
  }

  /** Layer `li`'s convolution state. */
  conv(li: number): Ptr {
    return this.#buf.ptrAt(this.#at(li));
  }

  /** Layer `li`'s recurrent state. */
  state(li: number): Ptr {
    return this.#buf.ptrAt(this.#at(li) + this.layout.convFloats * 4);
  }

  /** Back to the state before any token. */
  reset(): void {
    this.#buf.u8.fill(0);
  }

  /** A copy of every layer's state. */
  snapshot(): Uint8Array {
    return this.#buf.u8.slice();
  }

  /** Restore a {@link snapshot}. */
  restore(s: Uint8Array): void {
    if (s.byteLength !== this.#buf.byteLength) {
      throw new RangeError(`a snapshot of ${s.byteLength} bytes for a state of ${this.byteLength}`);
    }
    this.#buf.u8.set(s);
  }

  /** Release the memory. */
  free(): void {
    this.#buf.free();
  }
}

/** A saved state: the tokens it follows and the state after them. */
interface Checkpoint {
  readonly tokens: readonly number[];
  readonly state: Uint8Array;
  used: number;
}

/** Checkpoint copies a hybrid model's session keeps unless told otherwise. */
export const DEFAULT_CHECKPOINTS = 4;

/**
 * State copies of one sequence at chosen positions, under a byte budget (oldest use evicted
 * first). A copy is taken only as the state after an exact token prefix and is restored only
 * for a sequence whose tokens start with that prefix.
 */
export class Checkpoints {
  /** Most bytes the copies may hold. */
  budgetBytes: number;
  readonly #list: Checkpoint[] = [];
  #clock = 0;

  /** Checkpoints under `budgetBytes`. */
  constructor(budgetBytes: number) {
    this.budgetBytes = budgetBytes;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#list.reduce((n, c) => n + c.state.byteLength, 0);
  }

  /** How many copies are held. */
  get size(): number {
    return this.#list.length;
  }

  /** Save `state` as the state after `tokens` (replacing a copy at the same position). */
  save(tokens: readonly number[], state: RecurrentState): void {
    const bytes = state.byteLength;
    if (bytes > this.budgetBytes || tokens.length === 0) return;
    const i = this.#list.findIndex((c) => c.tokens.length === tokens.length);
    if (i >= 0) this.#list.splice(i, 1);
    while (this.bytes + bytes > this.budgetBytes) {
      let lru = 0;
      for (let j = 1; j < this.#list.length; j++) {
        if (this.#list[j].used < this.#list[lru].used) lru = j;
      }
      this.#list.splice(lru, 1);
    }
    this.#list.push({ tokens: tokens.slice(), state: state.snapshot(), used: ++this.#clock });
  }

  /**
   * Restore into `state` the latest copy whose tokens are a prefix of `tokens` and no longer
   * than `limit`; returns its length, or 0 (state reset) when there is none.
   */
  restore(tokens: readonly number[], limit: number, state: RecurrentState): number {
    let best: Checkpoint | null = null;
    for (const c of this.#list) {
      const n = c.tokens.length;
      if (n > limit || (best && n <= best.tokens.length)) continue;
      let same = true;
      for (let i = 0; i < n && same; i++) same = c.tokens[i] === tokens[i];
      if (same) best = c;
    }
    if (!best) {
      state.reset();
      return 0;
    }
    best.used = ++this.#clock;
    state.restore(best.state);
    return best.tokens.length;
  }

  /** Drop every copy. */
  clear(): void {
    this.#list.length = 0;
  }
}
