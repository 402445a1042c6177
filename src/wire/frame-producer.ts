import { RingBuffer } from 'ringbuf.js';
import { FrameTooLargeError } from '../errors/frame-errors.js';
import { TimeoutError } from '../errors/value-errors.js';
import { CRC32C_INIT, crc32cFinish, crc32cUpdate } from './crc32c.js';
import { checkFlags, checkMessageId, type Envelope, writeFrameHeader } from './envelope.js';
import { DEFAULT_SPIN, waitUntil, waitUntilAsync, wake } from './eventcount.js';
import { alignedFrameSize, FRAME_ALIGN, FrameFlags, FrameHeader } from './frame-header.js';
import { checkRingMemory, countFrames, type FrameRingMemory } from './frame-ring.js';
import type { HybridLogicalClock } from './hlc.js';
import type { MessageCodec } from './message-schema.js';
import { RingOffset, RingSignalOffset } from './ring-signal.js';

/** Options of a {@link FrameProducer}. */
export interface FrameProducerOptions {
  /** Stamps every frame (ticked once per frame). Without one, frames carry a zero HLC. */
  readonly clock?: HybridLogicalClock;
  /** Compute a CRC32-C for every frame even on a ring created without `integrity`. Default: the ring's setting. */
  readonly integrity?: boolean;
  /** Iterations spent spinning before a blocking wait parks. Default {@link DEFAULT_SPIN}. */
  readonly spin?: number;
}

const SEQ = RingSignalOffset.SPACE_SEQ >> 2;
const SLEEPING = RingSignalOffset.PRODUCER_SLEEPING >> 2;
const CONSUMER_SEQ = RingSignalOffset.DATA_SEQ >> 2;
const CONSUMER_SLEEPING = RingSignalOffset.CONSUMER_SLEEPING >> 2;

/**
 * The writing end of a frame ring (one per ring: rings are single-producer).
 *
 * A frame is written whole or not at all: the producer checks for room for the complete, padded frame, encodes
 * header and payload straight into the ring slot, and publishes it with a single release store of the write
 * index (ringbuf.js `writeCallbackWithOffset`). A frame that would straddle the end of the storage is encoded
 * into a scratch buffer and copied in two parts before that one publish, so the consumer never sees a partial
 * frame.
 *
 * @example
 * const producer = new FrameProducer(memory, { clock: new HybridLogicalClock(0) });
 * if (!producer.tryWrite(Reading, reading, { destination: 7 })) await producer.waitForSpaceAsync(Reading.size);
 */
export class FrameProducer {
  /** The largest payload a frame may carry. */
  readonly maxPayloadSize: number;
  readonly #ring: RingBuffer;
  readonly #indices: Uint32Array;
  readonly #storageSize: number;
  readonly #view: DataView;
  readonly #bytes: Uint8Array;
  readonly #signal: Int32Array;
  readonly #scratchBytes: Uint8Array;
  readonly #scratchView: DataView;
  readonly #clock: HybridLogicalClock | undefined;
  readonly #integrity: boolean;
  readonly #spin: number;
  readonly #hasSpace: () => boolean;
  #spaceNeeded = 0;
  #nextMessageId = 1;
  #framesWritten = 0;

  // The frame being written, read by #encodeFrame inside ringbuf.js's callback (set just before each call, so
  // the callback can be one pre-bound function instead of a closure per frame).
  #codec: MessageCodec<unknown, unknown> | undefined;
  #value: unknown;
  #envelope: Envelope | undefined;
  #payloadSize = 0;
  #flags = 0;
  #messageId = 0;
  readonly #encodeFrame = this.#encode.bind(this);

  constructor(memory: FrameRingMemory, options: FrameProducerOptions = {}) {
    this.#storageSize = checkRingMemory(memory);
    this.maxPayloadSize = memory.maxPayloadSize;
    const spin = options.spin ?? DEFAULT_SPIN;
    if (!Number.isInteger(spin) || spin < 0) throw new RangeError(`spin must be a non-negative integer, got ${spin}`);
    this.#ring = new RingBuffer(memory.ring, Uint8Array);
    this.#indices = new Uint32Array(memory.ring, 0, 2);
    this.#view = new DataView(memory.ring);
    this.#bytes = new Uint8Array(memory.ring);
    this.#signal = new Int32Array(memory.signal);
    this.#scratchBytes = new Uint8Array(alignedFrameSize(memory.maxPayloadSize));
    this.#scratchView = new DataView(this.#scratchBytes.buffer);
    this.#clock = options.clock;
    this.#integrity = memory.integrity || (options.integrity ?? false);
    this.#spin = spin;
    this.#hasSpace = () => this.availableWriteBytes() >= this.#spaceNeeded;
  }

  /** Frames written so far. */
  get framesWritten(): number {
    return this.#framesWritten;
  }

