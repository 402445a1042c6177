import type { DeviceBatchSnapshot } from '../kernel/device-batch-metrics.js';
import type { LatencySnapshot } from '../kernel/latency-histogram.js';

/** The part of a kernel handle the metrics read. */
export interface MeteredKernel {
  readonly name: string;
  readonly status: string;
  readonly restarts: number;
  readonly migrations: number;
  readonly device: number;
  counters(): {
    readonly received: number;
    readonly processed: number;
    readonly failed: number;
    readonly dropped: number;
  };
  metrics(): { readonly inputQueueDepth: number; readonly outputQueueDepth: number; readonly sendStalls: number };
  readonly handlerLatency: { snapshot(): LatencySnapshot };
  readonly callLatency: { snapshot(): LatencySnapshot };
  readonly hopLatency: { snapshot(): LatencySnapshot };
  /** A device kernel's batch metrics (WebGPU); undefined for kernels on CPU workers. */
  readonly deviceBatches?: { snapshot(): DeviceBatchSnapshot } | undefined;
}

/** One kernel's per-kernel series for one scrape. */
export interface KernelSeriesRow {
  readonly kernel: string;
  /** Still running (queue depths and device only exist for live kernels). */
  readonly live: MeteredKernel | undefined;
  readonly received: number;
  readonly processed: number;
  readonly failed: number;
  readonly dropped: number;
  readonly restarts: number;
  readonly migrations: number;
  readonly handlerLatency: LatencySnapshot;
  readonly callLatency: LatencySnapshot;
  readonly hopLatency: LatencySnapshot;
  readonly deviceBatches: DeviceBatchSnapshot | undefined;
}

/** Scrapes an ended kernel's final series stays in. */
const ENDED_SCRAPES = 2;
/** Ended kernels kept at most (the oldest go first), so a churn of short-lived kernels stays bounded. */
const ENDED_LIMIT = 1000;

/**
 * The per-kernel series of one scrape: live kernels, and kernels that ended since, with their final counts, for
 * {@link ENDED_SCRAPES} more scrapes — a kernel that ends between two scrapes still has its last counts seen.
 * A scrape is one synchronous pass of the registry over its metrics: the first metric that asks takes the
 * snapshot, the rest of that pass share it.
 */
export class KernelSeriesBook {
  readonly #live: () => readonly MeteredKernel[];
  readonly #ended = new Map<string, { row: KernelSeriesRow; scrapesLeft: number }>();
  #current: readonly KernelSeriesRow[] | undefined;

  constructor(live: () => readonly MeteredKernel[]) {
    this.#live = live;
  }

  /** A kernel has ended: its final counts join the next scrapes. */
  ended(kernel: MeteredKernel): void {
    this.#ended.delete(kernel.name);
    this.#ended.set(kernel.name, { row: { ...rowOf(kernel), live: undefined }, scrapesLeft: ENDED_SCRAPES });
    if (this.#ended.size > ENDED_LIMIT) this.#ended.delete(this.#ended.keys().next().value as string);
  }

  /** Kernels ended and still reported. */
  get endedCount(): number {
    return this.#ended.size;
  }

  /** This scrape's rows. */
  rows(): readonly KernelSeriesRow[] {
    if (this.#current !== undefined) return this.#current;
    const live = this.#live();
    const names = new Set(live.map((kernel) => kernel.name));
    const rows: KernelSeriesRow[] = live.map(rowOf);
    for (const [name, ended] of this.#ended) {
      // A kernel launched again under the name starts its series over (a counter reset, as Prometheus expects).
      if (names.has(name) || ended.scrapesLeft <= 0) {
        this.#ended.delete(name);
        continue;
      }
      ended.scrapesLeft--;
      rows.push(ended.row);
    }
    this.#current = rows;
    queueMicrotask(() => {
      this.#current = undefined;
    });
    return rows;
  }
}

function rowOf(kernel: MeteredKernel): KernelSeriesRow {
  const counters = kernel.counters();
  return {
    kernel: kernel.name,
    live: kernel,
    received: counters.received,
    processed: counters.processed,
    failed: counters.failed,
    dropped: counters.dropped,
    restarts: kernel.restarts,
    migrations: kernel.migrations,
    handlerLatency: kernel.handlerLatency.snapshot(),
    callLatency: kernel.callLatency.snapshot(),
    hopLatency: kernel.hopLatency.snapshot(),
    deviceBatches: kernel.deviceBatches?.snapshot(),
  };
}
