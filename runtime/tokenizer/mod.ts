/**
 * Tokenizers from GGUF metadata: byte-level BPE and SentencePiece with llama.cpp's exact
 * behaviour, special tokens, and (streaming) detokenization.
 *
 * @module
 */

export * from "./errors.ts";
export * from "./tokenizer.ts";
export * from "./detokenize.ts";
export {
  PreTokenizer,
  type PreTokenizerInfo,
  resolvePreTokenizer,
  SUPPORTED_PRE,
} from "./pretokenize.ts";
export { tokenizeMain } from "./cli.ts";
