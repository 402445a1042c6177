/**
 * `node dist/examples/cuda.js`: one kernel with a CPU and a CUDA handler, on the best backend here — a GPU when
 * there is one (the persistent kernel resident on it, its rings pinned and mapped), else the CPU. Point
 * RINGKERNEL_LIBCUDA at native/build/libcuda-emu.so to run the CUDA path on the emulated device (CPU threads
 * standing in for a GPU) on a machine without one.
 */
import { HandlerFailedError, RingKernelRuntime } from '../src/index.js';
import { ToFahrenheit } from './cuda-kernels.js';

const READINGS = Number(process.env.EXAMPLE_READINGS ?? 10_000);

await using runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
const kernel = await runtime.launch(ToFahrenheit, 1, 1, { autoActivate: true, queueCapacity: 1024 });
const device = runtime.gpuTopology().devices[kernel.device];
console.log(`backend ${runtime.backend}, device ${device?.name}, strategy ${kernel.metrics().transferStrategy}`);

const boiling = await kernel.call({ sensor: 1, celsius: 100 });
console.log(`call: 100 °C is ${boiling.fahrenheit} °F, alarm ${boiling.alarm}`);
try {
  await kernel.call({ sensor: 1, celsius: -300 });
} catch (error) {
  console.log(`call: -300 °C is refused (${error instanceof HandlerFailedError ? 'HandlerFailedError' : error})`);
}

const started = performance.now();
let alarms = 0;
let received = 0;
let outOfOrder = 0;
const receiving = (async () => {
  while (received < READINGS) {
    const out = await kernel.receive();
    if (out.sensor !== received) outOfOrder++;
    alarms += out.alarm;
    received++;
  }
})();
for (let i = 0; i < READINGS; i++) await kernel.send({ sensor: i, celsius: (i % 50) - 5 });
await receiving;
const seconds = (performance.now() - started) / 1000;
console.log(
  `${READINGS.toLocaleString('en')} readings in ${seconds.toFixed(2)} s: ${alarms.toLocaleString('en')} alarms, out of order ${outOfOrder}`,
);
const { messagesProcessed, messagesFailed } = kernel.metrics();
console.log(`kernel: processed ${messagesProcessed}, failed ${messagesFailed}`);
await kernel.terminate();
