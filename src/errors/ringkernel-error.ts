import { isArgumentError } from './argument-errors.js';
import { type ErrorCodeString, errorNumberOf } from './codes.js';

/**
 * The base of every error ringkernel throws or reports. `code` says what went wrong in a way a program can
 * branch on; `errno` is the same code as the number written into ControlBlocks and shared with C.
 *
 * @example
 * try {
 *   producer.tryWriteBytes(huge);
 * } catch (error) {
 *   if (error instanceof RingKernelError && error.code === ErrorCode.FrameTooLarge) shrink();
 * }
 */
export class RingKernelError extends Error {
  /** The machine-readable code, one of {@link ErrorCode}. */
  readonly code: ErrorCodeString;

  constructor(code: ErrorCodeString, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /**
   * `error instanceof RingKernelError` holds for every error the library raises: also for its argument errors,
   * which extend `TypeError` / `RangeError` instead (what callers of a JavaScript API expect to catch). A
   * subclass keeps the ordinary test.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class `instanceof` asks about: this one or a subclass.
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    // biome-ignore lint/complexity/noThisInStatic: only the base class also answers for the argument errors.
    return this === RingKernelError && isArgumentError(value);
  }

  /** The numeric code shared with C and CUDA (`RK_E_*`). */
  get errno(): number {
    return errorNumberOf(this.code);
  }
}
