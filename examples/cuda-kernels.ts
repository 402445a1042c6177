/**
 * The kernel of examples/cuda.ts, in a module of its own (the runtime's threads import it). It has a CPU handler
 * and a CUDA handler that do the same thing, so it runs on whichever backend the runtime picked.
 */
import { defineKernel, defineMessage } from '../src/index.js';

export const Celsius = defineMessage('example.Celsius', { sensor: 'u32', celsius: 'f64' });
export const Fahrenheit = defineMessage('example.Fahrenheit', { sensor: 'u32', alarm: 'u32', fahrenheit: 'f64' });

/** Celsius → Fahrenheit, alarm over 100 °F; a reading below absolute zero is a handler fault. */
export const ToFahrenheit = defineKernel({
  id: 'example.toFahrenheit',
  input: Celsius,
  output: Fahrenheit,
  cpu: (reading) => {
    if (reading.celsius < -273.15) throw new RangeError(`below absolute zero: ${reading.celsius}`);
    const fahrenheit = (reading.celsius * 9) / 5 + 32;
    return { sensor: reading.sensor, alarm: fahrenheit > 100 ? 1 : 0, fahrenheit };
  },
  cuda: { file: new URL('../../examples/cuda/fahrenheit.cu', import.meta.url) },
});
