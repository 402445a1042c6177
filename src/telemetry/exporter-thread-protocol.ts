import type { KernelNames } from './record-to-span.js';

/** What the exporter thread is started with (its `workerData`). */
export interface ExporterThreadInit {
  readonly exporter: 'otlp' | 'console';
  readonly endpoint: string;
  readonly serviceName: string;
  readonly exportIntervalMs: number;
  readonly maxExportBatchSize: number;
  readonly exportTimeoutMs: number | undefined;
  /** The thread's share of one core at most (event-loop utilization over a second); past it, records wait. */
  readonly maxCpuShare: number;
  /** {@link ExporterCounter} slots the thread publishes its counts in. */
  readonly counters: SharedArrayBuffer;
}

/** Requests from the runtime to its exporter thread. */
export type ExporterThreadRequest =
  | { readonly type: 'addRing'; readonly ring: SharedArrayBuffer }
  | { readonly type: 'retireRing'; readonly ring: SharedArrayBuffer }
  | { readonly type: 'nameKernel'; readonly instance: number; readonly names: KernelNames }
  | { readonly type: 'flush'; readonly seq: number }
  | { readonly type: 'shutdown'; readonly seq: number; readonly timeoutMs: number };

/** Reports from the exporter thread. */
export type ExporterThreadReport =
  /** Loaded, and its export path run over `warmedUp` synthetic records (so compiled) before any real one. */
  | { readonly type: 'ready'; readonly warmedUp: number }
  | { readonly type: 'done'; readonly seq: number }
  | { readonly type: 'firstFailure'; readonly message: string };
