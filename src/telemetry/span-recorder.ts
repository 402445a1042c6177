import { setU53 } from '../wire/envelope.js';
import { SpanRecordOffset, SpanRecordStatus } from './span-record.js';
import { SpanRecordWriter } from './telemetry-ring.js';

/** Copies `length` bytes; a loop, not `subarray` + `set`, so the hot path allocates nothing. */
function copyId(to: Uint8Array, toAt: number, from: Uint8Array, fromAt: number, length: number): void {
  for (let i = 0; i < length; i++) to[toAt + i] = from[fromAt + i] as number;
}

/**
 * Writes finished spans into a telemetry ring: the one call the hot path makes per sampled message. Copies the ids
 * from wherever they are (an envelope scratch buffer, a frame in its ring), stamps the rest, publishes. Never
 * blocks: a full ring drops the record and counts it (`dropped` in the ring header).
 */
export class SpanRecorder {
  readonly #writer: SpanRecordWriter;

  constructor(ring: SharedArrayBuffer) {
    this.#writer = new SpanRecordWriter(ring);
  }

  /**
   * Claims the next record's slot for a span that ends later (nothing else writes this ring meanwhile: its one
   * producer is busy with that span). False when the ring is full: counted as dropped, and the span must not be
   * recorded.
   */
  claim(): boolean {
    return this.#writer.begin() >= 0;
  }

  /** Whether at least `slots` more records fit now (more may fit by the time they are written, never fewer). */
  hasRoom(slots: number): boolean {
    return this.#writer.room(slots) >= slots;
  }

  /**
   * Writes one span record. `parent` undefined (or all zero) makes a root span. Returns false when the ring was
   * full (the record is dropped and counted).
   */
  record(
    traceId: Uint8Array,
    traceAt: number,
    spanId: Uint8Array,
    spanAt: number,
    parent: Uint8Array | undefined,
    parentAt: number,
    startNs: number,
    endNs: number,
    messageId: number,
    kernel: number,
    typeId: number,
    payloadSize: number,
    errorCode: number,
    kind: number,
    detail: number,
    peerKernel: number,
  ): boolean {
    const writer = this.#writer;
    const at = writer.begin();
    if (at < 0) return false;
    const view = writer.view;
    const bytes = writer.bytes;
    copyId(bytes, at + SpanRecordOffset.TRACE_ID, traceId, traceAt, 16);
    copyId(bytes, at + SpanRecordOffset.SPAN_ID, spanId, spanAt, 8);
    if (parent === undefined) bytes.fill(0, at + SpanRecordOffset.PARENT_SPAN_ID, at + SpanRecordOffset.START_NS);
    else copyId(bytes, at + SpanRecordOffset.PARENT_SPAN_ID, parent, parentAt, 8);
    setU53(view, at + SpanRecordOffset.START_NS, Math.max(0, startNs));
    setU53(view, at + SpanRecordOffset.END_NS, Math.max(startNs, endNs, 0));
    setU53(view, at + SpanRecordOffset.MESSAGE_ID, messageId);
    view.setUint32(at + SpanRecordOffset.KERNEL, kernel, true);
    view.setUint32(at + SpanRecordOffset.TYPE_ID, typeId, true);
    view.setUint32(at + SpanRecordOffset.PAYLOAD_SIZE, payloadSize, true);
    view.setUint32(at + SpanRecordOffset.ERROR_CODE, errorCode, true);
    view.setUint8(at + SpanRecordOffset.KIND, kind);
    view.setUint8(at + SpanRecordOffset.STATUS, errorCode === 0 ? SpanRecordStatus.OK : SpanRecordStatus.ERROR);
    view.setUint8(at + SpanRecordOffset.TRACE_FLAGS, 1);
    view.setUint8(at + SpanRecordOffset.DETAIL, detail);
    view.setUint32(at + SpanRecordOffset.PEER_KERNEL, peerKernel, true);
    writer.commit();
    return true;
  }
}
