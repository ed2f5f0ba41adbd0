/**
 * The error of a model file spool cannot load: a tensor missing, misshapen or of the wrong
 * type ({@link ModelLoadError}), or metadata that does not describe a model it can build
 * (its subclass ModelConfigError, in _hparams.ts, which names the key).
 *
 * @module
 */

/** A model file that cannot be loaded; the message says what and where. */
export class ModelLoadError extends Error {
  /**
   * @param message what and where
   * @param options standard error options (`cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ModelLoadError";
  }
}

/**
 * An architecture whose config and tensors spool reads but whose forward pass is not
 * implemented yet (a placeholder in the arch's spec; the real forward replaces it).
 */
export class UnsupportedForwardError extends Error {
  /** The architecture. */
  readonly arch: string;

  /** @param arch GGUF architecture */
  constructor(arch: string) {
    super(`Model architecture "${arch}": forward pass not implemented yet`);
    this.name = "UnsupportedForwardError";
    this.arch = arch;
  }
}
