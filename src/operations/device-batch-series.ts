import { Counter, Gauge, type Registry } from 'prom-client';
import { BATCH_SIZE_BOUNDS, BATCH_STAGES, type DeviceBatchSnapshot } from '../kernel/device-batch-metrics.js';
import type { KernelSeriesBook } from './kernel-series.js';
import { type BucketedSample, type HistogramSample, SnapshotHistogram } from './snapshot-histogram.js';

/**
 * Registers the WebGPU kernels' batch series, read at scrape time from the batch metrics their device thread keeps
 * in shared memory: batches, batch sizes, batches in flight, and each batch's time in upload, dispatch and
 * readback. Kernels on CPU workers have none of these series.
 */
export function registerDeviceBatchMetrics(series: KernelSeriesBook, registers: Registry[]): void {
  const rows = (): { kernel: string; live: boolean; batches: DeviceBatchSnapshot }[] =>
    series
      .rows()
      .flatMap((row) =>
        row.deviceBatches === undefined
          ? []
          : [{ kernel: row.kernel, live: row.live !== undefined, batches: row.deviceBatches }],
      );
  new Counter({
    name: 'ringkernel_webgpu_batches_total',
    help: 'Batches a WebGPU kernel submitted to its device (one dispatch each).',
    labelNames: ['kernel'],
    registers,
    collect() {
      this.reset();
      for (const { kernel, batches } of rows()) this.inc({ kernel }, sum(batches.sizeCounts));
    },
  });
  new SnapshotHistogram({
    name: 'ringkernel_webgpu_batch_messages',
    help: 'Messages per WebGPU batch (the adaptive batch size: small when traffic is light, large when heavy).',
    registers,
    bounds: BATCH_SIZE_BOUNDS,
    read: (): BucketedSample[] =>
      rows().map(({ kernel, batches }) => {
        let seen = 0;
        const cumulative = batches.sizeCounts.map((count) => {
          seen += count;
          return seen;
        });
        return { labels: { kernel }, cumulative, count: seen, sum: batches.messages };
      }),
  });
  new Gauge({
    name: 'ringkernel_webgpu_batches_in_flight',
    help: 'Batches a live WebGPU kernel has submitted and not yet read back.',
    labelNames: ['kernel'],
    registers,
    collect() {
      this.reset();
      for (const { kernel, live, batches } of rows()) if (live) this.set({ kernel }, batches.inFlight);
    },
  });
  new SnapshotHistogram({
    name: 'ringkernel_webgpu_batch_stage_seconds',
    help: "Time per WebGPU batch and stage: upload (packing the frames, writing the buffers, encoding and submitting), dispatch (submit until the batch's readback is mapped: the GPU's work and the copy back), readback (writing the outputs to the rings).",
    registers,
    read: (): HistogramSample[] =>
      rows().flatMap(({ kernel, batches }) =>
        BATCH_STAGES.map((stage) => ({ labels: { kernel, stage }, latency: batches.stages[stage] })),
      ),
  });
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
