/**
 * `npm run bench [-- --quick] [-- --json FILE] [-- --only GROUP,…]`: the data-plane benchmarks, every case in one
 * run so ratios compare like with like on a shared, noisy machine. `--only` runs just the named groups of cases
 * (postMessage, ringbuf, frames, piscina, kernel, dma, cuda, webgpu, pipeline, supervision, tracing, migration,
 * scale, cluster) and prints the ratios whose cases ran: for comparing a few figures paired, quickly. With
 * `--json FILE` it writes the figures there and, beside them (FILE with `.svg`, full runs only), a chart of
 * ringkernel against postMessage, Piscina and a raw ring.
 *
 * Throughput (`msgsPerSec`): the main thread sends N messages one way; the worker times them from the end of the
 * first fifth (warm-up: JIT, worker start) to the last one handled. Latency (`p50us`, `p99us`): one-way latency as half of an unloaded ping-pong round trip.
 */
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { RingBuffer } from 'ringbuf.js';
import { createFrameRing, FrameConsumer, FrameProducer, RingKernelRuntime } from '../src/internal.js';
import { BenchEcho, BenchFragile, BenchHeavyState, BenchIdle, BenchSink, BenchStage } from './bench-kernels.js';
import { type CaseResult, percentiles, round } from './case-result.js';
import { renderBenchChart } from './chart.js';
import { clusterCases } from './cluster-cases.js';
import { cudaCases } from './cuda-cases.js';
import { dmaCases } from './dma-cases.js';
import { type BenchJob, BenchMessages, type BenchSize } from './messages.js';
import { scaleCases } from './scale-cases.js';
import { sinkSendRate } from './sink-rate.js';
import { tracingCases } from './tracing-cases.js';
import { webgpuCases } from './webgpu-cases.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const jsonIndex = args.indexOf('--json');
const jsonFile = jsonIndex >= 0 ? args[jsonIndex + 1] : undefined;
if (jsonIndex >= 0 && jsonFile === undefined) throw new TypeError('--json needs a file name');
const onlyIndex = args.indexOf('--only');
const only = onlyIndex >= 0 ? args[onlyIndex + 1]?.split(',') : undefined;
if (onlyIndex >= 0 && only === undefined) throw new TypeError('--only needs a comma-separated list of case groups');

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

async function postMessageCase(): Promise<CaseResult[]> {
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
  const roundTrips = rtts.map((half) => half * 2);
  const rttPerSec = 1e6 / (roundTrips.reduce((a, b) => a + b, 0) / roundTrips.length);
  return [
    { name: 'postMessage.oneway.64', msgsPerSec: Math.round(msgsPerSec), ...percentiles(rtts) },
    { name: 'postMessage.rtt.64', msgsPerSec: Math.round(rttPerSec), ...percentiles(roundTrips) },
  ];
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

/** The sample message the kernel cases send: 64 bytes of payload. */
function sample64() {
  return { seq: 0, flags: 0, ts: 0, data: new Float64Array(6) };
}

async function piscinaCase(): Promise<CaseResult> {
  const pool = new Piscina({
    filename: new URL('./piscina-task.js', import.meta.url).href,
    minThreads: 1,
    maxThreads: 1,
  });
  const payload = new Uint8Array(64);
  const n = quick ? 20_000 : 100_000;
  for (let i = 0; i < 1000; i++) await pool.run(payload);
  // Throughput: keep 256 tasks in flight.
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next++ < n) await pool.run(payload);
    }),
  );
  const msgsPerSec = n / ((performance.now() - start) / 1000);
  const latencies: number[] = [];
  for (let i = 0; i < RTT_N / 2; i++) {
    const t0 = performance.now();
    await pool.run(payload);
    latencies.push((performance.now() - t0) * 1000);
  }
  await pool.destroy();
  return { name: 'piscina.run.64', msgsPerSec: Math.round(msgsPerSec), ...percentiles(latencies) };
}

