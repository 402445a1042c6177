import type { Envelope } from '../wire/envelope.js';
import type { FrameView } from '../wire/frame-view.js';
import { SpanRecordKind, TRACE_FLAG_TRUNCATED } from './span-record.js';
import { SpanRecorder } from './span-recorder.js';
import { TelemetryClock } from './telemetry-clock.js';
import { telemetryRingEpoch } from './telemetry-ring.js';
import { fillRandomId } from './trace-ids.js';

/** What a worker needs to trace one kernel: its telemetry ring (the ring header carries the epoch). */
export interface KernelTelemetry {
  /** The kernel's telemetry ring ({@link createTelemetryRing}); the worker is its only producer. */
  readonly ring: SharedArrayBuffer;
}

/**
 * The worker's side of tracing for one kernel: a processing span around each sampled message's handler. The span's
 * parent is the span id the frame carries (the host's send/call span, or the upstream kernel's processing span);
 * while the handler runs, the kernel's output envelope carries the same trace id and this span's id, so replies and
 * kernel-to-kernel outputs become its children. Unsampled frames (trace flag bit 0 clear) cost one byte read.
 */
export class KernelSpanWriter {
  readonly #recorder: SpanRecorder;
  readonly #clock: TelemetryClock;
  readonly #kernel: number;
  /** The frame's trace id (bytes 0–15) and parent span id (16–23), copied in place. */
  readonly #context = new Uint8Array(24);
  readonly #traceId = this.#context.subarray(0, 16);
  readonly #spanId = new Uint8Array(8);
  readonly #spanView = new DataView(this.#spanId.buffer);
  #startNs = 0;
  /** The current span could not be recorded (ring full): its outputs leave untraced, marked truncated. */
  #truncated = false;
  /** When the handler returned (0 = not yet): the span ends there, before its outputs are published. */
  #endNs = 0;

  constructor(telemetry: KernelTelemetry, kernel: number) {
    this.#recorder = new SpanRecorder(telemetry.ring);
    this.#clock = new TelemetryClock(telemetryRingEpoch(telemetry.ring));
    this.#kernel = kernel;
  }

  /**
   * Starts the processing span of a sampled frame and points `outputs` (the envelope the handler's outputs are
   * written with) at it; its record's slot is claimed now, so the span is whole or not begun. Returns false,
   * touching nothing, when the frame is not sampled. With the ring full it returns true but records nothing, and
   * the outputs leave unsampled, flagged truncated.
   */
  begin(frame: FrameView, outputs: Envelope): boolean {
    if ((frame.traceFlags & 1) === 0) return false;
    if (!this.#recorder.claim()) {
      // The ring is full (counted as dropped): this span cannot be recorded, so nothing after it is traced either —
      // a child whose parent never reaches the exporter would be an orphan. The trace ends at the upstream span.
      this.#truncated = true;
      outputs.traceId = undefined;
      outputs.spanId = undefined;
      outputs.traceFlags = TRACE_FLAG_TRUNCATED;
      return true;
    }
    frame.copyTraceContext(this.#context, 0);
    fillRandomId(this.#spanView, 0, 8);
    outputs.traceId = this.#traceId;
    outputs.spanId = this.#spanId;
    outputs.traceFlags = 1;
    this.#startNs = this.#clock.nowNs();
    return true;
  }

  /**
   * Stamps the span's end: the handler has returned. Called before its result is written, so a reply that the host
   * sees at once cannot appear to come back before the processing ended.
   */
  stop(): void {
    this.#endNs = this.#clock.nowNs();
  }

  /** Ends the span begun for `frame` (still in place) with `errorCode` (0 = ok) and clears `outputs`' context. */
  end(frame: FrameView, outputs: Envelope, errorCode: number): void {
    const endNs = this.#endNs === 0 ? this.#clock.nowNs() : this.#endNs;
    this.#endNs = 0;
    outputs.traceId = undefined;
    outputs.spanId = undefined;
    outputs.traceFlags = 0;
    if (this.#truncated) {
      this.#truncated = false;
      return;
    }
    this.#recorder.record(
      this.#traceId,
      0,
      this.#spanId,
      0,
      this.#context,
      16,
      this.#startNs,
      endNs,
      frame.messageId,
      this.#kernel,
      frame.typeId,
      frame.payloadSize,
      errorCode,
      SpanRecordKind.PROCESS,
      0,
      frame.source,
    );
  }
}
