import { InvalidEnvelopeError } from '../errors/value-errors.js';
import { FRAME_MAGIC, FRAME_VERSION, FrameHeader } from './frame-header.js';

/**
 * The envelope fields a producer can set on a frame. Everything is optional: ids default to 0 except
 * `messageId`, which the producer numbers itself; the HLC stamp comes from the producer's clock.
 * Pass the same object for many frames: the producer reads it and keeps nothing.
 */
export interface Envelope {
  /** Message id (integer < 2^53); default: the producer's own counter, 1, 2, 3… */
  messageId?: number;
  /** The request this frame answers (integer < 2^53); 0 = none. */
  correlationId?: number;
  /** Source kernel id (u32); 0 = host. */
  source?: number;
  /** Destination kernel id (u32). */
  destination?: number;
  /** 0 (lowest) … 255. */
  priority?: number;
  /** {@link FrameFlags} bits other than CHECKSUM (the producer sets that one). */
  flags?: number;
  /** W3C trace id, 16 bytes. */
  traceId?: Uint8Array | undefined;
  /** W3C parent span id, 8 bytes. */
  spanId?: Uint8Array | undefined;
  /** W3C trace flags (bit 0 = sampled). */
  traceFlags?: number;
}

const TWO_32 = 0x1_0000_0000;

function u32(field: string, value: number | undefined): number {
  if (value === undefined) return 0;
  if (value >>> 0 !== value) throw new InvalidEnvelopeError(field, `expected a u32, got ${value}`);
  return value;
}

function u8(field: string, value: number | undefined): number {
  if (value === undefined) return 0;
  if ((value & 0xff) !== value) throw new InvalidEnvelopeError(field, `expected a u8, got ${value}`);
  return value;
}

/** Writes a u64 that is known to be a non-negative safe integer as two u32 halves (no BigInt on the hot path). */
export function setU53(view: DataView, at: number, value: number): void {
  view.setUint32(at, value >>> 0, true);
  view.setUint32(at + 4, Math.floor(value / TWO_32), true);
}

/** Reads a u64 as a Number; exact below 2^53, which is all ringkernel ever writes into id fields. */
export function getU53(view: DataView, at: number): number {
  return view.getUint32(at + 4, true) * TWO_32 + view.getUint32(at, true);
}

function id(field: string, value: number | undefined): number {
  if (value === undefined) return 0;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidEnvelopeError(field, `expected an integer in [0, 2^53), got ${value}`);
  }
  return value;
}

function traceBytes(field: string, value: Uint8Array | undefined, length: number): Uint8Array | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new InvalidEnvelopeError(field, `expected a Uint8Array of ${length} bytes`);
  }
  return value;
}

/**
 * Writes a complete frame header at `at` — every byte of it, reserved words included, since ring memory
 * holds stale frames. Validates the envelope first and throws {@link InvalidEnvelopeError} before writing.
 *
 */
export function writeFrameHeader(
  view: DataView,
  bytes: Uint8Array,
  at: number,
  typeId: number,
  payloadSize: number,
  flags: number,
  messageId: number,
  envelope: Envelope | undefined,
  hlcPhysicalUs: number,
  hlcLogical: number,
  hlcNode: number,
): void {
  const e = envelope;
  const correlationId = id('correlationId', e?.correlationId);
  const source = u32('source', e?.source);
  const destination = u32('destination', e?.destination);
  const priority = u8('priority', e?.priority);
  const traceFlags = u8('traceFlags', e?.traceFlags);
  const traceId = traceBytes('traceId', e?.traceId, 16);
  const spanId = traceBytes('spanId', e?.spanId, 8);
  view.setUint32(at + FrameHeader.LENGTH, FrameHeader.SIZE + payloadSize, true);
  view.setUint32(at + FrameHeader.MAGIC, FRAME_MAGIC, true);
  view.setUint16(at + FrameHeader.VERSION, FRAME_VERSION, true);
  view.setUint16(at + FrameHeader.FLAGS, flags, true);
  view.setUint32(at + FrameHeader.TYPE_ID, typeId, true);
  setU53(view, at + FrameHeader.MESSAGE_ID, messageId);
  setU53(view, at + FrameHeader.CORRELATION_ID, correlationId);
  view.setUint32(at + FrameHeader.SOURCE, source, true);
  view.setUint32(at + FrameHeader.DESTINATION, destination, true);
  view.setUint32(at + FrameHeader.PAYLOAD_SIZE, payloadSize, true);
  view.setUint32(at + FrameHeader.CHECKSUM, 0, true);
  setU53(view, at + FrameHeader.HLC_PHYSICAL_US, hlcPhysicalUs);
  view.setUint32(at + FrameHeader.HLC_LOGICAL, hlcLogical, true);
  view.setUint32(at + FrameHeader.HLC_NODE, hlcNode, true);
  if (traceId === undefined) {
    setU53(view, at + FrameHeader.TRACE_ID, 0);
    setU53(view, at + FrameHeader.TRACE_ID + 8, 0);
  } else {
    bytes.set(traceId, at + FrameHeader.TRACE_ID);
  }
  if (spanId === undefined) setU53(view, at + FrameHeader.SPAN_ID, 0);
  else bytes.set(spanId, at + FrameHeader.SPAN_ID);
  view.setUint8(at + FrameHeader.PRIORITY, priority);
  view.setUint8(at + FrameHeader.TRACE_FLAGS, traceFlags);
  view.setUint16(at + FrameHeader.RESERVED0, 0, true);
  view.setUint32(at + FrameHeader.ERROR_CODE, 0, true);
}

/** Checks the message id a caller supplied. */
export function checkMessageId(value: number): number {
  return id('messageId', value);
}

/** Checks caller-supplied flags. */
export function checkFlags(value: number | undefined): number {
  if (value === undefined) return 0;
  if ((value & 0xffff) !== value) throw new InvalidEnvelopeError('flags', `expected a u16, got ${value}`);
  return value;
}
