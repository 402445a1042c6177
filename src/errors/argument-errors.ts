import { ErrorCode, errorNumberOf } from './codes.js';

/**
 * An argument or option of the wrong type (`launch(null)`, an options bag that is not an object, a spec field that
 * is not a function). A `TypeError` named `TypeError`, as the ecosystem expects (Node's own argument errors are the
 * same: a built-in name, a `code`), with the library's code: `instanceof RingKernelError` holds too.
 */
export class ArgumentTypeError extends TypeError {
  /** Always {@link ErrorCode.InvalidArgument}. */
  readonly code = ErrorCode.InvalidArgument;
  /** The argument or option that was wrong, e.g. `options.queueCapacity`. */
  readonly argument: string;

  constructor(argument: string, message: string) {
    super(message);
    this.argument = argument;
  }

  /** The numeric code shared with C and CUDA. */
  get errno(): number {
    return errorNumberOf(this.code);
  }
}

/**
 * An argument or option outside its allowed values (a priority past 255, a NaN or negative timeout, a queue
 * capacity of 0). A `RangeError` named `RangeError`, as the ecosystem expects, with the library's code:
 * `instanceof RingKernelError` holds too.
 */
export class InvalidArgumentError extends RangeError {
  /** Always {@link ErrorCode.InvalidArgument}. */
  readonly code = ErrorCode.InvalidArgument;
  /** The argument or option that was wrong, e.g. `options.timeout`. */
  readonly argument: string;

  constructor(argument: string, message: string) {
    super(message);
    this.argument = argument;
  }

  /** The numeric code shared with C and CUDA. */
  get errno(): number {
    return errorNumberOf(this.code);
  }
}

/** Whether `value` is one of the two argument errors (for `RingKernelError`'s `instanceof`). */
export function isArgumentError(value: unknown): value is ArgumentTypeError | InvalidArgumentError {
  return value instanceof ArgumentTypeError || value instanceof InvalidArgumentError;
}

/** A value as an error message shows it: strings quoted (so `'5'` is not mistaken for 5), objects by kind. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value instanceof ArrayBuffer) return `an ArrayBuffer of ${value.byteLength} bytes`;
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}
