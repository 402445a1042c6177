import type { DegradationSignals } from '../operations/degradation-manager.js';

/** A kernel's figures, as the load meter reads them. */
export interface MeteredKernel {
  metrics(): {
    readonly inputQueueDepth: number;
    readonly inputQueueCapacity: number;
    readonly messagesProcessed: number;
    readonly messagesFailed: number;
  };
}

/** What the load meter reads besides the kernels. */
export interface LoadSources {
  readonly kernels: Iterable<MeteredKernel>;
  /** Each circuit breaker's state. */
  readonly breakers: readonly { readonly state: string }[];
  /** The memory dashboard's pressure, 0…1. */
  readonly memoryPressure: number;
}

/**
 * Measures the degradation signals: the fullest input queue, memory pressure, the error rate since the last
 * measurement, and the share of open circuit breakers.
 */
export class LoadMeter {
  #last = { processed: 0, failed: 0 };

  /** The signals now (the error rate counts what the kernels handled since the last call). */
  measure(sources: LoadSources): DegradationSignals {
    let queuePressure = 0;
    let processed = 0;
    let failed = 0;
    for (const kernel of sources.kernels) {
      const metrics = kernel.metrics();
      queuePressure = Math.max(queuePressure, metrics.inputQueueDepth / metrics.inputQueueCapacity);
      processed += metrics.messagesProcessed;
      failed += metrics.messagesFailed;
    }
    const handled = processed - this.#last.processed + (failed - this.#last.failed);
    const errorRate = handled > 0 ? Math.max(0, failed - this.#last.failed) / handled : 0;
    this.#last = { processed, failed };
    const breakers = sources.breakers;
    const open = breakers.filter((breaker) => breaker.state !== 'Closed').length;
    return {
      queuePressure: Math.min(1, queuePressure),
      memoryPressure: sources.memoryPressure,
      errorRate,
      openBreakers: breakers.length === 0 ? 0 : open / breakers.length,
    };
  }
}
