/**
 * The contract of a `WebGpuBatchEngine` with its owner (the device thread): what it runs, what it reports
 * after each batch, the messages it gives up and its counters. Types only: the owner can name them without loading
 * the engine.
 */
import type { WebGpuError } from '../../errors/webgpu-errors.js';
import type { DeviceBatchMetrics } from '../../kernel/device-batch-metrics.js';
import type { FrameRingMemory } from '../../wire/frame-ring.js';
import type { HybridLogicalClock } from '../../wire/hlc.js';
import type { WgslProgram } from './wgsl-program.js';

/** Why the engine gave up a message. */
export type BatchDeadLetterReason = 'handler-error' | 'discarded-on-terminate' | 'malformed-frame' | 'kernel-failed';

/** A message the engine could not handle, for the owner to dead-letter. */
export interface BatchDeadLetter {
  readonly reason: BatchDeadLetterReason;
  /** The frame came on the kernel's own input ring (from the host), not a kernel-to-kernel link. */
  readonly fromHost: boolean;
  /** The `RK_E_*` number (the handler's own code for `handler-error`). */
  readonly errorNumber: number;
  readonly message: string;
  readonly messageId: number;
  readonly correlationId: number;
  readonly typeId: number;
  readonly flags: number;
  /** A copy of the payload. */
  readonly payload: Uint8Array;
}

/** What a `WebGpuBatchEngine` runs. */
export interface BatchEngineOptions {
  readonly device: GPUDevice;
  /** The kernel's program, built by `buildWgslProgram`. */
  readonly program: WgslProgram;
  /** The kernel's input ring: the engine is its only consumer. */
  readonly input: FrameRingMemory;
  /** The kernel's output ring: the engine is its only producer. */
  readonly output: FrameRingMemory;
  /** Bytes each message's output may have (rounded up to 4). Default 256, at most the output ring's max payload. */
  readonly outputBytes?: number | undefined;
  /** The most messages one batch takes. Default 4096. */
  readonly maxBatch?: number | undefined;
  /** Batches submitted and not yet read back at most. Default 4. */
  readonly inFlight?: number | undefined;
  /** Stamps output frames. */
  readonly clock?: HybridLogicalClock;
  /** The kernel instance id written as outputs' source. Default 0. */
  readonly sourceId?: number;
  /** Messages the engine gave up (handler error codes, discards, malformed frames), in input order. */
  readonly onDeadLetter?: (letter: BatchDeadLetter) => void;
  /** Called once when the device is lost or reports an error the engine cannot go on after. */
  readonly onFailure?: (error: WebGpuError) => void;
  /**
   * Tracing on: the kernel's telemetry ring and its instance id. Each sampled message gets a processing span (the
   * batch's submit to its readback), parented by the span its frame carries; its outputs carry that span.
   */
  readonly telemetry?: { readonly ring: SharedArrayBuffer; readonly kernel: number } | undefined;
  /** Where to record batches, their sizes, in flight and stage times (shared with the host's metrics). */
  readonly metrics?: DeviceBatchMetrics | undefined;
  /** After each batch's outputs are written: its counts and where the input ring is handled to. */
  readonly onBatch?: (batch: BatchDone) => void;
}

/** One finished batch, for the owner's counters. */
export interface BatchDone {
  readonly received: number;
  readonly processed: number;
  readonly failed: number;
  /** The primary input ring's cursor up to which every frame's outputs are written (a batch boundary). */
  readonly handledCursor: number;
  readonly inFlight: number;
}

/** How `WebGpuBatchEngine.stop` ends the queue: handle it, dead-letter it, or leave it in the ring. */
export type BatchStopMode = 'drain' | 'discard' | 'keep';

/** Counters of a `WebGpuBatchEngine`. */
export interface BatchEngineStats {
  readonly batches: number;
  readonly messages: number;
  readonly failed: number;
  readonly discarded: number;
  readonly inFlight: number;
  readonly lastBatchSize: number;
  readonly largestBatch: number;
  /** Milliseconds spent packing and uploading, from submit to readback, and writing outputs. */
  readonly uploadMs: number;
  readonly gpuMs: number;
  readonly outputMs: number;
}
