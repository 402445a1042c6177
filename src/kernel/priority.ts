import { describeValue, InvalidArgumentError } from '../errors/argument-errors.js';

/**
 * Message priorities (the envelope's u8 `priority`, 0 lowest … 255 highest), named for load shedding: at each
 * degradation level, messages below a priority are refused (see `DegradationManager`). Any integer in 0…255 is
 * valid; these are the landmarks.
 *
 * @example
 * handle.trySend(reading, Priority.Low); // shed first under load
 * await handle.call(request, { priority: Priority.Critical }); // admitted at every level
 */
export const Priority = {
  /** Shed first: bulk, deferrable work. */
  Background: 0,
  Low: 64,
  /** What a message gets when its sender says nothing. */
  Normal: 128,
  High: 192,
  /** Admitted even at the Critical level. */
  Critical: 255,
} as const;

/** Whether `priority` is one a message can carry: an integer in 0…255. One compare (the send path's). */
export function isPriority(priority: unknown): boolean {
  return ((priority as number) & 0xff) === priority;
}

/**
 * Checks a priority a caller gave.
 * @throws {InvalidArgumentError} (a `RangeError`, code RK_INVALID_ARGUMENT) unless an integer in 0…255.
 */
export function checkPriority(priority: unknown, argument = 'priority'): number {
  if (!isPriority(priority)) throw invalidPriority(priority, argument);
  return priority as number;
}

/** The error for a priority that is not an integer in 0…255, naming the argument. */
export function invalidPriority(priority: unknown, argument = 'priority'): InvalidArgumentError {
  return new InvalidArgumentError(
    argument,
    `${argument} must be an integer in [0, 255], got ${describeValue(priority)}`,
  );
}
