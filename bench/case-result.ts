/** What every benchmark case reports, and how latency samples become percentiles: one definition for all cases. */

/** One result row, as bench/run.ts prints it and stores it in the JSON. */
export interface CaseResult {
  name: string;
  msgsPerSec: number;
  p50us: number;
  p99us: number;
  /** For cases that are not a message rate (idle1000.*, migrate.*): the figure, in `unit`. */
  value?: number;
  unit?: string;
}

/** Two decimals. */
export const round = (x: number): number => Math.round(x * 100) / 100;

/** p50 and p99 of latency samples in µs (sorts `samples` in place). */
export function percentiles(samples: number[]): { p50us: number; p99us: number } {
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] as number;
  return { p50us: round(at(0.5)), p99us: round(at(0.99)) };
}

/** The median of `values` (the mean of the middle two for an even count); `values` is not changed. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}
