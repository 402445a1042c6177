import { MessageTypeMismatchError } from '../errors/value-errors.js';
import { getU53 } from './envelope.js';
import { FrameFlags, FrameHeader } from './frame-header.js';
import type { MessageCodec } from './message-schema.js';

/**
 * A frame read off a ring, seen in place: every getter reads the ring's memory directly. The consumer reuses one
 * FrameView for every frame of a batch, so a view is valid only inside the callback that received it; keep
 * {@link FrameView.copy} (or a decoded `toObject()`) to hold on to a message.
 *
 * @example
 * consumer.drain((frame) => {
 *   if (frame.typeId === Reading.typeId) sum += frame.decode(Reading).value;
 * });
 */
export class FrameView {
  #view: DataView;
  #bytes: Uint8Array;
  #at = 0;

  /** @internal */
  constructor(view: DataView, bytes: Uint8Array, at: number) {
    this.#view = view;
    this.#bytes = bytes;
    this.#at = at;
  }

  /** Points this view at another frame. @internal */
  bind(view: DataView, bytes: Uint8Array, at: number): this {
    this.#view = view;
    this.#bytes = bytes;
    this.#at = at;
    return this;
  }

  /** Header plus payload bytes. */
  get length(): number {
    return this.#view.getUint32(this.#at + FrameHeader.LENGTH, true);
  }
  /** {@link FrameFlags} bits. */
  get flags(): number {
    return this.#view.getUint16(this.#at + FrameHeader.FLAGS, true);
  }
  /** The message type id. */
  get typeId(): number {
    return this.#view.getUint32(this.#at + FrameHeader.TYPE_ID, true);
  }
  /** Message id. */
  get messageId(): number {
    return getU53(this.#view, this.#at + FrameHeader.MESSAGE_ID);
  }
  /** Id of the request this frame answers; 0 = none. */
  get correlationId(): number {
    return getU53(this.#view, this.#at + FrameHeader.CORRELATION_ID);
  }
  /** Source kernel id; 0 = host. */
  get source(): number {
    return this.#view.getUint32(this.#at + FrameHeader.SOURCE, true);
  }
  /** Destination kernel id. */
  get destination(): number {
    return this.#view.getUint32(this.#at + FrameHeader.DESTINATION, true);
  }
  /** Payload bytes. */
  /** With {@link FrameFlags.DEAD_LETTER}: the RK_E_* error that failed the message (else 0). */
  get errorCode(): number {
    return this.#view.getUint32(this.#at + FrameHeader.ERROR_CODE, true);
  }
  get payloadSize(): number {
    return this.#view.getUint32(this.#at + FrameHeader.PAYLOAD_SIZE, true);
  }
  /** CRC32-C, meaningful when {@link FrameFlags.CHECKSUM} is set. */
  get checksum(): number {
    return this.#view.getUint32(this.#at + FrameHeader.CHECKSUM, true);
  }
  /** Priority, 0 … 255. */
  get priority(): number {
    return this.#view.getUint8(this.#at + FrameHeader.PRIORITY);
  }
  /** HLC physical time of the send, µs since the epoch. */
  get hlcPhysicalUs(): number {
    return getU53(this.#view, this.#at + FrameHeader.HLC_PHYSICAL_US);
  }
  /** HLC logical counter of the send. */
  get hlcLogical(): number {
    return this.#view.getUint32(this.#at + FrameHeader.HLC_LOGICAL, true);
  }
  /** HLC node that stamped the frame. */
  get hlcNode(): number {
    return this.#view.getUint32(this.#at + FrameHeader.HLC_NODE, true);
  }
  /** W3C trace flags. */
  get traceFlags(): number {
    return this.#view.getUint8(this.#at + FrameHeader.TRACE_FLAGS);
  }
  /** The W3C trace id, in place (16 bytes; all zero when untraced). */
  get traceId(): Uint8Array {
    const at = this.#at + FrameHeader.TRACE_ID;
    return this.#bytes.subarray(at, at + 16);
  }
  /** The W3C parent span id, in place (8 bytes). */
  get spanId(): Uint8Array {
    const at = this.#at + FrameHeader.SPAN_ID;
    return this.#bytes.subarray(at, at + 8);
  }
  /**
   * Copies the trace id (16 bytes) then the parent span id (8 bytes) into `into` at `at`, without allocating (the
   * tracing hot path's alternative to {@link FrameView.traceId} and {@link FrameView.spanId}).
   */
  copyTraceContext(into: Uint8Array, at: number): void {
    const bytes = this.#bytes;
    const from = this.#at + FrameHeader.TRACE_ID;
    for (let i = 0; i < 24; i++) into[at + i] = bytes[from + i] as number;
  }
  /** Whether this frame answers a request. */
  get isResponse(): boolean {
    return (this.flags & FrameFlags.RESPONSE) !== 0;
  }
  /** The payload, in place. */
  get payload(): Uint8Array {
    const at = this.#at + FrameHeader.SIZE;
    return this.#bytes.subarray(at, at + this.payloadSize);
  }
  /** The DataView the frame lives in and the frame's offset in it, for native-style access. */
  get location(): { readonly view: DataView; readonly offset: number } {
    return { view: this.#view, offset: this.#at };
  }

  /**
   * The payload as a message: a zero-copy view for schemas, a `Uint8Array` for {@link BytesMessage}.
   * @throws {MessageTypeMismatchError} when the frame carries another type.
   */
  decode<In, View>(codec: MessageCodec<In, View>): View {
    const typeId = this.typeId;
    if (typeId !== codec.typeId) {
      throw new MessageTypeMismatchError(codec.name, `type id ${typeId}, expected ${codec.typeId}`);
    }
    return codec.view(this.#view, this.#bytes, this.#at + FrameHeader.SIZE, this.payloadSize);
  }

  /** Copies the frame into memory of its own: a view that stays valid after the ring moves on. */
  copy(): FrameView {
    const length = this.length;
    const own = new Uint8Array(length);
    own.set(this.#bytes.subarray(this.#at, this.#at + length));
    return new FrameView(new DataView(own.buffer), own, 0);
  }
}
