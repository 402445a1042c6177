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

/** Checks a priority a caller gave. @throws {RangeError} unless an integer in 0…255. */
export function checkPriority(priority: number): number {
  if ((priority & 0xff) !== priority) {
    throw new RangeError(`priority must be an integer in [0, 255], got ${priority}`);
  }
  return priority;
}
