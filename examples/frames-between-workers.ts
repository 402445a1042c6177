/**
 * Typed messages between two worker threads over a frame ring: a sensor worker streams readings, this thread
 * (the consumer) keeps running statistics and reports what arrived. Run with `npm start`.
 *
 * This is the data plane on its own — what ringkernel's kernels will talk through. No postMessage, no Promise
 * and no allocation per message: the producer encodes straight into the ring, the consumer reads in place.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import {
  createFrameRing,
  defineMessage,
  FrameConsumer,
  FrameProducer,
  type FrameRingMemory,
  field,
  HybridLogicalClock,
} from '../src/index.js';

/** One sensor reading: 8-byte aligned, 48 bytes, the same struct a C or CUDA handler would see. */
export const Reading = defineMessage('example.Reading', {
  sensor: 'u16',
  valid: 'bool',
  sequence: 'u32',
  celsius: 'f64',
  window: field.array('f32', 4),
  unit: field.string(8),
});

const COUNT = Number(process.env.EXAMPLE_READINGS ?? 2_000_000);

if (isMainThread) {
  const memory = createFrameRing({ capacityBytes: 64 * 1024, maxPayloadSize: Reading.size, integrity: false });
  const consumer = new FrameConsumer(memory, {
    onMalformed: (error) => console.error(`dead letter: ${error.code} ${error.message}`),
  });
  const sensor = new Worker(new URL(import.meta.url), { workerData: { memory, count: COUNT } });
  sensor.on('error', (error) => {
    console.error('sensor worker failed:', error);
    process.exitCode = 1;
  });

  const started = performance.now();
  let received = 0;
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let outOfOrder = 0;
  let lastSequence = -1;
  let nextReport = started + 500;
  while (received < COUNT) {
    const handled = consumer.drain((frame) => {
      const reading = frame.decode(Reading); // a zero-copy view over the ring
      const celsius = reading.celsius;
      sum += celsius;
      if (celsius < min) min = celsius;
      if (celsius > max) max = celsius;
      if (reading.sequence !== lastSequence + 1) outOfOrder++;
      lastSequence = reading.sequence;
    });
    received += handled;
    if (handled === 0) await consumer.waitForDataAsync(1_000);
    const now = performance.now();
    if (now >= nextReport) {
      process.stdout.write(
        `\r${received.toLocaleString('en')} readings, ${Math.round(received / ((now - started) / 1000)).toLocaleString('en')} msg/s`,
      );
      nextReport = now + 500;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `\r${received.toLocaleString('en')} readings in ${seconds.toFixed(2)} s: ${Math.round(received / seconds).toLocaleString('en')} msg/s`,
  );
  console.log(`celsius: mean ${(sum / received).toFixed(3)}, min ${min.toFixed(3)}, max ${max.toFixed(3)}`);
  console.log(`out of order: ${outOfOrder}, malformed: ${consumer.malformedFrames}`);
  await sensor.terminate();
  if (outOfOrder !== 0 || consumer.malformedFrames !== 0) process.exitCode = 1;
} else {
  const { memory, count } = workerData as { memory: FrameRingMemory; count: number };
  const producer = new FrameProducer(memory, { clock: new HybridLogicalClock(1) });
  const reading = { sensor: 7, valid: true, sequence: 0, celsius: 0, window: new Float32Array(4), unit: '°C' };
  for (let i = 0; i < count; i++) {
    reading.sequence = i;
    reading.celsius = 20 + 5 * Math.sin(i / 1000);
    reading.window[i & 3] = reading.celsius;
    while (!producer.tryWrite(Reading, reading, { destination: 1 })) producer.waitForSpace(Reading.size + 104);
  }
  parentPort?.postMessage('done');
}
