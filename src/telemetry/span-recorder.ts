import { setU53 } from '../wire/envelope.js';
import { SpanRecordOffset, SpanRecordStatus } from './span-record.js';
import { SpanRecordWriter } from './telemetry-ring.js';

const ZERO_ID = new Uint8Array(16);

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
    bytes.set(traceId.subarray(traceAt, traceAt + 16), at + SpanRecordOffset.TRACE_ID);
    bytes.set(spanId.subarray(spanAt, spanAt + 8), at + SpanRecordOffset.SPAN_ID);
    if (parent === undefined) bytes.set(ZERO_ID.subarray(0, 8), at + SpanRecordOffset.PARENT_SPAN_ID);
    else bytes.set(parent.subarray(parentAt, parentAt + 8), at + SpanRecordOffset.PARENT_SPAN_ID);
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
