import { Worker } from 'node:worker_threads';
import type { ExporterThreadInit, ExporterThreadReport, ExporterThreadRequest } from './exporter-thread-protocol.js';
import type { KernelNames } from './record-to-span.js';
import { ExporterCounter, type TelemetryStats } from './telemetry-exporter.js';
import { telemetryRingBacklog } from './telemetry-ring.js';

const ENTRY = new URL('./exporter-thread-main.js', import.meta.url);

/**
 * The runtime's handle on its exporter thread: a worker thread running a {@link TelemetryExporter} over the same
 * telemetry rings (SharedArrayBuffers), so spans are built, encoded and sent on a thread of their own and the
 * thread that sends messages only writes records. Control only crosses the port (rings added and retired, flush,
 * shutdown); counts come back through shared counters. The thread is unref'd: it never keeps the process alive,
 * except while a flush or shutdown waits for it.
 */
export class ExporterThread {
  readonly #worker: Worker;
  readonly #counters: BigInt64Array;
  /** Rings whose backlog `stats()` reports; retired ones leave after a flush has drained them. */
  readonly #rings = new Map<SharedArrayBuffer, boolean>();
  readonly #waiting = new Map<number, () => void>();
  #nextSeq = 1;
  #exited = false;
  #warmedUp = 0;
  /** Settles once the thread has loaded, compiled its export path and listens (or has exited). */
  readonly ready: Promise<void>;

  constructor(init: Omit<ExporterThreadInit, 'counters'>, onFirstFailure: (message: string) => void) {
    const counters = new SharedArrayBuffer(ExporterCounter.SIZE * 8);
    this.#counters = new BigInt64Array(counters);
    const workerData: ExporterThreadInit = { ...init, counters };
    this.#worker = new Worker(ENTRY, { workerData, name: 'ringkernel-exporter' });
    let ready: () => void = () => {};
    this.ready = new Promise<void>((resolve) => {
      ready = resolve;
    });
    this.#worker.on('message', (report: ExporterThreadReport) => {
      if (report.type === 'firstFailure') onFirstFailure(report.message);
      else if (report.type === 'ready') {
        this.#warmedUp = report.warmedUp;
        ready();
      } else this.#settle(report.seq);
    });
    this.#worker.on('error', (error: Error) => {
      process.emitWarning(`ringkernel: the trace exporter thread failed: ${error.message}`, 'RingKernelWarning');
    });
    this.#worker.on('exit', () => {
      this.#exited = true;
      ready();
      for (const seq of [...this.#waiting.keys()]) this.#settle(seq);
    });
    // Held until the thread has loaded (a build awaiting `ready` must keep the process alive), then unref'd —
    // after the listeners, since adding a 'message' listener refs the worker's port again.
    void this.ready.then(() => {
      if (this.#waiting.size === 0) this.#worker.unref();
    });
  }

  /** Synthetic records the thread ran its export path over before it was ready (0 until then). */
  get warmedUp(): number {
    return this.#warmedUp;
  }

  addRing(ring: SharedArrayBuffer): void {
    this.#rings.set(ring, false);
    this.#post({ type: 'addRing', ring });
  }

  retireRing(ring: SharedArrayBuffer): void {
    if (this.#rings.has(ring)) this.#rings.set(ring, true);
    this.#post({ type: 'retireRing', ring });
  }

  nameKernel(instance: number, names: KernelNames): void {
    this.#post({ type: 'nameKernel', instance, names });
  }

  stats(): TelemetryStats {
    let dropped = this.#retiredDropped;
    let pending = 0;
    for (const ring of this.#rings.keys()) {
      const backlog = telemetryRingBacklog(ring);
      dropped += backlog.dropped;
      pending += backlog.pending;
    }
    const counters = this.#counters;
    return {
      spansExported: Number(Atomics.load(counters, ExporterCounter.EXPORTED)),
      spansFailed: Number(Atomics.load(counters, ExporterCounter.FAILED)),
      exportsFailed: Number(Atomics.load(counters, ExporterCounter.EXPORTS_FAILED)),
      recordsDropped: dropped,
      recordsPending: pending,
    };
  }

  /** Drops counted in rings that are gone from `#rings`. */
  #retiredDropped = 0;

  async flush(): Promise<void> {
    await this.#request((seq) => ({ type: 'flush', seq }));
    // Retired rings are drained now: keep only their final drop counts.
    for (const [ring, retired] of this.#rings) {
      if (retired && telemetryRingBacklog(ring).pending === 0) {
        this.#retiredDropped += telemetryRingBacklog(ring).dropped;
        this.#rings.delete(ring);
      }
    }
  }

  async shutdown(timeoutMs: number): Promise<void> {
    // The thread runs at the lowest priority: on a machine busy with other work it may answer late, so shutdown
    // waits for it no longer than its own timeout and a second more; what it had not delivered stays counted as
    // pending (recordsPending).
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs + 1000);
    });
    await Promise.race([this.#request((seq) => ({ type: 'shutdown', seq, timeoutMs })), late]);
    clearTimeout(timer);
    await this.#worker.terminate();
  }

  #request(make: (seq: number) => ExporterThreadRequest): Promise<void> {
    if (this.#exited) return Promise.resolve();
    const seq = this.#nextSeq++;
    return new Promise<void>((resolve) => {
      this.#waiting.set(seq, resolve);
      this.#worker.ref(); // a pending request keeps the process alive until the thread answers
      this.#post(make(seq));
    });
  }

  #settle(seq: number): void {
    const resolve = this.#waiting.get(seq);
    this.#waiting.delete(seq);
    if (this.#waiting.size === 0) this.#worker.unref();
    resolve?.();
  }

  #post(request: ExporterThreadRequest): void {
    if (!this.#exited) this.#worker.postMessage(request);
  }
}
