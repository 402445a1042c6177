import { InvalidArgumentError } from '../errors/argument-errors.js';
import { FrameConsumer } from '../wire/frame-consumer.js';
import type { FrameRingMemory } from '../wire/frame-ring.js';

/** Byte offset of a ring's data (after the write and read indices, ringbuf.js layout). */
const DATA = 8;

/**
 * What `handle.checkpoint()` takes: the kernel's state as bytes and a copy of the frames queued in its input ring,
 * enough to launch the kernel again elsewhere (`runtime.launch(…, { restore })`) with nothing it was sent lost.
 */
export interface KernelCheckpoint {
  /** The kernel definition's id. */
  readonly kernelId: string;
  /** The launch name it was taken from. */
  readonly name: string;
  readonly takenAt: Date;
  /** The state, as the kernel's `snapshot` hook (default: v8 serialization) made it. */
  readonly state: Uint8Array;
  /** The input frames still queued when it was taken, byte for byte (headers included), in order. */
  readonly queued: QueuedFrames;
}

/** A copy of a ring's queued frames. */
export interface QueuedFrames {
  readonly frames: number;
  /** The frames, contiguous (a wrapped ring is straightened), as the ring held them. */
  readonly bytes: Uint8Array;
  /** The largest message id among them (0 for none): a restored handle numbers its messages past it. */
  readonly maxMessageId: number;
  /** Whether they were written to an integrity (CRC32-C) ring: they restore only into a launch that matches. */
  readonly integrity: boolean;
}

/**
 * Copies the frames queued in a ring, without consuming them. Only consistent while the ring's consumer is
 * paused and its producer is the calling thread (a checkpoint: the kernel is quiesced, the host sends).
 */
export function copyQueuedFrames(memory: FrameRingMemory): QueuedFrames {
  const indices = new Uint32Array(memory.ring, 0, 2);
  // Acquire loads: every byte of the queued frames is visible.
  const write = Atomics.load(indices, 0);
  const read = Atomics.load(indices, 1);
  const size = memory.ring.byteLength - DATA;
  const length = (write - read + size) % size;
  const data = new Uint8Array(memory.ring, DATA, size);
  const bytes = new Uint8Array(length);
  if (read + length <= size) bytes.set(data.subarray(read, read + length));
  else {
    bytes.set(data.subarray(read));
    bytes.set(data.subarray(0, length - (size - read)), size - read);
  }
  // Count and number them by reading a private copy (a ring of exactly their size) with an ordinary consumer.
  let frames = 0;
  let maxMessageId = 0;
  if (length > 0) {
    const copy = { ...memory, ring: new SharedArrayBuffer(DATA + length + 8) };
    preloadQueuedFrames(copy, bytes);
    new FrameConsumer(copy).drain((frame) => {
      frames++;
      maxMessageId = Math.max(maxMessageId, frame.messageId);
    });
  }
  return { frames, bytes, maxMessageId, integrity: memory.integrity };
}

/**
 * Writes copied frames into an empty ring that nobody consumes or produces into yet (a launch restoring a
 * checkpoint, before its kernel is attached).
 * @throws {InvalidArgumentError} (a RangeError, RK_INVALID_ARGUMENT) naming options.restore when they do not fit.
 */
export function preloadQueuedFrames(memory: FrameRingMemory, bytes: Uint8Array): void {
  const indices = new Uint32Array(memory.ring, 0, 2);
  const size = memory.ring.byteLength - DATA;
  if (Atomics.load(indices, 0) !== Atomics.load(indices, 1)) throw new RangeError('the ring is not empty');
  // One slot stays free (ringbuf.js: full when write + 1 == read).
  if (bytes.length > size - 8) {
    throw new InvalidArgumentError(
      'options.restore',
      `options.restore: the checkpoint's ${bytes.length} bytes of queued frames do not fit an input ring of ${size} bytes (raise options.queueCapacity)`,
    );
  }
  new Uint8Array(memory.ring, DATA, size).set(bytes, 0);
  Atomics.store(indices, 1, 0);
  // Release: the frames are visible to whoever sees the write index.
  Atomics.store(indices, 0, bytes.length);
}
