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

  /** The numeric code shared with C and CUDA (`RK_E_*`). */
  get errno(): number {
    return errorNumberOf(this.code);
  }
}
