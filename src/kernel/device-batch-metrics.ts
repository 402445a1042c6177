/**
 * A device kernel's batch metrics in shared memory, beside its latency histograms: the device executor records
 * (single writer, plain stores, once per batch), the host reads at scrape time without a message. How many batches,
 * how large, how many are in flight now, and how long each batch spent in its three stages.
 */

import { InvalidArgumentError } from '../errors/argument-errors.js';
import { LATENCY_HISTOGRAM_BYTES, LatencyHistogram, type LatencySnapshot } from './latency-histogram.js';

/** The stages of one batch, in the order they happen. */
export const BATCH_STAGES = ['upload', 'dispatch', 'readback'] as const;
/** One stage of a batch. */
export type BatchStage = (typeof BATCH_STAGES)[number];

/**
 * Batch-size bucket bounds (messages): powers of two from 1 to 65536 (the largest batch). Bucket k counts sizes in
 * (2^(k-1), 2^k], so the cumulative counts at these bounds are exact.
 */
export const BATCH_SIZE_BOUNDS: readonly number[] = Array.from({ length: 17 }, (_, k) => 2 ** k);

const SIZE_AT = BATCH_STAGES.length * LATENCY_HISTOGRAM_BYTES;
const SIZE_SUM_AT = SIZE_AT + Math.ceil((BATCH_SIZE_BOUNDS.length * 4) / 8) * 8;
const IN_FLIGHT_AT = SIZE_SUM_AT + 8;
/** Bytes of memory the metrics take (8-byte aligned). */
export const DEVICE_BATCH_METRICS_BYTES = IN_FLIGHT_AT + 8;

/** A copy of the batch metrics, taken at one moment. */
export interface DeviceBatchSnapshot {
  /** Batches counted per size bucket ({@link BATCH_SIZE_BOUNDS}). */
  readonly sizeCounts: readonly number[];
  /** Messages in all those batches. */
  readonly messages: number;
  /** Batches submitted and not yet read back. */
  readonly inFlight: number;
  /** Time per stage. */
  readonly stages: Readonly<Record<BatchStage, LatencySnapshot>>;
}

/** The metrics over `memory` at `byteOffset` (zeroed memory is empty). */
export class DeviceBatchMetrics {
  readonly #stages: Record<BatchStage, LatencyHistogram>;
  readonly #sizes: Uint32Array;
  readonly #messages: Float64Array;
  readonly #inFlight: Uint32Array;

  constructor(memory: ArrayBufferLike, byteOffset: number) {
    if (memory.byteLength < byteOffset + DEVICE_BATCH_METRICS_BYTES || byteOffset % 8 !== 0) {
      throw new InvalidArgumentError(
        'memory',
        `device batch metrics need ${DEVICE_BATCH_METRICS_BYTES} bytes at an 8-byte aligned offset, got ${memory.byteLength} bytes at ${byteOffset}`,
      );
    }
    const stage = (i: number): LatencyHistogram =>
      new LatencyHistogram(memory, byteOffset + i * LATENCY_HISTOGRAM_BYTES);
    this.#stages = { upload: stage(0), dispatch: stage(1), readback: stage(2) };
    this.#sizes = new Uint32Array(memory, byteOffset + SIZE_AT, BATCH_SIZE_BOUNDS.length);
    this.#messages = new Float64Array(memory, byteOffset + SIZE_SUM_AT, 1);
    this.#inFlight = new Uint32Array(memory, byteOffset + IN_FLIGHT_AT, 1);
  }

  /** Executor: one batch of `size` messages was submitted; `inFlight` batches are in flight now. */
  submitted(size: number, uploadNs: number, inFlight: number): void {
    const bucket = Math.min(BATCH_SIZE_BOUNDS.length - 1, Math.ceil(Math.log2(Math.max(1, size))));
    this.#sizes[bucket] = ((this.#sizes[bucket] as number) + 1) >>> 0;
    this.#messages[0] = (this.#messages[0] as number) + size;
    this.#stages.upload.record(uploadNs);
    this.#inFlight[0] = inFlight;
  }

  /** Executor: a batch was read back and its outputs written; `inFlight` batches are still in flight. */
  completed(dispatchNs: number, readbackNs: number, inFlight: number): void {
    this.#stages.dispatch.record(dispatchNs);
    this.#stages.readback.record(readbackNs);
    this.#inFlight[0] = inFlight;
  }

  /** Executor: nothing is in flight any more (the kernel ended or failed). */
  idle(): void {
    this.#inFlight[0] = 0;
  }

  /** The metrics now (a racy but monotone read while the executor records). */
  snapshot(): DeviceBatchSnapshot {
    return {
      sizeCounts: Array.from(this.#sizes),
      messages: this.#messages[0] as number,
      inFlight: this.#inFlight[0] as number,
      stages: {
        upload: this.#stages.upload.snapshot(),
        dispatch: this.#stages.dispatch.snapshot(),
        readback: this.#stages.readback.snapshot(),
      },
    };
  }
}
