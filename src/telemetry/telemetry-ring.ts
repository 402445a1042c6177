import { InvalidArgumentError } from '../errors/argument-errors.js';
import { defineStructLayout } from '../wire/struct-layout.js';
import { SpanRecordOffset } from './span-record.js';

/**
 * A telemetry ring: a single-producer, single-consumer ring of fixed-size {@link SpanRecordOffset span records}
 * in a SharedArrayBuffer. The producer is the hot path (a kernel's worker loop, or the host's send/receive), the
 * consumer is the {@link TelemetryExporter} on the main thread. The producer never waits: when the ring is full the
 * record is dropped and counted in `dropped`. Counts are free-running u32s (they wrap); the slot of record n is
 * n mod capacity, with capacity a power of two so the wrap keeps slots continuous.
 */
export const TelemetryRingOffset = {
  /** u32, producer: records published so far (wraps). Release store after the record's bytes. */
  WRITE_COUNT: 0,
  /** u32, consumer: records consumed so far (wraps). Release store after the records were read. */
  READ_COUNT: 4,
  /** u32, producer: records dropped because the ring was full (wraps). */
  DROPPED: 8,
  /** u32, host: records the ring holds (a power of two). Written once, before the ring is shared. */
  CAPACITY: 12,
  /** u64, host: the Unix time, in whole ms, of record time 0. Written once, before the ring is shared. */
  EPOCH_UNIX_MS: 16,
  /** First record. */
  RECORDS: 24,
} as const;

/** The telemetry ring header layout table, from which the C header is generated. */
export const TELEMETRY_RING_LAYOUT = defineStructLayout(
  'rk_telemetry_ring',
  'SPSC ring of rk_span_record, which follow this header (capacity of them). Producer: if write_count - read_count == capacity, bump dropped and discard; else fill record[write_count % capacity], then release-store write_count + 1. Consumer: acquire-load write_count, read, release-store read_count. Counts wrap at 2^32; capacity is a power of two.',
  TelemetryRingOffset.RECORDS,
  [
    ['write_count', 'u32', TelemetryRingOffset.WRITE_COUNT, 'producer', 'Records published.', { atomic: true }],
    ['read_count', 'u32', TelemetryRingOffset.READ_COUNT, 'consumer', 'Records consumed.', { atomic: true }],
    ['dropped', 'u32', TelemetryRingOffset.DROPPED, 'producer', 'Records dropped: ring full.', { atomic: true }],
    ['capacity', 'u32', TelemetryRingOffset.CAPACITY, 'host', 'Records the ring holds; a power of two.'],
    ['epoch_unix_ms', 'u64', TelemetryRingOffset.EPOCH_UNIX_MS, 'host', 'Unix time (ms) of record time 0.'],
  ],
);

const WRITE = TelemetryRingOffset.WRITE_COUNT >> 2;
const READ = TelemetryRingOffset.READ_COUNT >> 2;
const DROPPED = TelemetryRingOffset.DROPPED >> 2;
const CAPACITY = TelemetryRingOffset.CAPACITY >> 2;
const TWO_32 = 0x1_0000_0000;

/**
 * Allocates a telemetry ring of `capacity` records (a power of two) whose record times count from `epochUnixMs`.
 * @throws {RangeError} when `capacity` is not a power of two in [2, 2^24].
 * @example
 * const ring = createTelemetryRing(8192, Math.floor(performance.timeOrigin)); // 24 + 8192 × 80 bytes
 */
export function createTelemetryRing(capacity: number, epochUnixMs: number): SharedArrayBuffer {
  if (!Number.isInteger(capacity) || capacity < 2 || capacity > 1 << 24 || (capacity & (capacity - 1)) !== 0) {
    throw new InvalidArgumentError(
      'capacity',
      `telemetry ring capacity must be a power of two in [2, 16777216], got ${capacity}`,
    );
  }
  const buffer = new SharedArrayBuffer(TelemetryRingOffset.RECORDS + capacity * SpanRecordOffset.SIZE);
  const view = new DataView(buffer);
  view.setUint32(TelemetryRingOffset.CAPACITY, capacity, true);
  view.setUint32(TelemetryRingOffset.EPOCH_UNIX_MS, epochUnixMs >>> 0, true);
  view.setUint32(TelemetryRingOffset.EPOCH_UNIX_MS + 4, Math.floor(epochUnixMs / TWO_32), true);
  return buffer;
}

/** The epoch a ring's record times count from, in Unix ms. */
export function telemetryRingEpoch(buffer: SharedArrayBuffer): number {
  const view = new DataView(buffer);
  return (
    view.getUint32(TelemetryRingOffset.EPOCH_UNIX_MS + 4, true) * TWO_32 +
    view.getUint32(TelemetryRingOffset.EPOCH_UNIX_MS, true)
  );
}

/** A ring's backlog as seen from any thread: records dropped so far, and records published but not yet read. */
export function telemetryRingBacklog(buffer: SharedArrayBuffer): { dropped: number; pending: number } {
  const counts = new Uint32Array(buffer, 0, 4);
  return {
    dropped: Atomics.load(counts, DROPPED),
    pending: (Atomics.load(counts, WRITE) - Atomics.load(counts, READ)) >>> 0,
  };
}

/**
 * Another thread's look at how full a telemetry ring is (two atomic loads, no writes): how the message's origin
 * tells, before it begins a trace, whether the kernel the message goes to still has room for that trace's records.
 *
 * @example
 * const fill = new TelemetryRingFill(kernelRing);
 * if (!fill.halfFull()) traceThisMessage();
 */
export class TelemetryRingFill {
  readonly #counts: Uint32Array;
  readonly #half: number;