  /**
   * Writes one frame if the ring has room for all of it.
   *
   * @returns `true` when the frame was published, `false` when the ring is full (nothing was written).
   * @throws {FrameTooLargeError} when the payload exceeds {@link FrameProducer.maxPayloadSize} — before anything
   * is written. {@link ValueOutOfRangeError}, {@link StringTooLongError} or {@link InvalidEnvelopeError} when the
   * value or envelope does not fit — nothing is published then either.
   */
  tryWrite<In>(codec: MessageCodec<In, unknown>, value: In, envelope?: Envelope): boolean {
    const payloadSize = codec.encodedSize(value);
    if (!(payloadSize <= this.maxPayloadSize && payloadSize >= 0)) {
      throw new FrameTooLargeError(payloadSize, this.maxPayloadSize);
    }
    const frameSize = (FrameHeader.SIZE + payloadSize + (FRAME_ALIGN - 1)) & ~(FRAME_ALIGN - 1);
    if (this.#ring.availableWrite() < frameSize) return false;
    const requested = envelope?.messageId;
    this.#messageId = requested === undefined ? this.#nextMessageId : checkMessageId(requested);
    this.#codec = codec as MessageCodec<unknown, unknown>;
    this.#value = value;
    this.#envelope = envelope;
    this.#payloadSize = payloadSize;
    this.#flags = checkFlags(envelope?.flags) | (this.#integrity ? FrameFlags.CHECKSUM : 0);
    try {
      // Encodes in place, then ringbuf.js publishes the write index once (release store).
      this.#ring.writeCallbackWithOffset(frameSize, this.#encodeFrame);
    } finally {
      this.#codec = undefined;
      this.#value = undefined;
      this.#envelope = undefined;
    }
    if (requested === undefined) this.#nextMessageId++;
    this.#framesWritten++;
    wake(this.#signal, CONSUMER_SEQ, CONSUMER_SLEEPING);
    return true;
  }

  /**
   * Writes one frame, waiting (blocking the thread: worker threads only, or where blocking is acceptable) for
   * room up to `timeoutMs`.
   * @throws {TimeoutError} when the ring stays full past the deadline.
   */
  write<In>(
    codec: MessageCodec<In, unknown>,
    value: In,
    envelope?: Envelope,
    timeoutMs = Number.POSITIVE_INFINITY,
  ): void {
    while (!this.tryWrite(codec, value, envelope)) {
      if (!this.waitForSpace(alignedFrameSize(codec.encodedSize(value)), timeoutMs)) {
        throw new TimeoutError('FrameProducer.write', timeoutMs);
      }
    }
  }

  /** Free bytes in the ring right now. */
  availableWriteBytes(): number {
    return this.#ring.availableWrite();
  }

  /** How many frames with `payloadSize` bytes of payload fit in the ring right now. */
  availableWriteFrames(payloadSize: number): number {
    return Math.floor(this.availableWriteBytes() / alignedFrameSize(payloadSize));
  }

  /** Frames published and not yet consumed (walks their headers: for metrics, not the hot path). */
  pendingFrames(): number {
    const write = Atomics.load(this.#indices, 0);
    const read = Atomics.load(this.#indices, 1);
    return countFrames(this.#view, this.#storageSize, read, write);
  }

  /**
   * Blocks until `bytes` bytes are free or `timeoutMs` passes: spins, then parks on the doorbell (the consumer
   * notifies only while this producer sleeps). Returns whether the room is there.
   */
  waitForSpace(bytes: number, timeoutMs = Number.POSITIVE_INFINITY): boolean {
    this.#spaceNeeded = bytes;
    return waitUntil(this.#signal, SEQ, SLEEPING, this.#hasSpace, timeoutMs, this.#spin);
  }

  /** {@link FrameProducer.waitForSpace} for event-loop threads, with `Atomics.waitAsync` and an optional abort signal. */
  waitForSpaceAsync(bytes: number, timeoutMs = Number.POSITIVE_INFINITY, signal?: AbortSignal): Promise<boolean> {
    this.#spaceNeeded = bytes;
    return waitUntilAsync(this.#signal, SEQ, SLEEPING, this.#hasSpace, timeoutMs, this.#spin, signal);
  }

  #encode(storage: unknown, first: number, firstLength: number, second: number, secondLength: number): number {
    const codec = this.#codec as MessageCodec<unknown, unknown>;
    const frameLength = FrameHeader.SIZE + this.#payloadSize;
    let view = this.#view;
    let bytes = this.#bytes;
    let at = RingOffset.DATA + first;
    if (secondLength !== 0) {
      view = this.#scratchView;
      bytes = this.#scratchBytes;
      at = 0;
    }
    const clock = this.#clock;
    if (clock !== undefined) clock.tick();
    writeFrameHeader(
      view,
      bytes,
      at,
      codec.typeId,
      this.#payloadSize,
      this.#flags,
      this.#messageId,
      this.#envelope,
      clock === undefined ? 0 : clock.physicalUs,
      clock === undefined ? 0 : clock.logical,
      clock === undefined ? 0 : clock.node,
    );
    codec.encodeInto(view, bytes, at + FrameHeader.SIZE, this.#value);
    if (this.#flags & FrameFlags.CHECKSUM) {
      let crc = crc32cUpdate(CRC32C_INIT, bytes, at + FrameHeader.MAGIC, at + FrameHeader.CHECKSUM);
      crc = crc32cUpdate(crc, bytes, at + FrameHeader.CHECKSUM + 4, at + frameLength);
      view.setUint32(at + FrameHeader.CHECKSUM, crc32cFinish(crc), true);
    }
    if (secondLength !== 0) {
      const ring = storage as Uint8Array;
      ring.set(this.#scratchBytes.subarray(0, firstLength), first);
      ring.set(this.#scratchBytes.subarray(firstLength, firstLength + secondLength), second);
    }
    return firstLength + secondLength;
  }
}
