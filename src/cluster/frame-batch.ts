import { ErrorCode } from '../errors/codes.js';
import { type MalformedFrameCode, MalformedFrameError } from '../errors/frame-errors.js';
import { CRC32C_INIT, crc32cFinish, crc32cUpdate } from '../wire/crc32c.js';
import { checkFlags, type Envelope, writeFrameHeader } from '../wire/envelope.js';
import { alignedFrameSize, FRAME_MAGIC, FRAME_VERSION, FrameFlags, FrameHeader } from '../wire/frame-header.js';
import { FrameView } from '../wire/frame-view.js';
import type { MessageCodec } from '../wire/message-schema.js';

/**
 * Frames as they travel between nodes: the same bytes as in a ring (u32 length, envelope header, payload, padding
 * to 8 bytes), one after another, as many as a NATS message carries. Each frame says its own length, so a batch
 * needs no other framing.
 *
 * @example
 * const batch = new FrameBatchWriter();
 * batch.add(Reading, { sensor: 1, value: 2 }, { messageId: 1 });
 * readFrameBatch(batch.take(), (frame) => frame.decode(Reading), (error) => deadLetter(error));
 */
export class FrameBatchWriter {
  #bytes: Uint8Array;
  #view: DataView;
  #length = 0;
  #frames = 0;
  /** Checksum every frame (CRC32-C), for links that want integrity end to end. */
  readonly #integrity: boolean;

  constructor(options: { readonly initialBytes?: number; readonly integrity?: boolean } = {}) {
    this.#bytes = new Uint8Array(options.initialBytes ?? 4096);
    this.#view = new DataView(this.#bytes.buffer);
    this.#integrity = options.integrity ?? false;
  }

  /** Frames in the batch. */
  get frames(): number {
    return this.#frames;
  }

  /** Bytes in the batch. */
  get byteLength(): number {
    return this.#length;
  }

