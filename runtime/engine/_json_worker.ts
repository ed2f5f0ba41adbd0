/**
 * Worker entry of the server's body parser (runtime/server/body.ts): decodes, parses and
 * validates (with the named request schema) one large JSON request body it is sent (the
 * buffer is transferred, not copied), and posts the value back packed (runtime/server/pack.ts),
 * so that tens of megabytes never block the thread that answers everyone else.
 */
import { wireError } from "../server/errors.ts";
import { packLarge } from "../server/pack.ts";
import { BODY_SCHEMAS, type BodySchemaName, parseBody } from "../server/schemas.ts";

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown, transfer?: Transferable[]): void;
};
scope.onmessage = (e: MessageEvent) => {
  const m = e.data as { buf: ArrayBuffer; schema?: BodySchemaName };
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(m.buf));
  } catch (err) {
    scope.postMessage({ syntax: (err as Error)?.message ?? String(err) });
    return;
  }
  try {
    if (m.schema) value = parseBody(BODY_SCHEMAS[m.schema], value);
    const packed = packLarge(value);
    scope.postMessage({ packed }, [packed.bytes, packed.offsets]);
  } catch (err) {
    scope.postMessage({ error: wireError(err) });
  }
};
