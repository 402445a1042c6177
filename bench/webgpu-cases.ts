/**
 * The WebGPU backend's cases, each against RingKernel's old model (one dispatch per message) in the same run:
 * - `webgpu.raw.rtt.64`: the API's own floor: writeBuffer → dispatch → copy → mapAsync of one 64-byte message,
 *   awaited, on the bench's thread (no ring, no device thread).
 * - `webgpu.dispatchPerMessage.64`: RingKernel's old model: the same echo handler and rings, but one dispatch per
 *   message (batches of one, one in flight: upload, dispatch, read back, wait), host writing as fast as it can.
 * - `webgpu.call.64`: a `call` round trip to a resident WGSL echo kernel through the runtime (ring → the device
 *   thread's batch → GPU → ring → host).
 * - `webgpu.call.pairedRatio`: call p50 / raw p50, the median over alternating rounds of the two (which goes first
 *   alternates), after both are warmed up alike: the call path's code takes a few thousand calls to reach its steady
 *   speed (the first thousands run at about twice the steady p50), and a shared machine's noisy moment should fall
 *   on both sides of a round, not on one case. The goal line reads this row; the two rows above hold every sample.
 * - `webgpu.sustained.64` / `.1024`: msg/s into a resident WGSL sink kernel through the runtime (`trySend`),
 *   counted when its ControlBlock says the device has processed them.
 *
 * Where the machine has no GPU the adapter is Mesa's lavapipe (software Vulkan on the CPU): the figures are a
 * software rasteriser's, sharing the machine's cores with the host side.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WebGpuBatchEngine } from '../src/backends/webgpu/batch-engine.js';
import { openWebGpuDevice, probeWebGpu } from '../src/backends/webgpu/webgpu-adapter.js';
import { buildWgslProgram } from '../src/backends/webgpu/wgsl-program.js';
import { BytesMessage, createFrameRing, FrameConsumer, FrameProducer, RingKernelRuntime } from '../src/internal.js';
import { type CaseResult, median } from './case-result.js';
import { sinkSendRate } from './sink-rate.js';
import { BenchWebGpuEcho, BenchWebGpuSink } from './webgpu-bench-kernels.js';

const DRIVER_DIR = fileURLToPath(new URL('../../.webgpu', import.meta.url));

const ECHO_SOURCE = `fn echo(i: u32) -> u32 {
  let m = rk_message(i);
  for (var w = 0u; w < (m.size + 3u) / 4u; w++) { rk_out_word(i, w, rk_in_word(i, w)); }
  rk_emit(i, m.size, m.type_id);
  return RK_E_NONE;
}`;

/** The same handler as a one-shot shader: one message in, one out (the old model's kernel). */
const ONE_SHOT = `@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < arrayLength(&src)) { dst[g.x] = src[g.x]; }
}`;

const sleep = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The API's floor, one 64-byte message: writeBuffer → dispatch → copy → mapAsync, awaited on this thread. */
function rawRoundTrip(device: GPUDevice): { trip: () => Promise<void>; destroy: () => void } {
  const module = device.createShaderModule({ code: ONE_SHOT });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const src = device.createBuffer({ size: 64, usage: 128 | 8 });
  const dst = device.createBuffer({ size: 64, usage: 128 | 4 });
  const readback = device.createBuffer({ size: 64, usage: 1 | 8 });
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: src } },
      { binding: 1, resource: { buffer: dst } },
    ],
  });
  const message = new Uint8Array(64);
  let i = 0;
  const trip = async (): Promise<void> => {
    message[0] = ++i & 0xff;
    device.queue.writeBuffer(src, 0, message);
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(1);
    pass.end();
    encoder.copyBufferToBuffer(dst, 0, readback, 0, 64);
    device.queue.submit([encoder.finish()]);
    await readback.mapAsync(1);
    if (new Uint8Array(readback.getMappedRange())[0] !== (i & 0xff)) throw new Error('one-shot echo came back wrong');
    readback.unmap();
  };
  return {
    trip,
    destroy: () => {
      for (const buffer of [src, dst, readback]) buffer.destroy();
    },
  };
}

/** Round trips of `trip`, one after another: each one's time in µs. */
async function timeTrips(trip: () => Promise<unknown>, count: number, into: number[]): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await trip();
    samples.push((performance.now() - t0) * 1000);
  }
  into.push(...samples);
  return median(samples);
}

const echoProgram = (kernelId: string) =>
  buildWgslProgram({ kernelId, source: ECHO_SOURCE, entry: 'echo', workgroupSize: 64, stateBytes: 0, schemas: [] });

/** Writes `n` messages as fast as the ring takes them and reads every answer: msg/s after the first fifth. */
async function sustained(producer: FrameProducer, consumer: FrameConsumer, size: number, n: number): Promise<number> {
  const message = new Uint8Array(size);
  let sent = 0;
  let received = 0;
  const warm = Math.floor(n / 5);
  let warmAt = 0;
  while (received < n) {
    while (sent < n && producer.tryWrite(BytesMessage, message)) sent++;
    received += consumer.drain(() => {});
    if (warmAt === 0 && received >= warm) warmAt = performance.now();
    if (received < n) await sleep();
  }
  return (n - warm) / ((performance.now() - warmAt) / 1000);
}

