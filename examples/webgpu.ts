/**
 * `node dist/examples/webgpu.js`: a pipeline of a CPU kernel, a WGSL kernel resident on a WebGPU device and another
 * CPU kernel, linked kernel to kernel. Needs the optional `webgpu` package and an adapter: a GPU's, or on Linux
 * without one Mesa's software Vulkan, which `scripts/fetch-webgpu-driver.sh` unpacks into `.webgpu/` (named with
 * RINGKERNEL_WEBGPU_DRIVER_DIR, or found there by this example).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RingKernelRuntime } from '../src/index.js';
import { Alarms, ToFahrenheit, Validate } from './webgpu-kernels.js';

const READINGS = Number(process.env.EXAMPLE_READINGS ?? 10_000);
const fetched = fileURLToPath(new URL('../../.webgpu', import.meta.url));
if (process.env.RINGKERNEL_WEBGPU_DRIVER_DIR === undefined && existsSync(fetched)) {
  process.env.RINGKERNEL_WEBGPU_DRIVER_DIR = fetched;
}

// A software adapter (lavapipe) is taken only when allowed: this example runs anywhere WebGPU can.
await using runtime = await RingKernelRuntime.builder()
  .backend('webgpu', { allowFallback: true })
  .config({ workers: 1 })
  .build();
console.log(`backend ${runtime.backend}: ${runtime.backendProbes[0]?.reason}`);
const validate = await runtime.launch(Validate, 1, 1, { autoActivate: true });
const convert = await runtime.launch(ToFahrenheit, 1, 1, { autoActivate: true });
const alarms = await runtime.launch(Alarms, 1, 1, { autoActivate: true });
await runtime.connect(validate, convert);
await runtime.connect(convert, alarms);

const started = performance.now();
let raised = 0;
let last = -1;
let outOfOrder = 0;
// Celsius (i % 50) - 5: 38…44 °C are over 100 °F, 7 in every 50 readings; every 1000th is below absolute zero.
const expected = Array.from({ length: READINGS }, (_, i) => i).filter(
  (i) => i % 1000 !== 999 && (i % 50) - 5 > 37.77,
).length;
const receiving = (async () => {
  while (raised < expected) {
    const alarm = await alarms.receive();
    if (alarm.sensor <= last) outOfOrder++;
    last = alarm.sensor;
    raised++;
  }
})();
for (let i = 0; i < READINGS; i++) {
  await validate.send({ sensor: i, celsius: i % 1000 === 999 ? -300 : (i % 50) - 5 });
}
await receiving;
// The alarms can all be in before the last readings (no alarm among them) have been through Validate: its drained
// terminate returns once every reading was handled and each refused one dead-lettered.
await validate.terminate();
const seconds = (performance.now() - started) / 1000;
console.log(
  `${READINGS.toLocaleString('en')} readings in ${seconds.toFixed(2)} s: ${raised.toLocaleString('en')} alarms, out of order ${outOfOrder}`,
);
const state = new Uint32Array((await convert.checkpoint()).state.slice().buffer);
console.log(`WGSL kernel: processed ${convert.metrics().messagesProcessed}, alarms counted on the device ${state[0]}`);
console.log(`dead letters: ${runtime.deadLetters.counts()['handler-error'] ?? 0} (readings below absolute zero)`);