async function kernelCases(): Promise<CaseResult[]> {
  const runtime = await RingKernelRuntime.builder().backend('cpu').build();
  const results: CaseResult[] = [];
  try {
    // kernel.send.64: one way into a sink kernel, counted when the kernel has processed them.
    const sink = await runtime.launch(BenchSink, 1, 1, { autoActivate: true });
    const sample = sample64();
    const sendRate = await sinkSendRate(sink, sample, THROUGHPUT_N);
    const processed = (): number => sink.counters().processed;
    // One-way latency, unloaded: send one message, watch the ControlBlock until the kernel has processed it.
    const oneWay: number[] = [];
    for (let i = 0; i < RTT_N; i++) {
      const before = processed();
      const t0 = performance.now();
      sink.trySend(sample);
      while (processed() === before);
      oneWay.push((performance.now() - t0) * 1000);
    }
    results.push({ name: 'kernel.send.64', msgsPerSec: Math.round(sendRate), ...percentiles(oneWay) });
    await sink.terminate();

    // kernel.call.64: request/response with a 64-byte message each way, one call at a time.
    const echo = await runtime.launch(BenchEcho, 1, 1, { autoActivate: true });
    for (let i = 0; i < 2_000; i++) await echo.call(sample);
    const calls: number[] = [];
    const callStart = performance.now();
    for (let i = 0; i < RTT_N * 2; i++) {
      sample.seq = i;
      const t0 = performance.now();
      await echo.call(sample);
      calls.push((performance.now() - t0) * 1000);
    }
    const callRate = calls.length / ((performance.now() - callStart) / 1000);
    results.push({ name: 'kernel.call.64', msgsPerSec: Math.round(callRate), ...percentiles(calls) });
    await echo.terminate();

    // idle1000: 1000 active kernels with nothing to do — CPU used by the whole process, and its RSS.
    const idle = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        runtime.launch(BenchIdle, 1, 1, { name: `idle-${i}`, autoActivate: true }),
      ),
    );
    await Promise.all(idle.map((handle) => handle.call(sample)));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, quick ? 2_000 : 5_000));
    const cpu = process.cpuUsage(cpu0);
    const cpuPercent = ((cpu.user + cpu.system) / 1000 / (performance.now() - wall0)) * 100;
    const rssMB = process.memoryUsage().rss / 2 ** 20;
    results.push({
      name: 'idle1000.cpuPercent',
      msgsPerSec: 0,
      p50us: 0,
      p99us: 0,
      value: round(cpuPercent),
      unit: '% of one core',
    });
    results.push({ name: 'idle1000.rssMB', msgsPerSec: 0, p50us: 0, p99us: 0, value: round(rssMB), unit: 'MiB' });
  } finally {
    await runtime.shutdown();
  }
  return results;
}

/**
 * pipeline3.64: stage → stage → sink, three CPU kernels. `k2k`: wired with runtime.connect. `host`: the same
 * kernels, with the main thread moving every message from one stage to the next. Placed with two virtual devices
 * of one worker each: the first stage on one worker, the second stage and the sink on the other, so that their
 * link is fused (see docs/actors-and-supervision.md) and the first stage has a worker to itself.
 */
