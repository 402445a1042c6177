import { type SpanContext, TraceFlags } from '@opentelemetry/api';
import type { Envelope } from '../wire/envelope.js';
import type { FrameView } from '../wire/frame-view.js';
import { activeParent } from './active-parent.js';
import type { OriginSampler } from './origin-sampler.js';
import { SpanRecordKind } from './span-record.js';
import type { SpanRecorder } from './span-recorder.js';
import type { TelemetryClock } from './telemetry-clock.js';
import { fillRandomId, hexToId } from './trace-ids.js';

/** A span begun on the host that ends later (a call awaiting its response, a send waiting for room). */
export interface DetachedSpan {
  readonly traceId: Uint8Array;
  readonly spanId: Uint8Array;
  readonly parent: Uint8Array | undefined;
  readonly startNs: number;
}

/**
 * The host's side of tracing: decides at a message's origin whether it is traced (from the caller's active
 * OpenTelemetry context and the sampler), puts the trace context into the envelope, and records the host's spans —
 * send, call, receive, lifecycle — into the host's telemetry ring. Main thread only (one instance per runtime,
 * shared by its handles). Unsampled messages cost a context lookup and a random draw, and write nothing.
 */
export class HostSpanWriter {
  readonly #recorder: SpanRecorder;
  readonly #clock: TelemetryClock;
  readonly #sampler: OriginSampler;
  /** Scratch context of the message being sent; copied by {@link HostSpanWriter.detach} when the span outlives it. */
  readonly #traceId = new Uint8Array(16);
  readonly #spanId = new Uint8Array(8);
  readonly #parent = new Uint8Array(8);
  readonly #parentTrace = new Uint8Array(16);
  readonly #traceView = new DataView(this.#traceId.buffer);
  readonly #spanView = new DataView(this.#spanId.buffer);
  readonly #receiveId = new Uint8Array(8);
  readonly #receiveView = new DataView(this.#receiveId.buffer);
  /** A received frame's trace id (0–15) and parent span id (16–23). */
  readonly #received = new Uint8Array(24);
  #hasParent = false;
  /** The last parent span parsed from hex: a burst of sends inside one span parses it once. */
  #parentHex = '';
  #parentTraceHex = '';

  constructor(recorder: SpanRecorder, clock: TelemetryClock, sampler: OriginSampler) {
    this.#recorder = recorder;
    this.#clock = clock;
    this.#sampler = sampler;
  }

  /** Now, ns since the telemetry epoch. */
  nowNs(): number {
    return this.#clock.nowNs();
  }

  /**
   * Decides whether the message about to be written with `envelope` is traced. Sampled: fills the envelope's
   * trace id, span id (a new span, child of the caller's active span if any) and sampled flag, and returns the
   * span's start (ns ≥ 0). Not sampled: clears the envelope's trace fields and returns −1.
   */
  beginMessage(envelope: Envelope): number {
    if (!this.#begin()) {
      envelope.traceId = undefined;
      envelope.spanId = undefined;
      envelope.traceFlags = 0;
      return -1;
    }
    envelope.traceId = this.#traceId;
    envelope.spanId = this.#spanId;
    envelope.traceFlags = 1;
    return this.#clock.nowNs();
  }

  /** Samples and fills the scratch context; false when not sampled. */
  #begin(): boolean {
    const parent = activeParent();
    if (parent !== undefined) {
      if (!this.#sampler.sampleChild((parent.traceFlags & TraceFlags.SAMPLED) !== 0)) return false;
      this.#adoptParent(parent);
    } else {
      if (!this.#sampler.sampleRoot()) return false;
      fillRandomId(this.#traceView, 0, 16);
      this.#hasParent = false;
    }
    fillRandomId(this.#spanView, 0, 8);
    return true;
  }

  #adoptParent(parent: SpanContext): void {
    if (parent.spanId !== this.#parentHex || parent.traceId !== this.#parentTraceHex) {
      hexToId(parent.traceId, this.#parentTrace, 0, 16);
      hexToId(parent.spanId, this.#parent, 0, 8);
      this.#parentHex = parent.spanId;
      this.#parentTraceHex = parent.traceId;
    }
    this.#traceId.set(this.#parentTrace);
    this.#hasParent = true;
  }

  /** Records the send span begun by {@link HostSpanWriter.beginMessage} (still in the scratch context). */
  endSend(startNs: number, messageId: number, kernel: number, typeId: number, payloadSize: number): void {
    this.#recorder.record(
      this.#traceId,
      0,
      this.#spanId,
      0,
      this.#hasParent ? this.#parent : undefined,
      0,
      startNs,
      this.#clock.nowNs(),
      messageId,
      kernel,
      typeId,
      payloadSize,
      0,
      SpanRecordKind.SEND,
      0,
      0,
    );
  }

  /** A copy of the scratch context, for a span that ends after the next message is sent. */
  detach(startNs: number): DetachedSpan {
    return {
      traceId: this.#traceId.slice(),
      spanId: this.#spanId.slice(),
      parent: this.#hasParent ? this.#parent.slice() : undefined,
      startNs,
    };
  }

  /** Records a detached span (kind SEND or CALL) ending now. */
  endDetached(
    span: DetachedSpan,
    kind: number,
    messageId: number,
    kernel: number,
    typeId: number,
    payloadSize: number,
    errorCode: number,
  ): void {
    this.#recorder.record(
      span.traceId,
      0,
      span.spanId,
      0,
      span.parent,
      0,
      span.startNs,
      this.#clock.nowNs(),
      messageId,
      kernel,
      typeId,
      payloadSize,
      errorCode,
      kind,
      0,
      0,
    );
  }

  /** Records the host taking a sampled output of `kernel` off its output ring, from `startNs` to now. */
  receive(frame: FrameView, startNs: number, kernel: number): void {
    fillRandomId(this.#receiveView, 0, 8);
    frame.copyTraceContext(this.#received, 0);
    this.#recorder.record(
      this.#received,
      0,
      this.#receiveId,
      0,
      this.#received,
      16,
      startNs,
      this.#clock.nowNs(),
      frame.messageId,
      kernel,
      frame.typeId,
      frame.payloadSize,
      0,
      SpanRecordKind.RECEIVE,
      0,
      frame.source,
    );
  }

  /**
   * Begins a lifecycle span (launch, activate, …) as a child of the caller's active span. Transitions are rare
   * and worth seeing, so a root transition is recorded whenever the sampler can sample anything; under an
   * unsampled parent it is not. Returns undefined when not recorded.
   */
  beginLifecycle(): DetachedSpan | undefined {
    const parent = activeParent();
    if (parent !== undefined) {
      if ((parent.traceFlags & TraceFlags.SAMPLED) === 0) return undefined;
      this.#adoptParent(parent);
    } else {
      if (this.#sampler.samplesNothing) return undefined;
      fillRandomId(this.#traceView, 0, 16);
      this.#hasParent = false;
    }
    fillRandomId(this.#spanView, 0, 8);
    return this.detach(this.#clock.nowNs());
  }

  /** Records a lifecycle span ending now. */
  endLifecycle(span: DetachedSpan, transition: number, kernel: number, errorCode: number): void {
    this.#recorder.record(
      span.traceId,
      0,
      span.spanId,
      0,
      span.parent,
      0,
      span.startNs,
      this.#clock.nowNs(),
      0,
      kernel,
      0,
      0,
      errorCode,
      SpanRecordKind.LIFECYCLE,
      transition,
      0,
    );
  }
}
