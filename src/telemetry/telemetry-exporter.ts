import { type ExportResult, ExportResultCode, type InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { OtlpRecordEncoder } from './otlp-record-encoder.js';
import { type KernelNames, spanFromRecord } from './record-to-span.js';
import { SpanRecordReader } from './telemetry-ring.js';

/** What the exporter has done so far. */
export interface TelemetryStats {
  /** Spans the exporter (or span processor) accepted. */
  readonly spansExported: number;
  /** Spans in exports that failed (collector down, refused, timed out), or abandoned at shutdown. */
  readonly spansFailed: number;
  /** Failed export requests. */
  readonly exportsFailed: number;
  /** Span records dropped at the source because a telemetry ring was full (never blocking the data path). */
  readonly recordsDropped: number;
  /** Span records waiting in the rings. */
  readonly recordsPending: number;
}

/** An OTLP request body encoded from records, and how many spans it holds. */
export interface EncodedSpans {
  readonly body: Uint8Array;
  readonly spans: number;
}

/** Sends encoded OTLP requests (the OTLP exporter's HTTP transport). */
export interface EncodedSpansTransport {
  export(batch: EncodedSpans, done: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

/**
 * Where the exporter sends spans: an exporter it batches for itself, a span processor that batches, or — the
 * exporter thread's OTLP path — records encoded straight into OTLP protobuf and an HTTP transport.
 */
export type TelemetrySink =
  | {
      readonly exporter: SpanExporter;
      /** The app's own exporter (`tracing.exporter`): flushed at shutdown, never shut down — it is not ours. */
      readonly borrowed?: boolean;
      readonly processor?: undefined;
      readonly encoder?: undefined;
      readonly transport?: undefined;
    }
  | {
      /** The app's span processor (its own, or its TracerProvider's): flushed at shutdown, never shut down. */
      readonly processor: SpanProcessor;
      readonly exporter?: undefined;
      readonly encoder?: undefined;
      readonly transport?: undefined;
    }
  | {
      readonly encoder: OtlpRecordEncoder;
      readonly transport: EncodedSpansTransport;
      readonly exporter?: undefined;
      readonly processor?: undefined;
    };

/** Options of {@link TelemetryExporter}. */
export interface TelemetryExporterOptions {
  readonly sink: TelemetrySink;
  readonly resource: Resource;
  readonly exportIntervalMs: number;
  readonly maxExportBatchSize: number;
  /** Called once, on the first failed export (the demo prints it; the runtime emits a warning). */
  readonly onFirstFailure?: (error: Error | undefined) => void;
  /**
   * Where to publish `spansExported`, `spansFailed`, `exportsFailed` (slots 0–2, release stores) for another
   * thread to read: the exporter thread's counters, read by the runtime's `stats()`.
   */
  readonly counters?: BigInt64Array;
  /**
   * Whether the collector can be reached at all (a TCP connect to the OTLP endpoint). Asked when an export has
   * been outstanding for a while — the OTLP transport retries a refused connection silently until its timeout —
   * so a collector that is down is known in milliseconds, not at the first failure seconds later.
   */
  readonly reachable?: () => Promise<boolean>;
  /**
   * True while the exporter has used its share of the machine: the timer's export waits (records stay in the
   * rings, which then shed at the origin and truncate downstream, counted). A flush is not held back.
   */
  readonly overBudget?: () => boolean;
}

/** The exporter's counters slots in {@link TelemetryExporterOptions.counters}. */
export const ExporterCounter = { EXPORTED: 0, FAILED: 1, EXPORTS_FAILED: 2, SIZE: 3 } as const;

/** A record drained and thrown away. */
function ignoreRecord(): void {}

const SCOPE: InstrumentationScope = { name: 'ringkernel', version: '0.1.0' };

interface RingEntry {
  readonly reader: SpanRecordReader;
  /** Drain once more, then forget the ring (its kernel has exited). */
  retiring: boolean;
}

/**
 * Turns span records into OpenTelemetry spans, off the hot path: every `exportIntervalMs` (an unref'd timer, so
 * it never keeps the process alive) it drains the telemetry rings — the host's and each kernel's — into
 * {@link ReadableSpan}s with their true ids and timestamps and hands them on. With an exporter of its own it sends
 * one batch at a time and drains the next when that one is done, so the rings are the queue and nothing is
 * dropped silently: a full ring drops at the source and counts it (`recordsDropped`), a failed export counts its
 * spans (`spansFailed`). With a span processor, each span goes to `onEnd` and the processor's own queue applies.
 */
export class TelemetryExporter {
  readonly #sink: TelemetrySink;
  readonly #resource: Resource;
  readonly #maxBatch: number;
  readonly #rings: RingEntry[] = [];
  readonly #names = new Map<number, KernelNames>();
  readonly #kernelNames = (instance: number): KernelNames | undefined => this.#names.get(instance);
  readonly #onFirstFailure: ((error: Error | undefined) => void) | undefined;
  readonly #timer: NodeJS.Timeout;
  #inFlight: Promise<void> | undefined;
  /** The ring the next batch starts with, so a busy ring cannot starve the others. */
  #nextRing = 0;
  #exported = 0;
  #failed = 0;
  #exportsFailed = 0;
  /** Drops of rings already forgotten. */
  #droppedRetired = 0;
  #warned = false;
  #stopped = false;
  /** The last export failed (collector down, refusing): while the next one is tried, records are discarded. */
  #failing = false;
  readonly #reachable: (() => Promise<boolean>) | undefined;
  readonly #overBudget: (() => boolean) | undefined;
  readonly #stallMs: number;
  /** When the export in flight began (performance.now()). */
  #inFlightSince = 0;
  /** When the collector was last probed, and whether a probe is out. */
  #probedAt = Number.NEGATIVE_INFINITY;
  #probing = false;

  constructor(options: TelemetryExporterOptions) {
    this.#sink = options.sink;
    this.#resource = options.resource;
    this.#maxBatch = options.maxExportBatchSize;
    this.#onFirstFailure = options.onFirstFailure;
    this.#counters = options.counters;
    this.#reachable = options.reachable;
    this.#overBudget = options.overBudget;
    this.#stallMs = Math.max(10, options.exportIntervalMs);
    this.#timer = setInterval(() => this.#tick(), options.exportIntervalMs).unref();
  }

  /** Drains this ring from now on. */
  addRing(ring: SharedArrayBuffer): void {
    this.#rings.push({ reader: new SpanRecordReader(ring), retiring: false });
  }

  /** Drains this ring once more (its producer is gone), then forgets it. */
  retireRing(ring: SharedArrayBuffer): void {
    for (const entry of this.#rings) if (entry.reader.view.buffer === ring) entry.retiring = true;
  }

  /** The names kernel instance `instance` was given, if any. */
  kernelNames(instance: number): KernelNames | undefined {
    return this.#names.get(instance);
  }

  /** Names the kernel instance `instance` for its spans. */
  nameKernel(instance: number, names: KernelNames): void {
    this.#names.set(instance, names);
  }

  /** Counts so far. */
  stats(): TelemetryStats {
    let dropped = this.#droppedRetired;
    let pending = 0;
    for (const { reader } of this.#rings) {
      dropped += reader.dropped;
      pending += reader.pending;
    }
    return {
      spansExported: this.#exported,
      spansFailed: this.#failed,
      exportsFailed: this.#exportsFailed,
      recordsDropped: dropped,
      recordsPending: pending,
    };
  }

  /**
   * Exports every record written so far and waits for it to be delivered (or to fail). With a span processor,
   * also flushes the processor.
   */
  async flush(): Promise<void> {
    // What was written before the flush began, at most: producers that go on writing cannot keep it going forever.
    let budget = this.stats().recordsPending;
    for (;;) {
      if (this.#inFlight !== undefined) {
        await this.#inFlight;
        continue;
      }
      if (budget <= 0) break;
      const taken = this.#exportBatch();
      if (taken === 0) break;
      budget -= taken;
    }
    await this.#sink.processor?.forceFlush();
  }

  /**
   * Flushes (waiting at most `timeoutMs` for delivery; what is still undelivered then counts as failed) and shuts
   * the exporter down; a span processor (the user's) is flushed, not shut down. Further records are not exported.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    if (this.#stopped) return;
    clearInterval(this.#timer);
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const outcome = await Promise.race([this.flush().then(() => 'done' as const), gaveUp]);
    clearTimeout(timer);
    this.#stopped = true;
    if (outcome === 'timeout') {
      const pending = this.stats().recordsPending + this.#inFlightCount;
      if (pending > 0) this.#fail(pending, new Error(`${pending} spans were still undelivered at shutdown`));
      this.#publishCounters();
    }
    // A library never shuts down what it does not own: the app's processor or exporter was flushed above and
    // goes on serving the app's own spans.
    const sink = this.#sink;
    if (sink.processor !== undefined || (sink.exporter !== undefined && sink.borrowed === true)) return;
    const done = sink.exporter !== undefined ? sink.exporter.shutdown() : sink.transport.shutdown();
    await Promise.race([done.catch(() => {}), new Promise((resolve) => setTimeout(resolve, 200).unref())]);
  }

  #inFlightCount = 0;
  readonly #counters: BigInt64Array | undefined;

  /** Publishes the counters for another thread (only this exporter writes them). */
  #publishCounters(): void {
    const counters = this.#counters;
    if (counters === undefined) return;
    Atomics.store(counters, ExporterCounter.EXPORTED, BigInt(this.#exported));
    Atomics.store(counters, ExporterCounter.FAILED, BigInt(this.#failed));
    Atomics.store(counters, ExporterCounter.EXPORTS_FAILED, BigInt(this.#exportsFailed));
  }

  #tick(): void {
    if (this.#stopped) return;
    if (this.#sink.processor !== undefined) {
      while (this.#exportBatch() > 0);
      return;
    }
    if (this.#inFlight === undefined) {
      if (this.#overBudget?.() !== true) this.#exportBatch();
    } else if (this.#failing) this.#discard();
    else if (performance.now() - this.#inFlightSince > this.#stallMs) this.#probe();
  }

  /** An export is taking long: is anyone listening? If not, the export is as good as failed. */
  #probe(): void {
    const reachable = this.#reachable;
    const now = performance.now();
    if (reachable === undefined || this.#probing || now - this.#probedAt < 1000) return;
    this.#probing = true;
    this.#probedAt = now;
    reachable().then(
      (yes) => {
        this.#probing = false;
        if (!yes && this.#inFlight !== undefined) {
          this.#failing = true;
          this.#discard();
        }
      },
      () => {
        this.#probing = false;
      },
    );
  }

  /**
   * The collector is not taking spans and an export is being retried: the rings are drained anyway and their
   * records counted as failed, so producers keep finding room (a full ring then means what it says, and traces
   * begun meanwhile stay whole) instead of every ring filling behind a collector that is down.
   */
  #discard(): void {
    let discarded = 0;
    for (const entry of this.#rings) discarded += entry.reader.drain(ignoreRecord);
    if (discarded === 0) return;
    this.#failed += discarded;
    this.#publishCounters();
  }

  /** Takes up to one batch of records off the rings and hands it on; returns how many (0: there were none). */
  #exportBatch(): number {
    if (this.#stopped) return 0;
    const encoder = this.#sink.encoder;
    const spans: ReadableSpan[] = [];
    let taken = 0;
    const max = this.#maxBatch;
    let epoch = 0;
    const take =
      encoder !== undefined
        ? (view: DataView, at: number): void => {
            encoder.add(view, at, epoch);
            taken++;
          }
        : (view: DataView, at: number): void => {
            spans.push(spanFromRecord(view, at, epoch, this.#kernelNames, this.#resource, SCOPE));
            taken++;
          };
    const rings = this.#rings;
    const count = rings.length;
    const first = count === 0 ? 0 : this.#nextRing % count;
    this.#nextRing = first + 1;
    for (let k = 0; k < count && taken < max; k++) {
      const entry = rings[(first + k) % count] as RingEntry;
      epoch = entry.reader.epochUnixMs;
      entry.reader.drain(take, max - taken);
    }
    for (let i = rings.length - 1; i >= 0; i--) {
      const entry = rings[i] as RingEntry;
      if (entry.retiring && entry.reader.pending === 0) {
        this.#droppedRetired += entry.reader.dropped;
        rings.splice(i, 1);
      }
    }
    if (taken === 0) return 0;
    const processor = this.#sink.processor;
    if (processor !== undefined) {
      for (const span of spans) processor.onEnd(span);
      this.#exported += taken;
      this.#publishCounters();
      return taken;
    }
    const send =
      encoder !== undefined
        ? (done: (result: ExportResult) => void) =>
            this.#sink.transport?.export({ body: encoder.finish(), spans: taken }, done)
        : (done: (result: ExportResult) => void) => (this.#sink.exporter as SpanExporter).export(spans, done);
    this.#inFlightCount = taken;
    this.#inFlightSince = performance.now();
    // An exporter may call back before `export` returns (the console exporter does): then the export is over
    // before it could be marked in flight, and marking it afterwards would leave it "in flight" for ever.
    let settled = false;
    const flight = new Promise<void>((resolve) => {
      send((result: ExportResult) => {
        settled = true;
        this.#inFlight = undefined;
        this.#inFlightCount = 0;
        if (this.#stopped) {
          resolve();
          return;
        }
        if (result.code === ExportResultCode.SUCCESS) {
          this.#exported += taken;
          this.#failing = false;
        } else {
          this.#failing = true;
          this.#fail(taken, result.error);
        }
        this.#publishCounters();
        resolve();
        // A full batch waiting: go on at once rather than at the next tick (the rings are the queue). Less waits
        // for the tick, so a trickle of spans is sent in a few large requests, not a stream of small ones whose
        // per-request cost (here and at the collector) competes with the data path.
        if (this.stats().recordsPending >= this.#maxBatch) setImmediate(() => this.#tick());
      });
    });
    if (!settled) this.#inFlight = flight;
    return taken;
  }

  #fail(spans: number, error: Error | undefined): void {
    this.#failed += spans;
    this.#exportsFailed++;
    if (!this.#warned) {
      this.#warned = true;
      this.#onFirstFailure?.(error);
    }
  }
}
