/** The cluster demo's kernels, in a module of their own: the runtime's workers import this module to run them. */
import { defineKernel, defineMessage } from '../src/index.js';

/** One sensor reading in Celsius. */
export const Celsius = defineMessage('cluster.Celsius', { sensor: 'u16', seq: 'u32', celsius: 'f64' });
/** The same reading in Fahrenheit. */
export const Fahrenheit = defineMessage('cluster.Fahrenheit', { sensor: 'u16', seq: 'u32', fahrenheit: 'f64' });
/** What the last stage has seen. */
export const Summary = defineMessage('cluster.Summary', { count: 'u32', outOfOrder: 'u32', mean: 'f64' });

/** Stage 1: Celsius → Fahrenheit. */
export const Convert = defineKernel({
  id: 'cluster.convert',
  input: Celsius,
  output: Fahrenheit,
  cpu: (reading) => ({ sensor: reading.sensor, seq: reading.seq, fahrenheit: (reading.celsius * 9) / 5 + 32 }),
});

/** Stage 2: a running mean, and whether readings arrived in order; answers calls with the summary so far. */
export const Average = defineKernel({
  id: 'cluster.average',
  input: Fahrenheit,
  output: Summary,
  init: () => ({ count: 0, sum: 0, outOfOrder: 0, next: 0 }),
  cpu: (reading, ctx) => {
    const state = ctx.state;
    if (reading.seq === 0xffff_ffff)
      return { count: state.count, outOfOrder: state.outOfOrder, mean: state.sum / state.count };
    if (reading.seq !== state.next) state.outOfOrder++;
    state.next = reading.seq + 1;
    state.count++;
    state.sum += reading.fahrenheit;
    return undefined;
  },
});
