/**
 * The CUDA backend's cases (issue 7), each against launching a kernel per message in the same run:
 * - `<p>.inject.64`: host → persistent kernel injection latency, one message at a time: from `trySend` until the
 *   device's ControlBlock counts it received.
 * - `<p>.call.64`: a `call` round trip to the resident add-one kernel.
 * - `<p>.sustained.64` / `<p>.sustained.1024`: msg/s into a resident sink kernel, counted when the device has
 *   processed them.
 * - `<p>.dma.sustained.64`, `<p>.dma.call.64`: the same over `dma` (rings in device memory, copied by the mirror).
 * - `<p>.launchPerMessage.64`: the alternative a persistent kernel replaces: per message, copy the frame in,
 *   `cuLaunchKernel` a one-shot kernel running the same handler (`rk_single_frame_kernel`), copy the answer out,
 *   synchronise.
 *
 * `<p>` is `cuda` on a real GPU. Without one the cases run on the emulated device (`cuda-emu`, CPU threads stand in
 * for the GPU): the harness and the ratios' direction are checked, but no figure is a GPU's.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  BytesMessage,
  compileCudaKernel,
  createFrameRing,
  FrameProducer,
  probeCuda,
  type RingKernelRuntime,
  RingKernelRuntime as Runtime,
  requireCudaDriver,
} from '../src/internal.js';
import { type CaseResult, round } from './case-result.js';
import { BenchCudaAddOne, BenchCudaHeavyState, BenchCudaSink } from './cuda-bench-kernels.js';
import { sinkSendRate, yieldTurn } from './sink-rate.js';

/** What a case reports. */
export type CudaCaseResult = CaseResult;

const EMULATOR = fileURLToPath(new URL('../../native/build/libcuda-emu.so', import.meta.url));

/** Which device the cases run on: a GPU, the emulator, or none (then they are skipped). */
export function cudaBenchTarget(): { prefix: 'cuda' | 'cuda-emu'; reason: string } | undefined {
  if (process.env.RINGKERNEL_LIBCUDA === undefined) {
    const real = probeCuda();
    if (real.available) return { prefix: 'cuda', reason: real.reason };
  }
  if (!existsSync(EMULATOR)) return undefined;
  process.env.RINGKERNEL_LIBCUDA = EMULATOR;
  // Two emulated devices, for the migration case (read by the emulator's cuInit).
  process.env.RINGKERNEL_EMU_DEVICES ??= '2';
  const emulated = probeCuda();
  return emulated.available ? { prefix: 'cuda-emu', reason: `emulated device: ${emulated.reason}` } : undefined;
}

/** Runs every case; `percentiles` is run.ts's. */
export async function cudaCases(
  throughputN: number,
  rttN: number,
  percentiles: (samples: number[]) => { p50us: number; p99us: number },
): Promise<CudaCaseResult[]> {
  const before = process.env.RINGKERNEL_LIBCUDA;
  try {
    return await runCudaCases(throughputN, rttN, percentiles);
  } finally {
    // The emulator stands in for libcuda only here: the cases after these must see this machine as it is.
    if (before === undefined) delete process.env.RINGKERNEL_LIBCUDA;
    else process.env.RINGKERNEL_LIBCUDA = before;
  }
}

