/**
 * The clock span records are stamped with: ns since a shared epoch (whole Unix ms, chosen by the host when it
 * creates the telemetry rings). Each thread reads its own monotonic `performance.now()` and adds the distance
 * between its own time origin and the epoch, computed once: the small offset keeps sub-µs precision that a raw
 * Unix-ns float (past 2^53) would lose, and threads agree to within the precision of their time origins (µs).
 */
export class TelemetryClock {
  /** Unix ms of time 0. */
  readonly epochUnixMs: number;
  readonly #offsetMs: number;

  constructor(epochUnixMs: number) {
    this.epochUnixMs = epochUnixMs;
    this.#offsetMs = performance.timeOrigin - epochUnixMs;
  }

  /** Now, in whole ns since the epoch. */
  nowNs(): number {
    return Math.round((this.#offsetMs + performance.now()) * 1e6);
  }

  /** A whole-ms epoch for new rings: this thread's time origin, rounded down. */
  static epochNow(): number {
    return Math.floor(performance.timeOrigin);
  }
}

/** ns since `epochUnixMs` as OpenTelemetry's HrTime `[seconds, nanoseconds]` since the Unix epoch, exactly. */
export function epochNsToHrTime(epochUnixMs: number, ns: number): [number, number] {
  const epochSeconds = Math.floor(epochUnixMs / 1000);
  const total = (epochUnixMs - epochSeconds * 1000) * 1e6 + ns;
  const seconds = Math.floor(total / 1e9);
  return [epochSeconds + seconds, total - seconds * 1e9];
}