async function pipelineCases(): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const routing of ['k2k', 'host'] as const) {
    const runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 2, devices: 2 }).build();
    try {
      const first = await runtime.launch(BenchStage, 1, 1, { name: 's1', device: 0, autoActivate: true });
      const second = await runtime.launch(BenchStage, 1, 1, { name: 's2', device: 1, autoActivate: true });
      const sink = await runtime.launch(BenchSink, 1, 1, { name: 'sink', device: 1, autoActivate: true });
      if (routing === 'k2k') {
        await runtime.connect(first, second);
        await runtime.connect(second, sink);
      }
      const n = routing === 'k2k' ? THROUGHPUT_N : THROUGHPUT_N / 4;
      const sample = sample64();
      const forward = (from: typeof first, to: typeof second): void => {
        for (let out = from.tryReceive(); out !== undefined; out = from.tryReceive()) {
          if (!to.trySend(out.toObject())) to.send(out.toObject()).catch(() => {});
        }
      };
      const start = performance.now();
      for (let i = 0; i < n; i++) {
        sample.seq = i;
        // k2k: a full first stage is waited on as kernel.send.64 waits (`send` parks until there is room), not
        // polled: a producer spinning through event-loop turns takes a core the stages need. host: the main
        // thread moves the messages itself, so it must poll the stages' outputs while it waits.
        if (routing === 'k2k') {
          if (!first.trySend(sample)) await first.send(sample);
          continue;
        }
        while (!first.trySend(sample)) {
          forward(first, second);
          forward(second, sink);
          await new Promise((resolve) => setImmediate(resolve));
        }
        if ((i & 255) === 0) {
          forward(first, second);
          forward(second, sink);
        }
      }
      while (sink.counters().processed < n) {
        if (routing === 'host') {
          forward(first, second);
          forward(second, sink);
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      const rate = n / ((performance.now() - start) / 1000);
      results.push({
        name: routing === 'k2k' ? 'pipeline3.64' : 'pipeline3.host.64',
        msgsPerSec: Math.round(rate),
        p50us: 0,
        p99us: 0,
      });
    } finally {
      await runtime.shutdown();
    }
  }
  return results;
}

/**
 * restart.ms: a supervised kernel fails (its handler throws, `onHandlerError: 'fail'`); from the poison message's
 * send to the restarted instance answering the next call (no backoff). launch.call.ms: a fresh launch, activation and
 * first call of the same kernel — what a supervisor's restart competes with (it keeps the rings, the handle and
 * the queue; a new launch allocates and attaches everything).
 */