/** Runs every case; `percentiles` is run.ts's. */
export async function webgpuCases(
  throughputN: number,
  rttN: number,
  percentiles: (samples: number[]) => { p50us: number; p99us: number },
): Promise<CaseResult[]> {
  if (process.env.RINGKERNEL_WEBGPU_DRIVER_DIR === undefined && existsSync(DRIVER_DIR)) {
    process.env.RINGKERNEL_WEBGPU_DRIVER_DIR = DRIVER_DIR;
  }
  const probe = await probeWebGpu({ allowFallback: true });
  if (!probe.available) {
    console.log(`webgpu.*: skipped, no WebGPU adapter (${probe.reason})`);
    return [];
  }
  console.log(`webgpu.*: ${probe.reason}`);
  const results: CaseResult[] = [];

  const { device } = await openWebGpuDevice({ allowFallback: true });
  // The full runtime path: trySend → input ring → the device thread's batches → output ring / ControlBlock → host.
  const runtime = await RingKernelRuntime.builder()
    .backend('webgpu', { allowFallback: true })
    .config({ workers: 1 })
    .build();
  const raw = rawRoundTrip(device);
  try {
    const input = createFrameRing({ capacityBytes: 1 << 16, maxPayloadSize: 64 });
    const output = createFrameRing({ capacityBytes: 1 << 16, maxPayloadSize: 512 });
    const engine = await WebGpuBatchEngine.create({
      device,
      program: echoProgram('webgpu.dispatchPerMessage.64'),
      input,
      output,
      outputBytes: 64,
      maxBatch: 1,
      inFlight: 1,
    });
    engine.start();
    const perMessage = await sustained(new FrameProducer(input), new FrameConsumer(output), 64, rttN);
    await engine.stop('drain');

    // The call against the raw round trip: both warmed up alike (the call path's code takes a few thousand calls to
    // reach its steady speed), then measured in alternating rounds, so a noisy moment of the shared machine falls on
    // both sides of a round rather than on one case.
    const echo = await runtime.launch(BenchWebGpuEcho, 1, 1, { autoActivate: true });
    const message = new Uint8Array(64);
    const call = () => echo.call(message);
    for (let i = 0; i < 3; i++) {
      await timeTrips(raw.trip, 1_000, []);
      await timeTrips(call, 1_000, []);
    }
    const rounds = rttN >= 5_000 ? 20 : 8;
    const perRound = Math.ceil(rttN / rounds);
    const rawSamples: number[] = [];
    const callSamples: number[] = [];
    const ratios: number[] = [];
    let rawMs = 0;
    let callMs = 0;
    for (let round = 0; round < rounds; round++) {
      const rawFirst = round % 2 === 0;
      let rawP50 = 0;
      let callP50 = 0;
      for (const side of rawFirst ? ['raw', 'call'] : ['call', 'raw']) {
        const t0 = performance.now();
        if (side === 'raw') {
          rawP50 = await timeTrips(raw.trip, perRound, rawSamples);
          rawMs += performance.now() - t0;
        } else {
          callP50 = await timeTrips(call, perRound, callSamples);
          callMs += performance.now() - t0;
        }
      }
      ratios.push(callP50 / rawP50);
    }
    results.push({
      name: 'webgpu.raw.rtt.64',
      msgsPerSec: Math.round(rawSamples.length / (rawMs / 1000)),
      ...percentiles(rawSamples),
    });
    results.push({ name: 'webgpu.dispatchPerMessage.64', msgsPerSec: Math.round(perMessage), p50us: 0, p99us: 0 });
    results.push({
      name: 'webgpu.call.64',
      msgsPerSec: Math.round(callSamples.length / (callMs / 1000)),
      ...percentiles(callSamples),
    });
    results.push({
      name: 'webgpu.call.pairedRatio',
      msgsPerSec: 0,
      p50us: 0,
      p99us: 0,
      value: Math.round(median(ratios) * 100) / 100,
      unit: `call p50 / raw p50, median of ${rounds} alternating rounds of ${perRound} each (each round ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`,
    });
    await echo.terminate();

    const sink = await runtime.launch(BenchWebGpuSink, 1, 1, { autoActivate: true, queueCapacity: 16_384 });
    const small = Object.assign(new Uint8Array(64), { seq: 0 });
    const rate64 = await sinkSendRate(sink, small, throughputN);
    results.push({ name: 'webgpu.sustained.64', msgsPerSec: Math.round(rate64), p50us: 0, p99us: 0 });
    const large = Object.assign(new Uint8Array(1024), { seq: 0 });
    const rate1k = await sinkSendRate(sink, large, Math.max(10_000, Math.floor(throughputN / 4)));
    results.push({ name: 'webgpu.sustained.1024', msgsPerSec: Math.round(rate1k), p50us: 0, p99us: 0 });
    await sink.terminate();
  } finally {
    raw.destroy();
    device.destroy();
    await runtime.shutdown();
  }
  return results;
}
