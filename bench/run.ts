/**
 * `npm run bench [-- --quick] [-- --json FILE]`: the data-plane benchmarks, every case in one run so ratios
 * compare like with like on a shared, noisy machine.
 *
 * Throughput (`msgsPerSec`): the main thread sends N messages one way; the worker times them from the end of the
 * first fifth (warm-up: JIT, worker start) to the last one handled. Latency (`p50us`, `p99us`): one-way latency as half of an unloaded ping-pong round trip.
 */
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import { RingBuffer } from 'ringbuf.js';
import { createFrameRing, FrameConsumer, FrameProducer } from '../src/index.js';
import { type BenchJob, BenchMessages, type BenchSize } from './messages.js';

interface CaseResult {
  name: string;
  msgsPerSec: number;
  p50us: number;
  p99us: number;
}

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const jsonIndex = args.indexOf('--json');
const jsonFile = jsonIndex >= 0 ? args[jsonIndex + 1] : undefined;
if (jsonIndex >= 0 && jsonFile === undefined) throw new TypeError('--json needs a file name');

const THROUGHPUT_N = quick ? 300_000 : 2_000_000;
const RTT_N = quick ? 3_000 : 20_000;
const POST_N = quick ? 100_000 : 500_000;
const RING_BYTES = 1 << 16;

function startWorker(job: BenchJob): Worker {
  return new Worker(new URL('./bench-worker.js', import.meta.url), { workerData: job });
}

/** Messages per second after the warm-up fifth, as the sink timed them. */
async function finish(worker: Worker, count: number): Promise<number> {
  const [done] = (await once(worker, 'message')) as [{ warmAt: number; doneAt: number }];
  await worker.terminate();
  return (count - Math.floor(count / 5)) / ((done.doneAt - done.warmAt) / 1000);
}

function percentiles(samples: number[]): { p50us: number; p99us: number } {
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] as number;
  return { p50us: round(at(0.5)), p99us: round(at(0.99)) };
}

const round = (x: number): number => Math.round(x * 100) / 100;

async function postMessageCase(): Promise<CaseResult> {
  const payload = new Uint8Array(64);
  const sink = startWorker({ kind: 'postMessage-sink', count: POST_N });
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (let i = 0; i < POST_N; i++) {
    payload[0] = i & 0xff;
    sink.postMessage(payload);
  }
  const msgsPerSec = await finish(sink, POST_N);

  const echo = startWorker({ kind: 'postMessage-echo' });
  const rtts: number[] = [];
  for (let i = 0; i < RTT_N + 200; i++) {
    const t0 = performance.now();
    echo.postMessage(payload);
    await once(echo, 'message');
    if (i >= 200) rtts.push(((performance.now() - t0) * 1000) / 2);
  }
  await echo.terminate();
  return { name: 'postMessage.oneway.64', msgsPerSec: Math.round(msgsPerSec), ...percentiles(rtts) };
}

async function ringbufCase(): Promise<CaseResult> {
  const size = 64;
  const message = new Uint8Array(size);
  const ring = RingBuffer.getStorageForCapacity(RING_BYTES, Uint8Array);
  const producer = new RingBuffer(ring, Uint8Array);
  const sink = startWorker({ kind: 'ringbuf-sink', ring, count: THROUGHPUT_N, size });
  await once(sink, 'message');
  for (let i = 0; i < THROUGHPUT_N; i++) {
    message[0] = i & 0xff;
    while (producer.availableWrite() < size);
    producer.push(message);
  }
  const msgsPerSec = await finish(sink, THROUGHPUT_N);

  const ping = RingBuffer.getStorageForCapacity(RING_BYTES, Uint8Array);
  const pong = RingBuffer.getStorageForCapacity(RING_BYTES, Uint8Array);
  const out = new RingBuffer(ping, Uint8Array);
  const back = new RingBuffer(pong, Uint8Array);
  const echo = startWorker({ kind: 'ringbuf-echo', ping, pong, count: RTT_N + 200, size });
  await once(echo, 'message');
  const rtts: number[] = [];
  for (let i = 0; i < RTT_N + 200; i++) {
    const t0 = performance.now();
    out.push(message);
    while (back.availableRead() < size);
    back.pop(message);
    if (i >= 200) rtts.push(((performance.now() - t0) * 1000) / 2);
  }
  await echo.terminate();
  return { name: 'ringbuf.oneway.64', msgsPerSec: Math.round(msgsPerSec), ...percentiles(rtts) };
}

