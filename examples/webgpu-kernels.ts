/** The kernels of examples/webgpu.ts: a CPU stage, a WGSL stage and a CPU stage, linked kernel to kernel. */
import { defineKernel, defineMessage } from '../src/index.js';

export const Celsius = defineMessage('example.webgpu.Celsius', { sensor: 'u32', celsius: 'f32' });
export const Fahrenheit = defineMessage('example.webgpu.Fahrenheit', {
  sensor: 'u32',
  fahrenheit: 'f32',
  alarm: 'u32',
});

/** CPU: refuses readings below absolute zero (a handler error: that message alone is dead-lettered). */
export const Validate = defineKernel({
  id: 'example.webgpu.validate',
  input: Celsius,
  output: Celsius,
  cpu: (reading) => {
    if (reading.celsius < -273.15) throw new RangeError(`sensor ${reading.sensor}: ${reading.celsius} °C`);
    return { sensor: reading.sensor, celsius: reading.celsius };
  },
});

/**
 * WebGPU: converts to Fahrenheit and raises an alarm above 100 °F, one shader invocation per reading of a batch,
 * reading and writing the structs generated from the schemas above. It counts alarms in device state.
 */
export const ToFahrenheit = defineKernel({
  id: 'example.webgpu.toFahrenheit',
  input: Celsius,
  output: Fahrenheit,
  webgpu: {
    entry: 'to_fahrenheit',
    stateBytes: 4,
    source: `fn to_fahrenheit(i: u32) -> u32 {
  let c = rk_read_rk_msg_example_webgpu_Celsius(i);
  let f = c.celsius * 9.0 / 5.0 + 32.0;
  let alarm = select(0u, 1u, f > 100.0);
  if (alarm == 1u) { atomicAdd(&rk_state[0], 1u); }
  rk_emit_rk_msg_example_webgpu_Fahrenheit(i, rk_msg_example_webgpu_Fahrenheit(c.sensor, f, alarm));
  return RK_E_NONE;
}`,
  },
});

/** CPU: passes alarms on and drops the rest (a handler that returns nothing emits nothing). */
export const Alarms = defineKernel({
  id: 'example.webgpu.alarms',
  input: Fahrenheit,
  output: Fahrenheit,
  cpu: (reading) => (reading.alarm === 1 ? reading.toObject() : undefined),
});
