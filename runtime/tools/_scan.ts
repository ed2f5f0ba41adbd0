/**
 * Helpers of the streaming output parsers: marker search with hold-back, and a scanner that
 * finds where a JSON value ends in a stream.
 *
 * @module
 */

/** The earliest occurrence of any marker in `buf` from `from`: [index, marker] or null. */
export function findMarker(
  buf: string,
  markers: readonly string[],
  from = 0,
): [number, string] | null {
  let best: [number, string] | null = null;
  for (const m of markers) {
    const i = buf.indexOf(m, from);
    if (i >= 0 && (best === null || i < best[0] || (i === best[0] && m.length > best[1].length))) {
      best = [i, m];
    }
  }
  return best;
}

/** Length of the longest suffix of `buf` that is a proper prefix of some marker. */
export function heldBack(buf: string, markers: readonly string[]): number {
  let best = 0;
  for (const m of markers) {
    const max = Math.min(m.length - 1, buf.length);
    for (let n = max; n > best; n--) {
      if (buf.endsWith(m.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}

/**
 * Finds the end of one JSON value in streamed text. Leading whitespace is skipped (and not
 * part of the value); objects, arrays and strings end at their closing character;
 * a bare number or literal ends before the first delimiter, or at {@link finish}.
 */
export class JsonScanner {
  #depth = 0;
  #inStr = false;
  #esc = false;
  #started = false;
  #kind: "container" | "string" | "bare" | null = null;
  /** The value's text so far. */
  text = "";
  /** Whether the value is complete. */
  done = false;
  /** The first character of the value ("" before it). */
  get first(): string {
    return this.text[0] ?? "";
  }

  /**
   * Feeds `s`; returns how many characters of `s` were consumed (leading whitespace and the
   * value); the rest, if any, follows the value.
   */
  feed(s: string): number {
    let i = 0;
    for (; i < s.length && !this.done; i++) {
      const c = s[i];
      if (!this.#started) {
        if (c === " " || c === "\n" || c === "\t" || c === "\r") continue;
        this.#started = true;
        this.#kind = c === "{" || c === "[" ? "container" : c === '"' ? "string" : "bare";
        this.text += c;
        if (this.#kind === "container") this.#depth = 1;
        if (this.#kind === "string") this.#inStr = true;
        continue;
      }
      if (this.#kind === "bare") {
        if (",}]<\n \t\r".includes(c)) {
          this.done = true;
          return i;
        }
        this.text += c;
        continue;
      }
      this.text += c;
      if (this.#inStr) {
        if (this.#esc) this.#esc = false;
        else if (c === "\\") this.#esc = true;
        else if (c === '"') {
          this.#inStr = false;
          if (this.#kind === "string") this.done = true;
        }
        continue;
      }
      if (c === '"') this.#inStr = true;
      else if (c === "{" || c === "[") this.#depth++;
      else if (c === "}" || c === "]") {
        if (--this.#depth === 0) this.done = true;
      }
    }
    return i;
  }

  /** Ends the stream: a bare value is complete; returns whether the value is complete. */
  finish(): boolean {
    if (this.#kind === "bare" && this.text.length > 0) this.done = true;
    return this.done;
  }
}

const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** `n` random alphanumeric characters (crypto RNG). */
export function randomAlnum(n: number): string {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  let s = "";
  for (const x of b) s += ALNUM[x % 62];
  return s;
}
