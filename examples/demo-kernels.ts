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

/** Threshold alerts over window statistics; answers every window with its verdict. */
export const Alerts = defineKernel({
  id: 'demo.alerts',
  input: WindowStats,
  output: Alert,
  cpu: (stats) => {
    const level = stats.mean > 75 || stats.max > 95 ? 2 : stats.mean > 52 ? 1 : 0;
    return { sensor: stats.sensor, window: stats.window, level, mean: stats.mean };
  },
});
