/**
 * One scale case in a process of its own (`node dist/bench/scale-child.js <case> <count> [config]`), so its RSS
 * starts from a fresh baseline and no other case's garbage is counted. Prints one JSON line with the figures.
 * `config`: runtime settings as JSON, over the bench's, for A/B runs (e.g. `'{"workerHeapMB":0}'`).
 *
 * - `idle`: launches `count` kernels (64-byte messages, the default queue), each activated and called once, then
 *   idles: launches per second over the whole launch and the CPU time each took (all threads), RSS and process
 *   CPU while idle.
 * - `churn`: `count` launch / call / terminate cycles with at most 200 kernels alive: RSS after, over RSS before;
 *   and over RSS halfway through.
 * - `launch`: launches `count` kernels as `idle` does, and only that (for counts past the bench's, up to 10⁵): a
 *   line on stderr every 10 000 (seconds, CPU µs per launch so far, RSS, host heap used, ring memory reserved), then the figures.
 */
import { RingKernelRuntime } from '../src/index.js';
import { BenchIdle } from './bench-kernels.js';

const [mode = 'idle', countArg = '10000', configArg = '{}'] = process.argv.slice(2);
const count = Number(countArg);
const WINDOW = 200;
const rssMiB = (): number => process.memoryUsage().rss / 2 ** 20;
const sample = { seq: 0, flags: 0, ts: 0, data: new Float64Array(6) };

const runtime = await RingKernelRuntime.builder()
  .backend('cpu')
  .config({ maxKernelsPerWorker: 1 << 20, ...JSON.parse(configArg) })
  .build();
let figures: Record<string, number>;
try {
  if (mode === 'launch') {
    const started = performance.now();
    const cpu0 = process.cpuUsage();
    const handles = [];
    const progress = (launched: number): Record<string, number> => {
      const cpu = process.cpuUsage(cpu0);
      return {
        kernels: launched,
        seconds: (performance.now() - started) / 1000,
        launchCpuUs: (cpu.user + cpu.system) / launched,
        rssMB: rssMiB(),
        heapUsedMB: process.memoryUsage().heapUsed / 2 ** 20,
        // Ring memory reserved (shared memory's full size, resident only where touched).
        arrayBuffersGB: process.memoryUsage().arrayBuffers / 2 ** 30,
      };
    };
    for (let i = 0; i < count; i += 1000) {
      const wave = Array.from({ length: Math.min(1000, count - i) }, (_, k) =>
        runtime.launch(BenchIdle, 1, 1, { name: `launch-${i + k}`, autoActivate: true }),
      );
      handles.push(...(await Promise.all(wave)));
      if (handles.length % 10_000 === 0) console.error(JSON.stringify(progress(handles.length)));
    }
    figures = progress(handles.length);
  } else if (mode === 'idle') {
    const started = performance.now();
    const launchCpu0 = process.cpuUsage();
    // Launched in waves (each a batch of concurrent launches), as an application bringing up its actors would.
    const handles = [];
    for (let i = 0; i < count; i += 1000) {
      const wave = Array.from({ length: Math.min(1000, count - i) }, (_, k) =>
        runtime.launch(BenchIdle, 1, 1, { name: `idle-${i + k}`, autoActivate: true }),
      );
      handles.push(...(await Promise.all(wave)));
    }
    const launchSeconds = (performance.now() - started) / 1000;
    // Every thread's CPU (host, workers, the garbage collector's helpers): what the wall-clock rate costs, read
    // apart from how busy the machine was.
    const launchCpu = process.cpuUsage(launchCpu0);
    await Promise.all(handles.map((handle) => handle.call(sample)));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const cpu = process.cpuUsage(cpu0);
    figures = {
      launchesPerSec: count / launchSeconds,
      launchCpuUs: (launchCpu.user + launchCpu.system) / count,
      rssMB: rssMiB(),
      cpuPercent: ((cpu.user + cpu.system) / 1000 / (performance.now() - wall0)) * 100,
    };
  } else {
    const cycle = async (i: number) => {
      const handle = await runtime.launch(BenchIdle, 1, 1, { name: `churn-${i}`, autoActivate: true });
      await handle.call(sample);
      return handle;
    };
    // One window first (warm-up: JIT, workers), ended: the baseline is a runtime that has run WINDOW kernels.
    const first = await Promise.all(Array.from({ length: WINDOW }, (_, i) => cycle(i)));
    await Promise.all(first.map((handle) => handle.terminate()));
    const before = rssMiB();
    const started = performance.now();
    let half = before;
    for (let i = 0; i < count; i += WINDOW) {
      const wave = await Promise.all(
        Array.from({ length: Math.min(WINDOW, count - i) }, (_, k) => cycle(WINDOW + i + k)),
      );
      await Promise.all(wave.map((handle) => handle.terminate()));
      if (i < count / 2 && i + WINDOW >= count / 2) half = rssMiB();
    }
    const seconds = (performance.now() - started) / 1000;
    const after = rssMiB();
    figures = {
      rssBeforeMB: before,
      rssAfterMB: after,
      rssRatio: after / before,
      // What the second half of the cycles added: the heaps have grown to their working size by then, so this
      // reads a leak apart from that growth (1.0: none).
      rssSecondHalfRatio: after / half,
      cyclesPerSec: count / seconds,
    };
  }
} finally {
  await runtime.shutdown();
}
console.log(JSON.stringify(figures));