async function runCudaCases(
  throughputN: number,
  rttN: number,
  percentiles: (samples: number[]) => { p50us: number; p99us: number },
): Promise<CudaCaseResult[]> {
  const target = cudaBenchTarget();
  if (target === undefined) {
    console.log('cuda.*: skipped, no CUDA device and the CUDA emulator is not built');
    return [];
  }
  const { prefix } = target;
  console.log(`${prefix}.*: ${target.reason}`);
  const results: CudaCaseResult[] = [];
  const runtime: RingKernelRuntime = await Runtime.builder().backend('cuda').config({ workers: 1 }).build();
  try {
    const sink = await runtime.launch(BenchCudaSink, 1, 1, { autoActivate: true, queueCapacity: 4096 });
    const small = Object.assign(new Uint8Array(64), { seq: 0 });
    const received = (): number => sink.counters().received;
    const injections: number[] = [];
    for (let i = 0; i < rttN + 200; i++) {
      const before = received();
      const t0 = performance.now();
      sink.trySend(small);
      while (received() === before) if (performance.now() - t0 > 0.5) await yieldTurn();
      if (i >= 200) injections.push((performance.now() - t0) * 1000);
    }
    const injectRate = injections.length / (injections.reduce((a, b) => a + b, 0) / 1e6);
    results.push({ name: `${prefix}.inject.64`, msgsPerSec: Math.round(injectRate), ...percentiles(injections) });
    const rate64 = await sinkSendRate(sink, small, throughputN);
    results.push({ name: `${prefix}.sustained.64`, msgsPerSec: Math.round(rate64), p50us: 0, p99us: 0 });
    const large = Object.assign(new Uint8Array(1024), { seq: 0 });
    const rate1k = await sinkSendRate(sink, large, Math.max(10_000, Math.floor(throughputN / 4)));
    results.push({ name: `${prefix}.sustained.1024`, msgsPerSec: Math.round(rate1k), p50us: 0, p99us: 0 });
    await sink.terminate();

    const echo = await runtime.launch(BenchCudaAddOne, 1, 1, { autoActivate: true });
    const words = new Uint8Array(new Uint32Array(16).map((_, i) => i).buffer);
    for (let i = 0; i < 500; i++) await echo.call(words);
    const calls: number[] = [];
    const callStart = performance.now();
    for (let i = 0; i < rttN; i++) {
      const t0 = performance.now();
      await echo.call(words);
      calls.push((performance.now() - t0) * 1000);
    }
    const callRate = calls.length / ((performance.now() - callStart) / 1000);
    results.push({ name: `${prefix}.call.64`, msgsPerSec: Math.round(callRate), ...percentiles(calls) });
    await echo.terminate();

    // The same two measurements over dma: rings in device memory, copied by the mirror thread.
    const dmaSink = await runtime.launch(BenchCudaSink, 1, 1, {
      name: 'sink-dma',
      autoActivate: true,
      queueCapacity: 4096,
      transferStrategy: 'dma',
    });
    const dmaRate = await sinkSendRate(dmaSink, small, throughputN);
    results.push({ name: `${prefix}.dma.sustained.64`, msgsPerSec: Math.round(dmaRate), p50us: 0, p99us: 0 });
    await dmaSink.terminate();
    const dmaEcho = await runtime.launch(BenchCudaAddOne, 1, 1, {
      name: 'echo-dma',
      autoActivate: true,
      transferStrategy: 'dma',
    });
    for (let i = 0; i < 200; i++) await dmaEcho.call(words);
    const dmaCalls: number[] = [];
    const dmaStart = performance.now();
    for (let i = 0; i < rttN; i++) {
      const t0 = performance.now();
      await dmaEcho.call(words);
      dmaCalls.push((performance.now() - t0) * 1000);
    }
    const dmaCallRate = dmaCalls.length / ((performance.now() - dmaStart) / 1000);
    results.push({ name: `${prefix}.dma.call.64`, msgsPerSec: Math.round(dmaCallRate), ...percentiles(dmaCalls) });
    await dmaEcho.terminate();

    results.push(launchPerMessage(prefix, words, Math.max(200, Math.floor(rttN / 4)), percentiles));
    for (const strategy of ['mapped', 'dma'] as const) {
      const migration = await migrationCase(runtime, prefix, rttN >= 10_000 ? 20 : 6, strategy);
      if (migration !== undefined) results.push(migration);
    }
  } finally {
    await runtime.shutdown();
  }
  return results;
}

