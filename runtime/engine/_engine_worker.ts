/**
 * Worker entry of the engine (see engine.ts): serves the engine protocol on this worker's
 * global scope.
 */
import { type EnginePort, serveEngine } from "./engine.ts";

serveEngine(globalThis as unknown as EnginePort);
