/**
 * The demo's kernels, in a module of their own: the runtime's workers import this module to run them.
 */
import { defineKernel, defineMessage } from '../src/index.js';

/** One sensor reading. */
export const Reading = defineMessage('demo.Reading', { sensor: 'u16', seq: 'u32', celsius: 'f32' });

/** Statistics over one window of a sensor's readings. */
export const WindowStats = defineMessage('demo.WindowStats', {
  sensor: 'u16',
  window: 'u32',
  count: 'u32',
  mean: 'f64',
  stddev: 'f64',
  min: 'f32',
  max: 'f32',
});

/** The verdict on one window: 0 normal, 1 warm, 2 overheating. */
export const Alert = defineMessage('demo.Alert', { sensor: 'u16', window: 'u32', level: 'u8', mean: 'f64' });

/** Readings per window. */
export const WINDOW = 64;

/** Windowed statistics per sensor (Welford's online mean and variance); emits one WindowStats per full window. */
export const Stats = defineKernel({
  id: 'demo.stats',
  input: Reading,
  output: WindowStats,
  init: () => new Map<number, { window: number; n: number; mean: number; m2: number; min: number; max: number }>(),
  cpu: (reading, ctx) => {
    let acc = ctx.state.get(reading.sensor);
    if (acc === undefined) {
      acc = { window: 0, n: 0, mean: 0, m2: 0, min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY };
      ctx.state.set(reading.sensor, acc);
    }
    const x = reading.celsius;
    acc.n += 1;
    const delta = x - acc.mean;
    acc.mean += delta / acc.n;
    acc.m2 += delta * (x - acc.mean);
    if (x < acc.min) acc.min = x;
    if (x > acc.max) acc.max = x;
    if (acc.n === WINDOW) {
      ctx.emit({
        sensor: reading.sensor,
        window: acc.window,
        count: acc.n,
        mean: acc.mean,
        stddev: Math.sqrt(acc.m2 / (acc.n - 1)),
        min: acc.min,
        max: acc.max,
      });
      acc.window += 1;
      acc.n = 0;
      acc.mean = 0;
      acc.m2 = 0;
      acc.min = Number.POSITIVE_INFINITY;
      acc.max = Number.NEGATIVE_INFINITY;
    }
    return undefined;
  },
});

/** Sensor id of the latency probes the demo sends the alerts kernel directly (not a real sensor). */
export const PROBE_SENSOR = 0xffff;

/**
 * Threshold alerts over window statistics: a hot window (mean above 75 °C or a reading above 95 °C) becomes an
 * Alert output; warm and normal windows produce nothing. A call (the demo's latency probe) is always answered
 * with its verdict. A window whose mean is not a number — a sensor sent garbage — makes the handler throw: the
 * demo launches this kernel with `onHandlerError: 'fail'` under a supervisor, which restarts it.
 */
export const Alerts = defineKernel({
  id: 'demo.alerts',
  input: WindowStats,
  output: Alert,
  cpu: (stats) => {
    if (Number.isNaN(stats.mean)) throw new RangeError(`sensor ${stats.sensor} sent a reading that is not a number`);
    const level = stats.mean > 75 || stats.max > 95 ? 2 : stats.mean > 52 ? 1 : 0;
    const verdict = { sensor: stats.sensor, window: stats.window, level, mean: stats.mean };
    return stats.sensor === PROBE_SENSOR || level === 2 ? verdict : undefined;
  },
});
