/**
 * Subcommands beyond `inspect`, each in its own module.
 */
import type { Command } from "./main.ts";

/** Subcommands registered by name. */
export const commands: Record<string, Command> = {};