async function supervisionCases(): Promise<CaseResult[]> {
  const rounds = quick ? 10 : 40;
  const runtime = await RingKernelRuntime.builder().backend('cpu').build();
  const restarts: number[] = [];
  const launches: number[] = [];
  try {
    const supervisor = runtime.supervisor({ maxRestarts: rounds + 1, windowMs: 600_000, backoff: { initialMs: 0 } });
    const fragile = await supervisor.launch(BenchFragile, 1, 1, { autoActivate: true, onHandlerError: 'fail' });
    const sample = sample64();
    for (let round = 0; round < rounds; round++) {
      sample.flags = 0xdead;
      const t0 = performance.now();
      fragile.trySend(sample);
      sample.flags = 0;
      await fragile.call(sample);
      restarts.push(performance.now() - t0);
    }
    for (let round = 0; round < rounds; round++) {
      const t0 = performance.now();
      const fresh = await runtime.launch(BenchFragile, 1, 1, { name: `fresh-${round}`, autoActivate: true });
      await fresh.call(sample);
      launches.push(performance.now() - t0);
      await fresh.terminate();
    }
  } finally {
    await runtime.shutdown();
  }
  const median = (xs: number[]) => round([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number);
  return [
    { name: 'restart.ms', msgsPerSec: 0, p50us: 0, p99us: 0, value: median(restarts), unit: 'ms (median)' },
    { name: 'launch.call.ms', msgsPerSec: 0, p50us: 0, p99us: 0, value: median(launches), unit: 'ms (median)' },
  ];
}

/**
 * `migrate.pauseMs`: how long a kernel takes no input while it migrates between two CPU virtual devices — from
 * its quiesce to its resume on the target — with 1 MiB of state and a full input queue (a sender tops the
 * 4096-frame queue up every millisecond throughout, so the queue is full at the swap). Median and worst of the runs, against
 * the same kernel with a few bytes of state (`migrate.pauseMs.smallState`) and a cold launch + activate of a new
 * instance (`launch.ms`), the alternative a migration replaces.
 */
async function migrationCases(): Promise<CaseResult[]> {
  const runs = quick ? 6 : 20;
  const runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 2, devices: 2 }).build();
  const results: CaseResult[] = [];
  try {
    const sample = sample64();
    for (const [name, kernel] of [
      ['migrate.pauseMs', BenchHeavyState.id],
      ['migrate.pauseMs.smallState', BenchSink.id],
    ] as const) {
      const handle = await runtime.launch(kernel, 1, 1, { name, device: 0, queueCapacity: 4096, autoActivate: true });
      const pauses: number[] = [];
      let carried = 0;
      for (let run = 0; run < runs; run++) {
        let sending = true;
        const topUp = (async () => {
          while (sending) {
            while (handle.trySend(sample)) sample.seq++;
            // Each millisecond: the paused kernel drains nothing, so this keeps the queue full without taking a
            // core away from the migration on a two-core machine.
            await new Promise((resolve) => setTimeout(resolve, 1));
          }
        })();
        let report: Awaited<ReturnType<ReturnType<RingKernelRuntime['kernelMigrator']>['migrateKernel']>>;
        try {
          while (handle.trySend(sample)) sample.seq++; // full before the migration starts
          report = await runtime.kernelMigrator().migrateKernel(handle, run % 2, (run + 1) % 2);
        } finally {
          // Stop topping up before anything else happens (a failed migration shuts the runtime down next).
          sending = false;
          await topUp;
        }
        pauses.push(report.pauseMs);
        carried += report.messagesCarried;
      }
      pauses.sort((a, b) => a - b);
      const median = pauses[Math.floor(pauses.length / 2)] as number;
      results.push({
        name,
        msgsPerSec: 0,
        p50us: 0,
        p99us: 0,
        value: round(median),
        unit: `ms (median of ${runs}; worst ${round(pauses.at(-1) as number)} ms; ${Math.round(carried / runs)} messages carried on average)`,
      });
      await handle.terminate({ drain: false });
    }
    const launches: number[] = [];
    for (let run = 0; run < runs; run++) {
      const started = performance.now();
      const handle = await runtime.launch(BenchHeavyState, 1, 1, { name: `cold-${run}`, device: run % 2 });
      await handle.activate();
      launches.push(performance.now() - started);
      await handle.terminate();
    }
    launches.sort((a, b) => a - b);
    results.push({
      name: 'launch.ms',
      msgsPerSec: 0,
      p50us: 0,
      p99us: 0,
      value: round(launches[Math.floor(launches.length / 2)] as number),
      unit: `ms (median of ${runs}: a cold launch + activate of the same kernel, fresh state)`,
    });
  } finally {
    await runtime.shutdown();
  }
  return results;
}

const cases: CaseResult[] = [];
const started = performance.now();
const runs: Record<string, () => Promise<CaseResult | CaseResult[]>> = {
  postMessage: postMessageCase,
  ringbuf: ringbufCase,
  frames: async () => [await framesCase(64), await framesCase(256), await framesCase(1024)],
  piscina: piscinaCase,
  kernel: kernelCases,
  dma: () => dmaCases(THROUGHPUT_N, RTT_N, percentiles, quick ? 5 : 9),
  cuda: () => cudaCases(quick ? 100_000 : 1_000_000, quick ? 1_000 : 10_000, percentiles),
  webgpu: () => webgpuCases(quick ? 200_000 : 2_000_000, quick ? 1_000 : 5_000, percentiles),
  pipeline: pipelineCases,
  supervision: supervisionCases,
  tracing: () => tracingCases(THROUGHPUT_N, quick),
  migration: migrationCases,
  scale: async () => scaleCases(quick),
  cluster: () => clusterCases(quick ? 100_000 : 1_000_000, RTT_N),
};
const unknownGroup = only?.find((group) => !(group in runs));
if (unknownGroup !== undefined) {
  throw new TypeError(`--only: no case group '${unknownGroup}' (groups: ${Object.keys(runs).join(', ')})`);
}
for (const [group, run] of Object.entries(runs)) {
  if (only !== undefined && !only.includes(group)) continue;
  const produced = await run();
  for (const result of Array.isArray(produced) ? produced : [produced]) {
    cases.push(result);
    console.log(
      result.value === undefined
        ? `${result.name.padEnd(24)} ${String(result.msgsPerSec).padStart(10)} msg/s   p50 ${result.p50us.toFixed(2).padStart(7)} µs   p99 ${result.p99us.toFixed(2).padStart(7)} µs`
        : `${result.name.padEnd(24)} ${String(result.value).padStart(10)} ${result.unit}`,
    );
  }
}
/** A case that did not run (`--only`) reads as NaN, and the ratios made of it are left out. */
const by = (name: string): CaseResult =>
  cases.find((c) => c.name === name) ?? {
    name,
    msgsPerSec: Number.NaN,
    p50us: Number.NaN,
    p99us: Number.NaN,
    value: Number.NaN,
  };
