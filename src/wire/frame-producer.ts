import { FrameTooLargeError } from '../errors/frame-errors.js';
import { TimeoutError } from '../errors/value-errors.js';
import { CRC32C_INIT, crc32cFinish, crc32cUpdate } from './crc32c.js';
import { checkFlags, checkMessageId, type Envelope, writeFrameHeader } from './envelope.js';
import { DEFAULT_SPIN, waitUntil, waitUntilAsync, wake } from './eventcount.js';
import { alignedFrameSize, FRAME_ALIGN, FrameFlags, FrameHeader } from './frame-header.js';
import { countFrames, type FrameRingMemory } from './frame-ring.js';
import type { HybridLogicalClock } from './hlc.js';
import type { MessageCodec } from './message-schema.js';
import { RingOffset, RingSignalOffset } from './ring-signal.js';
import { openRing, type RingViews } from './ring-views.js';

/** Options of a {@link FrameProducer}. */
export interface FrameProducerOptions {
  /** Stamps every frame (ticked once per frame). Without one, frames carry a zero HLC. */
  readonly clock?: HybridLogicalClock;
  /** Compute a CRC32-C for every frame even on a ring created without `integrity`. Default: the ring's setting. */
  readonly integrity?: boolean;
  /** Iterations spent spinning before a blocking wait parks. Default {@link DEFAULT_SPIN}. */
  readonly spin?: number;
  /**
   * Another ring's doorbell to ring after each publish: a consumer that merges several rings (kernel-to-kernel
   * fan-in) parks on its own input ring's doorbell, and producers of its other rings wake it there.
   */
  readonly alsoWake?: SharedArrayBuffer;
  /**
   * Do not wake the consumer after each frame: the owner calls {@link FrameProducer.wakeConsumer} after a batch.
   * A producer that writes bursts (a kernel's outputs) then pays one wake-up check — and at most one
   * `Atomics.notify` — per batch instead of per frame, while a consumer that keeps finding the ring empty and
   * parking would otherwise be notified once per frame. Frames are still published one by one.
   */
  readonly deferWake?: boolean;
}

const WRITE = RingOffset.WRITE_INDEX >> 2;
const READ = RingOffset.READ_INDEX >> 2;
const SEQ = RingSignalOffset.SPACE_SEQ >> 2;
const SLEEPING = RingSignalOffset.PRODUCER_SLEEPING >> 2;
const CONSUMER_SEQ = RingSignalOffset.DATA_SEQ >> 2;
const CONSUMER_SLEEPING = RingSignalOffset.CONSUMER_SLEEPING >> 2;

/**
 * The writing end of a frame ring (one per ring: rings are single-producer).
 *
 * A frame is written whole or not at all: the producer checks for room for the complete, padded frame, encodes
 * header and payload straight into the ring slot, and publishes it with a single release store of the write
 * index. A frame that would straddle the end of the storage is encoded into a scratch buffer and copied in two
 * parts before that one publish, so the consumer never sees a partial frame.
 *
 * The ring is ringbuf.js's (allocated by it, same indices, same ordering contract — a ringbuf.js `RingBuffer`
 * reads these frames back byte for byte), but the producer keeps its own write index and a cached copy of the
 * consumer's read index, reloading that only when the cached view says the ring is full. ringbuf.js reloads
 * both indices twice per push; skipping those loads keeps the consumer's cache line out of the per-frame path
 * (measured in `npm run bench`).
 *
 * @example
 * const producer = new FrameProducer(memory, { clock: new HybridLogicalClock(0) });
 * if (!producer.tryWrite(Reading, reading, { destination: 7 })) await producer.waitForSpaceAsync(Reading.size);
 */
export class FrameProducer {
  /** The largest payload a frame may carry. */
  readonly maxPayloadSize: number;
  readonly #ring: RingViews;
  readonly #clock: HybridLogicalClock | undefined;
  readonly #integrity: boolean;
  readonly #hasSpace: () => boolean;
  /** Our own write index: we are its only writer, so it never needs reloading. */
  #write: number;
  /** The consumer's read index as last loaded; only ever behind the real one, so free space is never overstated. */
  #readCache: number;
  readonly #alsoWake: Int32Array | undefined;
  #spaceNeeded = 0;
  #nextMessageId = 1;
  #framesWritten = 0;
  #deferWake: boolean;
  /** Frames published since the consumer was last woken (deferred wakes only). */
  #unwoken = 0;

