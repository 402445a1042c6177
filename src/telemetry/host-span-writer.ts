import { type SpanContext, TraceFlags } from '@opentelemetry/api';
import type { Envelope } from '../wire/envelope.js';
import type { FrameView } from '../wire/frame-view.js';
import { activeParent } from './active-parent.js';
import type { OriginSampler } from './origin-sampler.js';
import { SpanRecordDetail, SpanRecordKind } from './span-record.js';
import type { SpanRecorder } from './span-recorder.js';
import type { TelemetryClock } from './telemetry-clock.js';
import { TelemetryRingFill } from './telemetry-ring.js';
import { fillRandomId, hexToId } from './trace-ids.js';

/** What the origin decided for the last message (see {@link HostSpanWriter.retract}). */
const Decision = { NONE: 0, SAMPLED: 1, SHED_FOR_RATE: 2, SHED_FOR_ROOM: 3, SHED_FOR_EXPORT: 4 } as const;
type Decision = (typeof Decision)[keyof typeof Decision];

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
  /** Message spans begun and detached (calls, queued sends) whose records are not written yet: their room is kept. */
  #outstanding = 0;
  /** The rate cap: traces this origin may still begin before the bucket is refilled from the clock. */
  #tokens: number;
  readonly #burst: number;
  readonly #tokensPerMs: number;
  #refilledAt = performance.now();
  #shedForRoom = 0;
  #shedForRate = 0;
  #shedForExport = 0;
  /** What the last {@link HostSpanWriter.beginMessage} decided, for {@link HostSpanWriter.retract} to undo. */
  #last: Decision = Decision.NONE;
  /** How full each kernel's telemetry ring is, by kernel instance: where a message's first hop records its span. */
  readonly #kernelRings = new Map<number, TelemetryRingFill>();
  /** Leaf spans (receive, lifecycle) not recorded for want of room. */
  #dropped = 0;

  /**
   * @param maxTracesPerSecond - the origin's rate cap: traces begun per second at most (a token bucket holding a
   *   tenth of a second's worth); Infinity for none.
   */
  constructor(recorder: SpanRecorder, clock: TelemetryClock, sampler: OriginSampler, maxTracesPerSecond = Infinity) {
    this.#recorder = recorder;
    this.#clock = clock;
    this.#sampler = sampler;
    this.#tokensPerMs = maxTracesPerSecond / 1000;
    this.#burst = Math.max(1, maxTracesPerSecond / 10);
    this.#tokens = this.#burst;
  }

  /**
   * What the origin left out: messages its sampler chose but that went untraced because the host's ring had no
   * room for their records (`shedForRoom`), the rate cap was reached (`shedForRate`), or the exporter was behind
   * with the destination kernel's ring — half of it still waiting to be exported (`shedForExport`); and leaf spans
   * (receive, lifecycle) not recorded for want of room (`dropped`).
   */
  counts(): {
    readonly shedForRoom: number;
    readonly shedForRate: number;
    readonly shedForExport: number;
    readonly dropped: number;
  } {
    return {
      shedForRoom: this.#shedForRoom,
      shedForRate: this.#shedForRate,
      shedForExport: this.#shedForExport,
      dropped: this.#dropped,
    };
  }

  /**
   * Watches kernel instance `instance`'s telemetry ring: while half of it waits for the exporter, messages sent to
   * that kernel leave untraced, whole, so the exporter's backlog is shed at the origin instead of cutting traces
   * short at the kernel (whose ring would fill next).
   */
  watchKernel(instance: number, ring: SharedArrayBuffer): void {
    this.#kernelRings.set(instance, new TelemetryRingFill(ring));
  }

  /** Stops watching a kernel's ring (the kernel has exited). */
  unwatchKernel(instance: number): void {
    this.#kernelRings.delete(instance);
  }

  /** A token from the rate cap's bucket; the clock is read only when the bucket looks empty. */
  #admit(): boolean {
    if (this.#tokens >= 1) {
      this.#tokens--;
      return true;
    }
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#refilledAt) * this.#tokensPerMs);
    this.#refilledAt = now;
    if (this.#tokens >= 1) {
      this.#tokens--;
      return true;
    }
    this.#shedForRate++;
    this.#last = Decision.SHED_FOR_RATE;
    return false;
  }

  /** Room for one more record beside the detached spans' kept room. */
  #roomForOne(): boolean {
    return this.#recorder.hasRoom(this.#outstanding + 1);
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
    this.#last = Decision.NONE;
    if (!this.#begin(envelope.destination)) {
      envelope.traceId = undefined;
      envelope.spanId = undefined;
      envelope.traceFlags = 0;
      return -1;
    }
    envelope.traceId = this.#traceId;
    envelope.spanId = this.#spanId;
    envelope.traceFlags = 1;
    this.#last = Decision.SAMPLED;
    return this.#clock.nowNs();
  }

  /**
   * The message {@link HostSpanWriter.beginMessage} just decided for was not written (its ring was full; it will be
   * sent again and decided again): its decision is undone, so each message counts once — a shed is uncounted, a
   * sampled message's rate-cap token given back.
   */
  retract(): void {
    switch (this.#last) {
      case Decision.SAMPLED:
        this.#tokens = Math.min(this.#burst, this.#tokens + 1);
        break;
      case Decision.SHED_FOR_RATE:
        this.#shedForRate--;
        break;
      case Decision.SHED_FOR_ROOM:
        this.#shedForRoom--;
        break;
      case Decision.SHED_FOR_EXPORT:
        this.#shedForExport--;
        break;
    }
    this.#last = Decision.NONE;
  }

  /**
   * Samples and fills the scratch context; false when not sampled. A message is traced whole or not at all: the
   * destination kernel's ring must not be half full (the exporter behind), the origin's rate cap must allow it, and
   * the origin's record must fit the host's ring (its room is kept until it is written); otherwise the message
   * leaves unsampled and nothing downstream records a span for it.
   */
  #begin(destination: number | undefined): boolean {
    const parent = activeParent();
    if (parent !== undefined) {
      if (!this.#sampler.sampleChild((parent.traceFlags & TraceFlags.SAMPLED) !== 0)) return false;
      if (!this.#affordable(destination)) return false;
      this.#adoptParent(parent);
    } else {
      if (!this.#sampler.sampleRoot()) return false;
      if (!this.#affordable(destination)) return false;
      fillRandomId(this.#traceView, 0, 16);
      this.#hasParent = false;
    }
    fillRandomId(this.#spanView, 0, 8);
    return true;
  }

  #affordable(destination: number | undefined): boolean {
    if (destination !== undefined && this.#kernelRings.get(destination)?.halfFull() === true) {
      this.#shedForExport++;
      this.#last = Decision.SHED_FOR_EXPORT;
      return false;
    }
    if (!this.#admit()) return false;
    if (this.#roomForOne()) return true;
    this.#shedForRoom++;
    this.#last = Decision.SHED_FOR_ROOM;
    return false;
  }

  #adoptParent(parent: SpanContext): void {
    if (parent.spanId !== this.#parentHex || parent.traceId !== this.#parentTraceHex) {
      hexToId('traceId', parent.traceId, this.#parentTrace, 0, 16);
      hexToId('parentSpanId', parent.spanId, this.#parent, 0, 8);
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

  /**
   * A copy of the scratch context, for a message span that ends after the next message is sent. Its record's room
   * is kept until {@link HostSpanWriter.endDetached} writes it or {@link HostSpanWriter.abandon} gives it up.
   */
  detach(startNs: number): DetachedSpan {
    this.#outstanding++;
    return this.#copy(startNs);
  }

  /** A detached span that will never end (its message was never sent): its room is given back. */
  abandon(_span: DetachedSpan): void {
    this.#outstanding--;
  }

  #copy(startNs: number): DetachedSpan {
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
    truncated = false,
  ): void {
    this.#outstanding--;
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
      truncated ? SpanRecordDetail.TRUNCATED : 0,
      0,
    );
  }

  /** Records the host taking a sampled output of `kernel` off its output ring, from `startNs` to now. */
  receive(frame: FrameView, startNs: number, kernel: number): void {
    // A leaf: without room it is left out (the trace ends at the kernel's span), never the detached spans' room.
    if (!this.#roomForOne()) {
      this.#dropped++;
      return;
    }
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
    return this.#copy(this.#clock.nowNs());
  }

  /** Records a lifecycle span ending now. */
  endLifecycle(span: DetachedSpan, transition: number, kernel: number, errorCode: number): void {
    if (!this.#roomForOne()) {
      this.#dropped++;
      return;
    }
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