  /**
   * Appends one frame: `value` encoded by `codec`, under `envelope` (its `messageId` is required: ids are the
   * sender's). Nothing is appended when the value or envelope does not fit (the codec's or envelope's typed error).
   */
  add<In>(codec: MessageCodec<In, unknown>, value: In, envelope: Envelope & { messageId: number }): void {
    const payloadSize = codec.encodedSize(value);
    const size = alignedFrameSize(payloadSize);
    this.#reserve(size);
    const at = this.#length;
    const flags = checkFlags(envelope.flags) | (this.#integrity ? FrameFlags.CHECKSUM : 0);
    writeFrameHeader(
      this.#view,
      this.#bytes,
      at,
      codec.typeId,
      payloadSize,
      flags,
      envelope.messageId,
      envelope,
      0,
      0,
      0,
    );
    codec.encodeInto(this.#view, this.#bytes, at + FrameHeader.SIZE, value);
    if (flags & FrameFlags.CHECKSUM) {
      let crc = crc32cUpdate(CRC32C_INIT, this.#bytes, at + FrameHeader.MAGIC, at + FrameHeader.CHECKSUM);
      crc = crc32cUpdate(crc, this.#bytes, at + FrameHeader.CHECKSUM + 4, at + FrameHeader.SIZE + payloadSize);
      this.#view.setUint32(at + FrameHeader.CHECKSUM, crc32cFinish(crc), true);
    }
    this.#bytes.fill(0, at + FrameHeader.SIZE + payloadSize, at + size);
    this.#length += size;
    this.#frames++;
  }

  /** Appends a frame that is already whole (a kernel's output, as it came off its ring). */
  addFrame(frame: FrameView): void {
    const { view, offset } = frame.location;
    const length = frame.length;
    const size = alignedFrameSize(length - FrameHeader.SIZE);
    this.#reserve(size);
    this.#bytes.set(new Uint8Array(view.buffer, view.byteOffset + offset, length), this.#length);
    this.#bytes.fill(0, this.#length + length, this.#length + size);
    this.#length += size;
    this.#frames++;
  }

  /** The batch's bytes (a copy), and the writer starts a new batch. */
  take(): Uint8Array {
    const out = this.#bytes.slice(0, this.#length);
    this.#length = 0;
    this.#frames = 0;
    return out;
  }

  #reserve(size: number): void {
    if (this.#length + size <= this.#bytes.length) return;
    let capacity = this.#bytes.length * 2;
    while (capacity < this.#length + size) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
    this.#view = new DataView(grown.buffer);
  }
}

/** What {@link readFrameBatch} found. */
export interface FrameBatchCount {
  /** Well-formed frames handed to `onFrame`. */
  readonly frames: number;
  /** Bytes skipped as malformed (0 when the whole batch was good). */
  readonly malformedBytes: number;
}

/**
 * Reads the frames of a batch in order, checking each as a ring's consumer does (length, magic, version, payload
 * size, checksum when flagged). A bad frame ends the batch — its length cannot be trusted, so neither can anything
 * after it — and is reported once to `onMalformed` with a typed error carrying the rest of the bytes. Never throws
 * for bad input. `onFrame` gets a view that is valid during the call only (`frame.copy()` to keep it).
 */
export function readFrameBatch(
  data: Uint8Array,
  onFrame: (frame: FrameView) => void,
  onMalformed: (error: MalformedFrameError) => void,
): FrameBatchCount {
  // Schema views read arrays through typed arrays, which need natural alignment: copy a batch that is not aligned.
  // (A plain Uint8Array either way: NATS hands out Node Buffers, whose slice() is a view, not a copy.)
  let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data.byteOffset % 8 !== 0) {
    bytes = new Uint8Array(data.byteLength);
    bytes.set(data);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frame = new FrameView(view, bytes, 0);
  let at = 0;
  let frames = 0;
  while (at < bytes.length) {
    const problem = checkFrame(view, bytes, at);
    if (problem !== undefined) {
      const rest = bytes.slice(at);
      onMalformed(
        new MalformedFrameError(problem.code, `${problem.detail} (frame ${frames} of a batch)`, at, rest.length, rest),
      );
      return { frames, malformedBytes: rest.length };
    }
    frame.bind(view, bytes, at);
    onFrame(frame);
    frames++;
    at += alignedFrameSize(view.getUint32(at + FrameHeader.LENGTH, true) - FrameHeader.SIZE);
  }
  return { frames, malformedBytes: 0 };
}

function checkFrame(
  view: DataView,
  bytes: Uint8Array,
  at: number,
): { code: MalformedFrameCode; detail: string } | undefined {
  const left = bytes.length - at;
  if (left < FrameHeader.SIZE)
    return { code: ErrorCode.FrameBadLength, detail: `${left} bytes left, short of a header` };
  const length = view.getUint32(at + FrameHeader.LENGTH, true);
  if (length < FrameHeader.SIZE || length > left) {
    return { code: ErrorCode.FrameBadLength, detail: `length ${length} with ${left} bytes left` };
  }
  const magic = view.getUint32(at + FrameHeader.MAGIC, true);
  if (magic !== FRAME_MAGIC) return { code: ErrorCode.FrameBadMagic, detail: `magic 0x${magic.toString(16)}` };
  const version = view.getUint16(at + FrameHeader.VERSION, true);
  if (version !== FRAME_VERSION) {
    return { code: ErrorCode.FrameBadVersion, detail: `version ${version}, expected ${FRAME_VERSION}` };
  }
  const payloadSize = view.getUint32(at + FrameHeader.PAYLOAD_SIZE, true);
  if (payloadSize !== length - FrameHeader.SIZE) {
    return {
      code: ErrorCode.FramePayloadSizeMismatch,
      detail: `payload_size ${payloadSize} in a ${length}-byte frame`,
    };
  }
  if (view.getUint16(at + FrameHeader.FLAGS, true) & FrameFlags.CHECKSUM) {
    let crc = crc32cUpdate(CRC32C_INIT, bytes, at + FrameHeader.MAGIC, at + FrameHeader.CHECKSUM);
    crc = crc32cUpdate(crc, bytes, at + FrameHeader.CHECKSUM + 4, at + length);
    if (crc32cFinish(crc) !== view.getUint32(at + FrameHeader.CHECKSUM, true)) {
      return { code: ErrorCode.FrameBadChecksum, detail: 'CRC32-C mismatch' };
    }
  }
  return undefined;
}