  constructor(memory: FrameRingMemory, options: FrameProducerOptions = {}) {
    const ring = openRing(memory, options.spin);
    this.#ring = ring;
    this.maxPayloadSize = memory.maxPayloadSize;
    this.#clock = options.clock;
    this.#integrity = memory.integrity || (options.integrity ?? false);
    this.#alsoWake = options.alsoWake === undefined ? undefined : new Int32Array(options.alsoWake);
    this.#deferWake = options.deferWake ?? false;
    this.#write = Atomics.load(this.#ring.indices, WRITE);
    this.#readCache = Atomics.load(this.#ring.indices, READ);
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
    const size = this.#ring.storageSize;
    const write = this.#write;
    // One slot stays empty (ringbuf.js: full when write + 1 == read), hence the − 1.
    if ((this.#readCache - write - 1 + size) % size < frameSize) {
      // Acquire: the consumer is done with every byte before its published read index.
      this.#readCache = Atomics.load(this.#ring.indices, READ);
      if ((this.#readCache - write - 1 + size) % size < frameSize) return false;
    }
    const requested = envelope?.messageId;
    const messageId = requested === undefined ? this.#nextMessageId : checkMessageId(requested);
    const flags = checkFlags(envelope?.flags) | (this.#integrity ? FrameFlags.CHECKSUM : 0);
    const firstPart = size - write;
    const wraps = frameSize > firstPart;
    const view = wraps ? this.#ring.scratchView : this.#ring.view;
    const bytes = wraps ? this.#ring.scratchBytes : this.#ring.bytes;
    const at = wraps ? 0 : RingOffset.DATA + write;
    const clock = this.#clock;
    if (clock !== undefined) clock.tick();
    writeFrameHeader(
      view,
      bytes,
      at,
      codec.typeId,
      payloadSize,
      flags,
      messageId,
      envelope,
      clock === undefined ? 0 : clock.physicalUs,
      clock === undefined ? 0 : clock.logical,
      clock === undefined ? 0 : clock.node,
    );
    codec.encodeInto(view, bytes, at + FrameHeader.SIZE, value);
    if (flags & FrameFlags.CHECKSUM) {
      let crc = crc32cUpdate(CRC32C_INIT, bytes, at + FrameHeader.MAGIC, at + FrameHeader.CHECKSUM);
      crc = crc32cUpdate(crc, bytes, at + FrameHeader.CHECKSUM + 4, at + FrameHeader.SIZE + payloadSize);
      view.setUint32(at + FrameHeader.CHECKSUM, crc32cFinish(crc), true);
    }
    if (wraps) {
      const ring = this.#ring.bytes;
      ring.set(this.#ring.scratchBytes.subarray(0, firstPart), RingOffset.DATA + write);
      ring.set(this.#ring.scratchBytes.subarray(firstPart, frameSize), RingOffset.DATA);
    }
    this.#write = (write + frameSize) % size;
    // Release: the whole frame is visible to whoever sees the new write index. One publish per frame.
    Atomics.store(this.#ring.indices, WRITE, this.#write);
    if (requested === undefined) this.#nextMessageId++;
    this.#framesWritten++;
    if (this.#deferWake) this.#unwoken++;
    else this.#wake();
    return true;
  }

  /**
   * Defers wake-ups from now on (`true`), or ends deferring and wakes the consumer for what was published meanwhile
   * (`false`): a producer writing a burst it knows the size of (a batch from the network) pays one wake-up for it.
   */
  deferWakes(defer: boolean): void {
    this.#deferWake = defer;
    if (!defer) this.wakeConsumer();
  }

  /**
   * Wakes the consumer if it sleeps and frames were published since the last wake (a producer with `deferWake`
   * calls this after each batch). Ordering: the frames' publishes come before this load of the consumer's
   * sleeping flag, so a consumer that set the flag and then found the ring empty is notified.
   */
  wakeConsumer(): void {
    if (this.#unwoken === 0) return;
    this.#unwoken = 0;
    this.#wake();
  }

  /**
   * The consumer has read every frame published so far on this thread's turn (a fused link): no wake-up is owed
   * for them. Frames published later are woken for as usual.
   */
  consumerCaughtUp(): void {
    this.#unwoken = 0;
  }

  #wake(): void {
    wake(this.#ring.signal, CONSUMER_SEQ, CONSUMER_SLEEPING);
    if (this.#alsoWake !== undefined) wake(this.#alsoWake, CONSUMER_SEQ, CONSUMER_SLEEPING);
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
    this.#readCache = Atomics.load(this.#ring.indices, READ);
    return (this.#readCache - this.#write - 1 + this.#ring.storageSize) % this.#ring.storageSize;
  }

  /** How many frames with `payloadSize` bytes of payload fit in the ring right now. */
  availableWriteFrames(payloadSize: number): number {
    return Math.floor(this.availableWriteBytes() / alignedFrameSize(payloadSize));
  }

  /** Frames published and not yet consumed (walks their headers: for metrics, not the hot path). */
  pendingFrames(): number {
    return countFrames(this.#ring.view, this.#ring.storageSize, Atomics.load(this.#ring.indices, READ), this.#write);
  }

  /**
   * Blocks until `bytes` bytes are free or `timeoutMs` passes: spins, then parks on the doorbell (the consumer
   * notifies only while this producer sleeps). Returns whether the room is there.
   */
  waitForSpace(bytes: number, timeoutMs = Number.POSITIVE_INFINITY): boolean {
    this.#spaceNeeded = bytes;
    return waitUntil(this.#ring.signal, SEQ, SLEEPING, this.#hasSpace, timeoutMs, this.#ring.spin);
  }

  /** {@link FrameProducer.waitForSpace} for event-loop threads, with `Atomics.waitAsync` and an optional abort signal. */
  waitForSpaceAsync(bytes: number, timeoutMs = Number.POSITIVE_INFINITY, signal?: AbortSignal): Promise<boolean> {
    this.#spaceNeeded = bytes;
    return waitUntilAsync(this.#ring.signal, SEQ, SLEEPING, this.#hasSpace, timeoutMs, this.#ring.spin, signal);
  }
}
