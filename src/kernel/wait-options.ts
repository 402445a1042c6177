import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../errors/argument-errors.js';

/**
 * The longest finite wait, in ms: what a Node timer can hold (2³¹−1 ms, about 24.8 days). A longer one would fire
 * after 1 ms (with a `TimeoutOverflowWarning`), so it is refused; `Infinity` says "no limit".
 */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * Checks a wait's timeout: a number of ms in [0, {@link MAX_TIMEOUT_MS}], or `Infinity` for no limit.
 * @throws {ArgumentTypeError} when it is not a number; {@link InvalidArgumentError} when NaN, negative, or finite
 * past {@link MAX_TIMEOUT_MS} (both code RK_INVALID_ARGUMENT, naming `argument`).
 */
export function checkTimeout(value: unknown, argument: string): number {
  if (typeof value !== 'number') {
    throw new ArgumentTypeError(argument, `${argument} must be a number of ms, got ${describeValue(value)}`);
  }
  if (!(value >= 0) || (value > MAX_TIMEOUT_MS && value !== Number.POSITIVE_INFINITY)) {
    throw new InvalidArgumentError(
      argument,
      `${argument} must be a number of ms in [0, ${MAX_TIMEOUT_MS}] or Infinity (no limit), got ${value}`,
    );
  }
  return value;
}

/** Checks an optional `AbortSignal`. @throws {ArgumentTypeError} when it is something else. */
export function checkSignal(value: unknown, argument: string): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value;
  throw new ArgumentTypeError(argument, `${argument} must be an AbortSignal, got ${describeValue(value)}`);
}

/** Checks an options bag: `undefined` or an object. @throws {ArgumentTypeError} */
export function checkOptions<T extends object>(value: T | undefined, argument: string): T {
  if (value === undefined) return {} as T;
  if (typeof value !== 'object' || value === null) {
    throw new ArgumentTypeError(argument, `${argument} must be an object, got ${describeValue(value)}`);
  }
  return value;
}
