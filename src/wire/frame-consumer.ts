import { ArgumentTypeError } from '../errors/argument-errors.js';
import { ErrorCode } from '../errors/codes.js';
import { type MalformedFrameCode, MalformedFrameError } from '../errors/frame-errors.js';
import { CRC32C_INIT, crc32cFinish, crc32cUpdate } from './crc32c.js';
import { DEFAULT_SPIN, waitUntil, waitUntilAsync, wake } from './eventcount.js';
import { alignedFrameSize, FRAME_ALIGN, FRAME_MAGIC, FRAME_VERSION, FrameFlags, FrameHeader } from './frame-header.js';
import { countFrames, type FrameRingMemory } from './frame-ring.js';
import { FrameView } from './frame-view.js';
import { RingOffset, RingSignalOffset } from './ring-signal.js';
import { openRing, type RingViews } from './ring-views.js';

/** Options of a {@link FrameConsumer}. */
export interface FrameConsumerOptions {
  /**
   * Called once for each malformed frame (after it has been skipped), e.g. to dead-letter it. Malformed frames
   * are always counted in {@link FrameConsumer.malformedFrames}, with or without this hook.
   */
  readonly onMalformed?: (error: MalformedFrameError) => void;
  /** Iterations spent spinning before a wait parks. Default {@link DEFAULT_SPIN}. */
  readonly spin?: number;
}

/** Ring indices as u32 slots of the ring's header. */
const WRITE = RingOffset.WRITE_INDEX >> 2;
const READ = RingOffset.READ_INDEX >> 2;
const SEQ = RingSignalOffset.DATA_SEQ >> 2;
const SLEEPING = RingSignalOffset.CONSUMER_SLEEPING >> 2;
const PRODUCER_SEQ = RingSignalOffset.SPACE_SEQ >> 2;
const PRODUCER_SLEEPING = RingSignalOffset.PRODUCER_SLEEPING >> 2;

/**
 * The reading end of a frame ring (one per ring: rings are single-consumer).
 *
 * {@link FrameConsumer.drain} is the batch pop: it acquires the write index once, hands every complete frame to
 * a callback as an in-place {@link FrameView} (zero copy unless the frame wraps around the end of the storage, in
 * which case it is copied once into a scratch buffer), validates each frame first, and publishes the read index
 * once at the end (release store) so the producer sees the freed room in one step.
 *
 * ringbuf.js has no read-in-place API (its `pop` copies element by element), so the consumer reads the same
 * layout directly; the memory-ordering contract is ringbuf.js's: acquire the write index, read the data,
 * release the read index.
 *
 * A frame that fails validation is counted, reported to `onMalformed` with a typed code, and skipped; the ring
 * stays usable. When the frame's own length can be trusted (bad version, payload size or checksum) only that
 * frame is skipped; when it cannot (bad magic, impossible length) the consumer skips everything published so
 * far — every publish ends on a frame boundary, so that is always a safe place to resume.
 *
 * @example
 * const consumer = new FrameConsumer(memory, { onMalformed: (e) => deadLetters.push(e) });
 * for (;;) {
 *   consumer.drain((frame) => handle(frame.decode(Reading)));
 *   consumer.waitForData();
 * }
 */
export class FrameConsumer {
  /** The largest payload a frame on this ring may carry. */
  readonly maxPayloadSize: number;
  readonly #ring: RingViews;
  readonly #frame: FrameView;
  readonly #maxFrameLength: number;
  readonly #onMalformed: ((error: MalformedFrameError) => void) | undefined;
  readonly #requireChecksum: boolean;
  /** What a wait waits for: a published frame, or an {@link FrameConsumer.interrupt}. */
  readonly #ready = (): boolean => this.#interrupted || Atomics.load(this.#ring.indices, WRITE) !== this.#read;
  #interrupted = false;
  /** Our own read index: we are its only writer, so it never needs reloading. */
  #read: number;
  /** Where the published read index stays while a frame is held back ({@link FrameConsumer.holdCurrentFrame}). */
  #heldAt: number | undefined;
  /** Where the frame `drain` is handing out starts. */
  #frameStart = 0;
  /** The ring offset just past the frame being handled (ahead of `#read` until the batch is published). */
  #cursor = 0;
  #framesRead = 0;
  #malformedFrames = 0;
  #skippedBytes = 0;