/** Copy in, launch a one-shot kernel with the same handler, copy out, synchronise: per message. */
function launchPerMessage(
  prefix: string,
  payload: Uint8Array,
  n: number,
  percentiles: (samples: number[]) => { p50us: number; p99us: number },
): CudaCaseResult {
  const driver = requireCudaDriver();
  driver.init();
  const device = driver.device(0);
  const info = driver.deviceInfo(0);
  const context = driver.primaryContextRetain(device);
  const compiled = compileCudaKernel(
    BenchCudaAddOne,
    prefix === 'cuda-emu'
      ? { kind: 'emulated' }
      : { kind: 'ptx', arch: `sm_${info.computeCapability.major}${info.computeCapability.minor}` },
  );
  // One frame as the host writes it: through a FrameProducer into a ring, then the frame's bytes.
  const ring = createFrameRing({ capacityBytes: 4096, maxPayloadSize: 512 });
  new FrameProducer(ring).tryWrite(BytesMessage, payload);
  const frameLength = new DataView(ring.ring).getUint32(8, true);
  const frame = new Uint8Array(ring.ring, 8, (frameLength + 7) & ~7).slice();
  const maxFrameLength = 96 + 512;
  const answer = new Uint8Array(maxFrameLength);
  const module = driver.moduleLoadData(compiled.image);
  const fn = driver.moduleGetFunction(module, 'rk_single_frame_kernel');
  const frameIn = driver.memAlloc(maxFrameLength);
  const frameOut = driver.memAlloc(maxFrameLength);
  const stream = driver.streamCreate();
  const once = (): void => {
    driver.memcpyHtoDAsync(frameIn, frame, stream);
    driver.launchKernel(fn, { grid: [1, 1, 1], block: [1, 1, 1], stream }, [
      { type: 'pointer', value: frameIn },
      { type: 'pointer', value: frameOut },
      { type: 'u32', value: maxFrameLength },
      { type: 'pointer', value: 0n },
    ]);
    driver.memcpyDtoHAsync(answer, frameOut, stream);
    driver.streamSynchronize(stream);
  };
  try {
    once();
    // The answer is the add-one of the payload: the baseline does the same work as the persistent kernel.
    const out = new Uint32Array(answer.buffer.slice(96, 96 + payload.length));
    if (out[1] !== 2) {
      const result = new DataView(answer.buffer).getUint32(92, true);
      throw new Error(
        `launch-per-message answered ${out[1]} for 1 + 1 (length ${new DataView(answer.buffer).getUint32(0, true)}, result ${result})`,
      );
    }
    for (let i = 0; i < 50; i++) once();
    const samples: number[] = [];
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      once();
      samples.push((performance.now() - t0) * 1000);
    }
    const rate = n / ((performance.now() - start) / 1000);
    return { name: `${prefix}.launchPerMessage.64`, msgsPerSec: Math.round(rate), ...percentiles(samples) };
  } finally {
    driver.streamDestroy(stream);
    driver.memFree(frameIn);
    driver.memFree(frameOut);
    driver.moduleUnload(module);
    void context;
    driver.primaryContextRelease(device);
  }
}

/**
 * `<p>.migrate.pauseMs`: a CUDA kernel with 1 MiB of device state and a queue filled just before, moved between two devices
 * (`kernelMigrator().migrateKernel`): the time it takes no input, as the CPU's `migrate.pauseMs`. Needs two
 * devices (the emulator is given two). `<p>.dma.migrate.pauseMs`: the same kernel on `dma`, whose ring replicas
 * move too (the target's mirror fills them from the host rings at the swap).
 */
async function migrationCase(
  runtime: RingKernelRuntime,
  prefix: string,
  runs: number,
  strategy: 'mapped' | 'dma',
): Promise<CaseResult | undefined> {
  const name = `${prefix}${strategy === 'dma' ? '.dma' : ''}.migrate.pauseMs`;
  if (runtime.gpuTopology().devices.length < 2) {
    console.log(`${name}: skipped, one device`);
    return undefined;
  }
  const handle = await runtime.launch(BenchCudaHeavyState, 1, 1, {
    name: `migrating-${strategy}`,
    device: 0,
    queueCapacity: 4096,
    autoActivate: true,
    transferStrategy: strategy,
  });
  const payload = new Uint8Array(64);
  const pauses: number[] = [];
  for (let run = 0; run < runs; run++) {
    // A queue filled while paused, then running again: the migration quiesces it with what is left.
    await handle.deactivate();
    while (handle.trySend(payload)) {}
    await handle.activate();
    const report = await runtime.kernelMigrator().migrateKernel(handle, run % 2, (run + 1) % 2);
    pauses.push(report.pauseMs);
  }
  await handle.terminate({ drain: false });
  pauses.sort((a, b) => a - b);
  return {
    name,
    msgsPerSec: 0,
    p50us: 0,
    p99us: 0,
    value: round(pauses[Math.floor(pauses.length / 2)] as number),
    unit: `ms (median of ${runs}; worst ${round(pauses.at(-1) as number)} ms; 1 MiB device state, queue filled before each)`,
  };
}