const rate = (name: string): number => by(name).msgsPerSec;
/** The dma cases are absent when the native mirror library is not built. */
const dmaRan = cases.some((c) => c.name === 'dma.oneway.64');
/** The CUDA cases ran on a GPU (`cuda.`), on the emulated device (`cuda-emu.`), or not at all. */
const cudaPrefix = cases.find((c) => c.name.endsWith('.call.64') && c.name.startsWith('cuda'))?.name.split('.')[0];
/** The WebGPU cases are absent where no adapter can be had. */
const webgpuRan = cases.some((c) => c.name === 'webgpu.call.64');
const allRatios = {
  'frames.oneway.64 / ringbuf.oneway.64 (goal ≥ 0.6)': round(rate('frames.oneway.64') / rate('ringbuf.oneway.64')),
  'frames.oneway.64 / postMessage.oneway.64 (goal ≥ 6)': round(
    rate('frames.oneway.64') / rate('postMessage.oneway.64'),
  ),
  'kernel.send.64 / postMessage.oneway.64 (goal ≥ 6)': round(rate('kernel.send.64') / rate('postMessage.oneway.64')),
  'kernel.send.64 / ringbuf.oneway.64 (goal ≥ 0.5)': round(rate('kernel.send.64') / rate('ringbuf.oneway.64')),
  'postMessage.rtt.64 p50 / kernel.call.64 p50 (goal ≥ 10)': round(
    by('postMessage.rtt.64').p50us / by('kernel.call.64').p50us,
  ),
  'kernel.call.64 p50 µs (goal ≤ 5)': by('kernel.call.64').p50us,
  'idle1000.cpuPercent (goal < 2)': by('idle1000.cpuPercent').value ?? 0,
  ...(quick
    ? {}
    : {
        'idle10k.rssMB (goal < 1024)': by('idle10k.rssMB').value ?? 0,
        'idle10k.cpuPercent (goal < 2)': by('idle10k.cpuPercent').value ?? 0,
        'launch.rate launches/s (goal ≥ 5000)': by('launch.rate').value ?? 0,
        'churn.rssRatio (goal ≤ 1.5)': by('churn.rssRatio').value ?? 0,
      }),
  'pipeline3.64 msg/s (goal ≥ 1 M)': rate('pipeline3.64'),
  ...(dmaRan
    ? {
        'dma.oneway.64 / kernel.send.64, median of paired rounds (goal ≥ 0.7)': by('dma.oneway.pairedRatio').value ?? 0,
        'dma.oneway.64 / kernel.send.64, cases run apart': round(rate('dma.oneway.64') / rate('kernel.send.64')),
        'kernel.call.64 p50 / dma.call.64 p50': round(by('kernel.call.64').p50us / by('dma.call.64').p50us),
      }
    : {}),
  ...(cudaPrefix !== undefined
    ? {
        [`${cudaPrefix}.launchPerMessage.64 p50 / ${cudaPrefix}.call.64 p50 (goal ≥ 10)`]: round(
          by(`${cudaPrefix}.launchPerMessage.64`).p50us / by(`${cudaPrefix}.call.64`).p50us,
        ),
        [`${cudaPrefix}.sustained.64 msg/s (goal ≥ 1 M)`]: rate(`${cudaPrefix}.sustained.64`),
        [`${cudaPrefix}.sustained.64 / ${cudaPrefix}.launchPerMessage.64`]: round(
          rate(`${cudaPrefix}.sustained.64`) / rate(`${cudaPrefix}.launchPerMessage.64`),
        ),
        [`${cudaPrefix}.migrate.pauseMs, 1 MiB device state (median ms)`]:
          cases.find((c) => c.name === `${cudaPrefix}.migrate.pauseMs`)?.value ?? 'skipped (one device)',
      }
    : {}),
  ...(webgpuRan
    ? {
        'webgpu.sustained.64 msg/s (goal ≥ 2 M on lavapipe)': rate('webgpu.sustained.64'),
        'webgpu.sustained.64 / webgpu.dispatchPerMessage.64 (goal ≥ 100)': round(
          rate('webgpu.sustained.64') / rate('webgpu.dispatchPerMessage.64'),
        ),
        'webgpu.call.64 p50 / webgpu.raw.rtt.64 p50, median of paired rounds (goal ≤ 1.5)':
          by('webgpu.call.pairedRatio').value ?? 0,
      }
    : {}),
  ...(cases.some((c) => c.name === 'cluster.call.64')
    ? {
        'cluster.call.64 p50 / nats.request.64 p50 (goal ≤ 1.3)': round(
          by('cluster.call.64').p50us / by('nats.request.64').p50us,
        ),
        'cluster.send.64 msg/s, two processes (goal ≥ 1 M)': rate('cluster.send.64'),
        'cluster.send.64 / nats.publish.64, median of paired rounds (goal ≥ 2)':
          by('cluster.send.pairedRatio').value ?? 0,
        'cluster.atLeastOnce.64 msg/s (goal ≥ 100 k)': rate('cluster.atLeastOnce.64'),
      }
    : {}),
  'pipeline3.64 / pipeline3.host.64 (goal ≥ 5)': round(rate('pipeline3.64') / rate('pipeline3.host.64')),
  'restart.ms / launch.call.ms': round((by('restart.ms').value ?? 0) / (by('launch.call.ms').value ?? 1)),
  'tracing.ratio01.64 / tracing.off.64, median of paired rounds (goal ≥ 0.9)':
    by('tracing.ratio01.pairedRatio').value ?? 0,
  'tracing.all.64 msg/s (goal ≥ 500 k)': rate('tracing.all.64'),
  'tracing.export spans/s': by('tracing.export').value ?? 0,
  'migrate.pauseMs, 1 MiB state + full queue (median ms)': by('migrate.pauseMs').value ?? 0,
  'migrate.pauseMs / launch.ms': round((by('migrate.pauseMs').value ?? 0) / (by('launch.ms').value ?? 1)),
};
const ratios = Object.fromEntries(
  Object.entries(allRatios).filter(([, value]) => !(typeof value === 'number' && Number.isNaN(value))),
);
console.log('\nratios and goals:');
for (const [name, value] of Object.entries(ratios)) console.log(`  ${name.padEnd(58)} ${value}`);
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
  // The picture beside the figures: ringkernel against postMessage, Piscina and a raw ring, from this run.
  const chartFile = jsonFile.replace(/(\.json)?$/, '.svg');
  if (only === undefined) writeFileSync(chartFile, renderBenchChart(cases, meta));
  console.log(only === undefined ? `wrote ${jsonFile} and ${chartFile}` : `wrote ${jsonFile}`);
}