  constructor(buffer: SharedArrayBuffer) {
    this.#counts = new Uint32Array(buffer, 0, 4);
    this.#half = (this.#counts[CAPACITY] as number) >>> 1;
  }

  /** Whether half the ring or more is waiting for the exporter (or the exporter is that far behind). */
  halfFull(): boolean {
    const counts = this.#counts;
    return (Atomics.load(counts, WRITE) - Atomics.load(counts, READ)) >>> 0 >= this.#half;
  }
}

/**
 * The producer's end of a telemetry ring. `begin()` returns where to write the next record (or −1 when the ring is
 * full: the record is counted as dropped and must not be written); the caller fills the record through `view` /
 * `bytes`, then `commit()` publishes it. Never blocks, never allocates.
 *
 * @example
 * const writer = new SpanRecordWriter(ring);
 * const at = writer.begin();
 * if (at >= 0) {
 *   writer.view.setUint8(at + SpanRecordOffset.KIND, SpanRecordKind.PROCESS); // … and the other fields
 *   writer.commit();
 * }
 */
export class SpanRecordWriter {
  /** The ring's memory, for filling records. */
  readonly view: DataView;
  readonly bytes: Uint8Array;
  readonly #counts: Uint32Array;
  readonly #mask: number;
  /** Our own write count: we are its only writer. */
  #write: number;
  /** The consumer's read count as last loaded; only ever behind the real one, so room is never overstated. */
  #readCache: number;
  #dropped: number;

  constructor(buffer: SharedArrayBuffer) {
    this.view = new DataView(buffer);
    this.bytes = new Uint8Array(buffer);
    this.#counts = new Uint32Array(buffer, 0, 4);
    const capacity = this.#counts[CAPACITY] as number;
    this.#mask = capacity - 1;
    this.#write = Atomics.load(this.#counts, WRITE);
    this.#readCache = Atomics.load(this.#counts, READ);
    this.#dropped = Atomics.load(this.#counts, DROPPED);
  }

  /**
   * Free slots, at least: the consumer's read count is reloaded when the cached one shows fewer than `wanted`.
   * Counts nothing; for a producer that must know a record will fit before it commits to a span.
   */
  room(wanted: number): number {
    const capacity = this.#mask + 1;
    let free = capacity - ((this.#write - this.#readCache) >>> 0);
    if (free < wanted) {
      this.#readCache = Atomics.load(this.#counts, READ);
      free = capacity - ((this.#write - this.#readCache) >>> 0);
    }
    return free;
  }

  /** Byte offset of the next record, or −1 when the ring is full (the record is counted as dropped). */
  begin(): number {
    const write = this.#write;
    const capacity = this.#mask + 1;
    if ((write - this.#readCache) >>> 0 >= capacity) {
      // Acquire: the consumer has finished reading every record before its published read count.
      this.#readCache = Atomics.load(this.#counts, READ);
      if ((write - this.#readCache) >>> 0 >= capacity) {
        this.#dropped = (this.#dropped + 1) >>> 0;
        // Only this producer writes `dropped`; the store makes it visible to the exporter's report.
        Atomics.store(this.#counts, DROPPED, this.#dropped);
        return -1;
      }
    }
    return TelemetryRingOffset.RECORDS + (write & this.#mask) * SpanRecordOffset.SIZE;
  }

  /** Publishes the record `begin()` placed. */
  commit(): void {
    this.#write = (this.#write + 1) >>> 0;
    // Release: the record's bytes are visible before the count that publishes them.
    Atomics.store(this.#counts, WRITE, this.#write);
  }
}

/**
 * The consumer's end of a telemetry ring (the exporter's).
 *
 * @example
 * const reader = new SpanRecordReader(ring);
 * reader.drain((view, at) => console.log(view.getUint32(at + SpanRecordOffset.KERNEL, true)));
 * console.log(reader.dropped); // records lost to a full ring
 */
export class SpanRecordReader {
  readonly view: DataView;
  readonly bytes: Uint8Array;
  /** Unix ms of record time 0. */
  readonly epochUnixMs: number;
  readonly #counts: Uint32Array;
  readonly #mask: number;
  #read: number;

  constructor(buffer: SharedArrayBuffer) {
    this.view = new DataView(buffer);
    this.bytes = new Uint8Array(buffer);
    this.#counts = new Uint32Array(buffer, 0, 4);
    this.#mask = (this.#counts[CAPACITY] as number) - 1;
    this.#read = Atomics.load(this.#counts, READ);
    this.epochUnixMs = telemetryRingEpoch(buffer);
  }

  /** Records the producer dropped so far (ring full). */
  get dropped(): number {
    return Atomics.load(this.#counts, DROPPED);
  }

  /** Records waiting. */
  get pending(): number {
    return (Atomics.load(this.#counts, WRITE) - this.#read) >>> 0;
  }

  /**
   * Calls `onRecord(view, offset)` for up to `max` published records, oldest first, then frees their slots.
   * Returns how many were read.
   */
  drain(onRecord: (view: DataView, at: number) => void, max = Number.POSITIVE_INFINITY): number {
    // Acquire: every record before the published write count is complete.
    const write = Atomics.load(this.#counts, WRITE);
    const available = (write - this.#read) >>> 0;
    const count = Math.min(available, max);
    for (let i = 0; i < count; i++) {
      onRecord(this.view, TelemetryRingOffset.RECORDS + ((this.#read + i) & this.#mask) * SpanRecordOffset.SIZE);
    }
    this.#read = (this.#read + count) >>> 0;
    // Release: we are done with these slots; the producer may reuse them.
    if (count > 0) Atomics.store(this.#counts, READ, this.#read);
    return count;
  }
}