  constructor(memory: FrameRingMemory, options: FrameConsumerOptions = {}) {
    const ring = openRing(memory, options.spin);
    this.#ring = ring;
    if (options.onMalformed !== undefined && typeof options.onMalformed !== 'function') {
      throw new ArgumentTypeError('options.onMalformed', 'options.onMalformed must be a function');
    }
    this.maxPayloadSize = memory.maxPayloadSize;
    this.#frame = new FrameView(this.#ring.view, this.#ring.bytes, 0);
    this.#maxFrameLength = FrameHeader.SIZE + memory.maxPayloadSize;
    this.#onMalformed = options.onMalformed;
    this.#requireChecksum = memory.integrity;
    this.#read = Atomics.load(this.#ring.indices, READ);
  }

  /** Valid frames handed out so far. */
  get framesRead(): number {
    return this.#framesRead;
  }
  /** Malformed frames detected and skipped so far. */
  get malformedFrames(): number {
    return this.#malformedFrames;
  }
  /** Bytes skipped past malformed frames so far. */
  get skippedBytes(): number {
    return this.#skippedBytes;
  }

  /** Published bytes not yet consumed. */
  availableReadBytes(): number {
    const write = Atomics.load(this.#ring.indices, WRITE);
    return (write - this.#read + this.#ring.storageSize) % this.#ring.storageSize;
  }

  /** Published frames not yet consumed (walks their headers: for metrics, not the hot path). */
  availableReadFrames(): number {
    const write = Atomics.load(this.#ring.indices, WRITE);
    return countFrames(this.#ring.view, this.#ring.storageSize, this.#read, write);
  }

  /** Whether at least one frame is published and unread. */
  hasData(): boolean {
    return Atomics.load(this.#ring.indices, WRITE) !== this.#read;
  }

  /**
   * Batch pop: hands up to `maxFrames` frames to `onFrame`, each as an in-place view valid only during the call,
   * then frees their room with one release store. `onFrame` returning `false` ends the batch after that frame. If `onFrame` throws, the frames before it and the one it
   * threw on count as consumed, the room is freed, and the error propagates.
   *
   * @returns how many valid frames were handed out.
   */
  drain(onFrame: (frame: FrameView) => unknown, maxFrames = Number.POSITIVE_INFINITY): number {
    const indices = this.#ring.indices;
    const size = this.#ring.storageSize;
    // Acquire: every byte of every frame up to `write` is visible from here on.
    const write = Atomics.load(indices, WRITE);
    let read = this.#read;
    if (read === write) return 0;
    const view = this.#ring.view;
    let handled = 0;
    try {
      while (read !== write && handled < maxFrames) {
        const available = (write - read + size) % size;
        const at = RingOffset.DATA + read;
        // Frames start 8-aligned and the storage is a multiple of 8: the length word never wraps.
        const length = view.getUint32(at, true);
        const frameSize = (length + FRAME_ALIGN - 1) & ~(FRAME_ALIGN - 1);
        if (length < FrameHeader.SIZE || length > this.#maxFrameLength || frameSize > available) {
          const from = read;
          read = write;
          this.#reject(
            ErrorCode.FrameBadLength,
            `length ${length} (max ${this.#maxFrameLength}, ${available} published)`,
            from,
            available,
          );
          break;
        }
        let frameView = view;
        let frameBytes = this.#ring.bytes;
        let frameAt = at;
        const firstPart = size - read;
        if (frameSize > firstPart) {
          // The frame wraps: copy its two parts into scratch so the handler sees one contiguous frame.
          this.#ring.scratchBytes.set(this.#ring.bytes.subarray(at, at + firstPart), 0);
          this.#ring.scratchBytes.set(
            this.#ring.bytes.subarray(RingOffset.DATA, RingOffset.DATA + length - firstPart),
            firstPart,
          );
          frameView = this.#ring.scratchView;
          frameBytes = this.#ring.scratchBytes;
          frameAt = 0;
        }
        const problem = this.#validate(frameView, frameBytes, frameAt, length);
        if (problem !== undefined) {
          // Move past the frame before reporting it, so a throwing hook cannot make us read it again.
          const from = read;
          if (problem === ErrorCode.FrameBadMagic) {
            read = write;
            this.#reject(
              problem,
              `magic 0x${frameView.getUint32(frameAt + FrameHeader.MAGIC, true).toString(16)}`,
              from,
              available,
            );
            break;
          }
          read = (read + frameSize) % size;
          this.#reject(problem, this.#describe(problem, frameView, frameAt, length), from, frameSize);
          continue;
        }
        this.#frameStart = read;
        read = (read + frameSize) % size;
        handled++;
        this.#cursor = read;
        if (onFrame(this.#frame.bind(frameView, frameBytes, frameAt)) === false) break;
      }
    } finally {
      this.#framesRead += handled;
      this.#read = read;
      // Release: the producer may reuse the room only after we are done reading it (and never the room of a frame
      // held back: see holdBack).
      Atomics.store(indices, READ, this.#heldAt ?? read);
      wake(this.#ring.signal, PRODUCER_SEQ, PRODUCER_SLEEPING);
    }
    return handled;
  }

  /**
   * Keeps the published read index at the start of the frame in hand (call from `drain`'s callback) until
   * {@link FrameConsumer.releaseHeld}: the frame's bytes stay in the ring, untouched by the producer, though this
   * consumer goes on past them. For a frame whose handling is not finished (its outputs wait for room): if its
   * consumer dies, the next one reads it again from there, never from bytes the producer may have reused.
   */
  holdCurrentFrame(): void {
    this.#heldAt = this.#frameStart;
  }

  /**
   * Moves a hold ({@link FrameConsumer.holdCurrentFrame}) forward to `cursor`, the start of a later frame this
   * consumer has handed out and not finished (a {@link FrameConsumer.cursor} it read before that frame): the room
   * before it is freed. For a consumer with several batches in flight, as the oldest one finishes.
   */
  holdAt(cursor: number): void {
    this.#heldAt = cursor;
    Atomics.store(this.#ring.indices, READ, cursor);
    wake(this.#ring.signal, PRODUCER_SEQ, PRODUCER_SLEEPING);
  }

  /** Whether a hold keeps the published read index behind this consumer. */
  get holding(): boolean {
    return this.#heldAt !== undefined;
  }

  /** Ends a {@link FrameConsumer.holdBack}: publishes the read index where this consumer is. */
  releaseHeld(): void {
    if (this.#heldAt === undefined) return;
    this.#heldAt = undefined;
    Atomics.store(this.#ring.indices, READ, this.#read);
    wake(this.#ring.signal, PRODUCER_SEQ, PRODUCER_SLEEPING);
  }

  /**
   * Takes the next valid frame as an owned copy (skipping malformed ones), or `null` when the ring is empty.
   * Convenient off the hot path; {@link FrameConsumer.drain} reads in place.
   */
  pop(): FrameView | null {
    let copy: FrameView | null = null;
    this.drain((frame) => {
      copy = frame.copy();
    }, 1);
    return copy;
  }

  /**
   * Blocks until a frame is published or `timeoutMs` passes: spins, then parks with `Atomics.wait` on the
   * doorbell (the producer notifies only while this consumer sleeps). For worker threads.
   */
  waitForData(timeoutMs = Number.POSITIVE_INFINITY): boolean {
    this.#interrupted = false;
    return waitUntil(this.#ring.signal, SEQ, SLEEPING, this.#ready, timeoutMs, this.#ring.spin);
  }

  /** {@link FrameConsumer.waitForData} for event-loop threads, with `Atomics.waitAsync`: one Promise per park. */
  waitForDataAsync(timeoutMs = Number.POSITIVE_INFINITY, signal?: AbortSignal): Promise<boolean> {
    this.#interrupted = false;
    return waitUntilAsync(this.#ring.signal, SEQ, SLEEPING, this.#ready, timeoutMs, this.#ring.spin, signal);
  }

  /** Ring offset just past the frame handed out last: inside a `drain` callback, where this frame ends. */
  get cursor(): number {
    return this.#cursor;
  }

  /**
   * Takes over a ring whose consumer died mid-batch: moves the read index to `cursor` (where the dead consumer had
   * got to) when it lies within the published data, so frames already handled are not read again. Returns whether
   * it moved.
   */
  resumeAt(cursor: number): boolean {
    const size = this.#ring.storageSize;
    const write = Atomics.load(this.#ring.indices, WRITE);
    const ahead = (cursor - this.#read + size) % size;
    if (cursor % 8 !== 0 || ahead === 0 || ahead > (write - this.#read + size) % size) return false;
    this.#read = cursor;
    Atomics.store(this.#ring.indices, READ, cursor);
    return true;
  }

  /**
   * Ends a wait in progress on this thread (an async one; a blocked thread cannot call this) as if data had
   * arrived: the owner of the consumer uses it to look at a control change. The wait returns true; `drain` may
   * then find nothing.
   */
  interrupt(): void {
    this.#interrupted = true;
    Atomics.add(this.#ring.signal, SEQ, 1);
    Atomics.notify(this.#ring.signal, SEQ);
  }

  #validate(view: DataView, bytes: Uint8Array, at: number, length: number): MalformedFrameCode | undefined {
    if (view.getUint32(at + FrameHeader.MAGIC, true) !== FRAME_MAGIC) return ErrorCode.FrameBadMagic;
    if (view.getUint16(at + FrameHeader.VERSION, true) !== FRAME_VERSION) return ErrorCode.FrameBadVersion;
    if (view.getUint32(at + FrameHeader.PAYLOAD_SIZE, true) !== length - FrameHeader.SIZE) {
      return ErrorCode.FramePayloadSizeMismatch;
    }
    if (view.getUint16(at + FrameHeader.FLAGS, true) & FrameFlags.CHECKSUM) {
      let crc = crc32cUpdate(CRC32C_INIT, bytes, at + FrameHeader.MAGIC, at + FrameHeader.CHECKSUM);
      crc = crc32cUpdate(crc, bytes, at + FrameHeader.CHECKSUM + 4, at + length);
      if (crc32cFinish(crc) !== view.getUint32(at + FrameHeader.CHECKSUM, true)) return ErrorCode.FrameBadChecksum;
    } else if (this.#requireChecksum) {
      return ErrorCode.FrameBadChecksum;
    }
    return undefined;
  }

  #describe(code: MalformedFrameCode, view: DataView, at: number, length: number): string {
    switch (code) {
      case ErrorCode.FrameBadVersion:
        return `version ${view.getUint16(at + FrameHeader.VERSION, true)}, expected ${FRAME_VERSION}`;
      case ErrorCode.FramePayloadSizeMismatch:
        return `payload_size ${view.getUint32(at + FrameHeader.PAYLOAD_SIZE, true)} in a ${length}-byte frame`;
      default:
        return view.getUint16(at + FrameHeader.FLAGS, true) & FrameFlags.CHECKSUM
          ? 'CRC32-C mismatch'
          : 'no checksum on a ring that requires integrity';
    }
  }

  #reject(code: MalformedFrameCode, detail: string, read: number, skipped: number): void {
    this.#malformedFrames++;
    this.#skippedBytes += skipped;
    const onMalformed = this.#onMalformed;
    if (onMalformed === undefined) return;
    // Copy what is skipped (at most one maximum frame) so the dead letter outlives the ring slot.
    const keep = Math.min(skipped, alignedFrameSize(this.maxPayloadSize));
    const copy = new Uint8Array(keep);
    const first = Math.min(keep, this.#ring.storageSize - read);
    copy.set(this.#ring.bytes.subarray(RingOffset.DATA + read, RingOffset.DATA + read + first), 0);
    copy.set(this.#ring.bytes.subarray(RingOffset.DATA, RingOffset.DATA + keep - first), first);
    onMalformed(new MalformedFrameError(code, detail, read, skipped, copy));
  }
}