async function framesCase(size: BenchSize): Promise<CaseResult> {
  const schema = BenchMessages[size];
  const sample = {
    seq: 0,
    flags: 0,
    ts: 0,
    data: new Float64Array(schema.fields[3]?.size ? schema.fields[3].size / 8 : 0),
  };
  const memory = createFrameRing({ capacityBytes: RING_BYTES, maxPayloadSize: 2048 });
  const producer = new FrameProducer(memory);
  const sink = startWorker({ kind: 'frames-sink', memory, count: THROUGHPUT_N, size });
  await once(sink, 'message');
  for (let i = 0; i < THROUGHPUT_N; i++) {
    sample.seq = i;
    sample.data[0] = i;
    while (!producer.tryWrite(schema, sample)) producer.waitForSpace(schema.size + 104);
  }
  const msgsPerSec = await finish(sink, THROUGHPUT_N);

  const ping = createFrameRing({ capacityBytes: RING_BYTES, maxPayloadSize: 2048 });
  const pong = createFrameRing({ capacityBytes: RING_BYTES, maxPayloadSize: 2048 });
  const out = new FrameProducer(ping);
  const back = new FrameConsumer(pong);
  const echo = startWorker({ kind: 'frames-echo', ping, pong, count: RTT_N + 200, size });
  await once(echo, 'message');
  const rtts: number[] = [];
  let seq = 0;
  const onReply = (): void => {
    seq++;
  };
  for (let i = 0; i < RTT_N + 200; i++) {
    const t0 = performance.now();
    sample.seq = i;
    out.tryWrite(schema, sample);
    while (back.drain(onReply) === 0) back.waitForData();
    if (i >= 200) rtts.push(((performance.now() - t0) * 1000) / 2);
  }
  if (seq !== RTT_N + 200) throw new Error(`frames echo lost replies: ${seq}`);
  await echo.terminate();
  return { name: `frames.oneway.${size}`, msgsPerSec: Math.round(msgsPerSec), ...percentiles(rtts) };
}

const cases: CaseResult[] = [];
const started = performance.now();
for (const run of [postMessageCase, ringbufCase, () => framesCase(64), () => framesCase(256), () => framesCase(1024)]) {
  const result = await run();
  cases.push(result);
  console.log(
    `${result.name.padEnd(24)} ${String(result.msgsPerSec).padStart(10)} msg/s   p50 ${result.p50us.toFixed(2).padStart(7)} µs   p99 ${result.p99us.toFixed(2).padStart(7)} µs`,
  );
}
const by = (name: string): CaseResult => cases.find((c) => c.name === name) as CaseResult;
const ratios = {
  'frames.oneway.64 / ringbuf.oneway.64': round(by('frames.oneway.64').msgsPerSec / by('ringbuf.oneway.64').msgsPerSec),
  'frames.oneway.64 / postMessage.oneway.64': round(
    by('frames.oneway.64').msgsPerSec / by('postMessage.oneway.64').msgsPerSec,
  ),
};
console.log(`\nratios (goal ≥ 0.6 and ≥ 6): ${JSON.stringify(ratios)}`);
console.log(`took ${((performance.now() - started) / 1000).toFixed(1)} s`);
if (jsonFile !== undefined) {
  mkdirSync(dirname(jsonFile), { recursive: true });
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    quick,
    ratios,
  };
  writeFileSync(jsonFile, `${JSON.stringify({ cases, meta }, null, 2)}\n`);
  console.log(`wrote ${jsonFile}`);
}
