/**
 * The `dma` transfer strategy's cases, twins of kernel.send.64 and kernel.call.64 (which run `direct`): the same
 * kernels and messages, with the native mirror thread copying every frame to a replica ring and back.
 * - dma.oneway.64: one way into a sink kernel, counted when the kernel has processed them.
 * - dma.call.64: request/response, one call at a time.
 * - dma.oneway.pairedRatio: dma.oneway.64's rate over kernel.send.64's, the median of alternating rounds in which a
 *   `dma` sink and a `direct` one in the same runtime, both warmed up, each take the same stream back to back (which
 *   goes first alternating): the two cases run minutes apart otherwise, and one noisy neighbour moves their ratio.
 */
import { type KernelHandle, RingKernelRuntime } from '../src/internal.js';
import { BenchEcho, BenchSink } from './bench-kernels.js';
import { type CaseResult, median } from './case-result.js';
import { sinkSendRate, yieldTurn } from './sink-rate.js';

/** What a case reports. */
export type DmaCaseResult = CaseResult;

/** Runs both cases; `percentiles` is run.ts's, so the figures are computed the same way as their twins'. */
export async function dmaCases(
  throughputN: number,
  rttN: number,
  percentiles: (samples: number[]) => { p50us: number; p99us: number },
  pairedRounds = 9,
): Promise<DmaCaseResult[]> {
  const runtime = await RingKernelRuntime.builder().backend('cpu').build();
  const results: DmaCaseResult[] = [];
  try {
    const sink = await runtime.launch(BenchSink, 1, 1, { autoActivate: true, transferStrategy: 'dma' });
    if (sink.metrics().transferStrategy !== 'dma') {
      console.log('dma.*: skipped, the native mirror library is not available');
      return [];
    }
    const sample = { seq: 0, flags: 0, ts: 0, data: new Float64Array(6) };
    const sendRate = await sinkSendRate(sink, sample, throughputN);
    const processed = (): number => sink.counters().processed;
    // One-way latency, unloaded, as for kernel.send.64 — except that after 200 µs of spinning the wait yields to
    // the event loop, where the mirror's wake-up callback for a parked kernel runs (a pure spin would starve it).
    const oneWay: number[] = [];
    for (let i = 0; i < rttN; i++) {
      const before = processed();
      const t0 = performance.now();
      sink.trySend(sample);
      while (processed() === before) if (performance.now() - t0 > 0.2) await yieldTurn();
      oneWay.push((performance.now() - t0) * 1000);
    }
    results.push({ name: 'dma.oneway.64', msgsPerSec: Math.round(sendRate), ...percentiles(oneWay) });
    results.push(await pairedOneWay(runtime, sink, sample, pairedRounds));
    await sink.terminate();

    const echo = await runtime.launch(BenchEcho, 1, 1, { autoActivate: true, transferStrategy: 'dma' });
    for (let i = 0; i < 2_000; i++) await echo.call(sample);
    const calls: number[] = [];
    const callStart = performance.now();
    for (let i = 0; i < rttN * 2; i++) {
      sample.seq = i;
      const t0 = performance.now();
      await echo.call(sample);
      calls.push((performance.now() - t0) * 1000);
    }
    const callRate = calls.length / ((performance.now() - callStart) / 1000);
    results.push({ name: 'dma.call.64', msgsPerSec: Math.round(callRate), ...percentiles(calls) });
    await echo.terminate();
  } finally {
    await runtime.shutdown();
  }
  return results;
}

/** Messages per side in each paired round: a few hundred milliseconds of sending, several of the mirror's naps. */
const PAIRED_ROUND_N = 600_000;

/** `dma.oneway.pairedRatio`: the `dma` sink against a `direct` twin, in alternating back-to-back rounds. */
async function pairedOneWay<In>(
  runtime: RingKernelRuntime,
  dma: KernelHandle<In>,
  sample: In & { seq: number },
  rounds: number,
): Promise<DmaCaseResult> {
  const direct = (await runtime.launch(BenchSink, 1, 1, {
    name: 'bench.sink.direct',
    autoActivate: true,
  })) as unknown as KernelHandle<In>;
  try {
    const ratios: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const directFirst = round % 2 === 0;
      const first = await sinkSendRate(directFirst ? direct : dma, sample, PAIRED_ROUND_N);
      const second = await sinkSendRate(directFirst ? dma : direct, sample, PAIRED_ROUND_N);
      ratios.push(directFirst ? second / first : first / second);
    }
    const range = `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}`;
    return {
      name: 'dma.oneway.pairedRatio',
      msgsPerSec: 0,
      p50us: 0,
      p99us: 0,
      value: Math.round(median(ratios) * 100) / 100,
      unit: `dma.oneway.64 / kernel.send.64, median of ${rounds} alternating rounds of ${PAIRED_ROUND_N} messages each (each round ${range})`,
    };
  } finally {
    await direct.terminate();
  }
}
