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
