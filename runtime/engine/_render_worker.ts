/**
 * Worker entry of the server's render pool (runtime/server/render.ts): loads the model's tokenizer and chat
 * template once, then renders and tokenizes the jobs it is sent, one at a time.
 */
import {
  type PromptRenderer,
  rendererOf,
  type RenderJob,
  runJob,
  wireError,
} from "../server/render.ts";

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
};
let renderer: PromptRenderer | null = null;
let path = "";
scope.onmessage = (e: MessageEvent) => {
  const m = e.data as { init?: string; id?: number; job?: RenderJob };
  if (m.init !== undefined) {
    path = m.init;
    return;
  }
  try {
    renderer ??= rendererOf(path);
    scope.postMessage({ id: m.id, value: runJob(renderer, m.job!) });
  } catch (err) {
    scope.postMessage({ id: m.id, error: wireError(err) });
  }
};
