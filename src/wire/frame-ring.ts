import { RingBuffer } from 'ringbuf.js';
import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../errors/argument-errors.js';
import { alignedFrameSize, FRAME_ALIGN, FrameHeader } from './frame-header.js';
import { RingOffset, RingSignalOffset } from './ring-signal.js';

/**
 * The shared memory of one frame ring: a ringbuf.js byte ring plus its doorbell. Plain data: post it to a
 * worker (the SharedArrayBuffers are shared, not copied) and build a {@link FrameProducer} on one side and a
 * {@link FrameConsumer} on the other.
 */
export interface FrameRingMemory {
  /** ringbuf.js storage: write index, read index, then `storageSize` data bytes. */
  readonly ring: SharedArrayBuffer;
  /** The doorbell ({@link RingSignalOffset}). */
  readonly signal: SharedArrayBuffer;
  /** The largest payload a frame on this ring may carry, bytes. */
  readonly maxPayloadSize: number;
  /**
   * Every frame carries a CRC32-C and the consumer rejects frames without one. A ring-wide property rather
   * than a per-frame flag alone, so a bit flip that clears a frame's CHECKSUM flag cannot switch the check off.
   */
  readonly integrity: boolean;
}

/** Options of {@link createFrameRing}. */
export interface FrameRingOptions {
  /** Data bytes the ring can hold (rounded up to a multiple of 8). */
  readonly capacityBytes: number;
  /** The largest payload a frame may carry; default: as large as the ring allows. */
  readonly maxPayloadSize?: number;
  /** Checksum every frame with CRC32-C (the kernel asked for integrity). Default false. */
  readonly integrity?: boolean;
}

/** Largest data area: ringbuf.js indices are u32 and frame sizes are computed with 32-bit integer ops. */
export const MAX_RING_CAPACITY = 1 << 30;

/**
 * Allocates a frame ring.
 *
 * The data area is a multiple of 8 bytes and frames are padded to 8, so every frame (and its payload) starts
 * 8-byte aligned and a frame's 4-byte length prefix never straddles the wrap point.
 *
 * @throws {ArgumentTypeError | InvalidArgumentError} on options that are not numbers or are out of range.
 * @example
 * const memory = createFrameRing({ capacityBytes: 64 * 1024, maxPayloadSize: 4096 });
 * worker.postMessage(memory);
 * const producer = new FrameProducer(memory);
 */
export function createFrameRing(options: FrameRingOptions): FrameRingMemory {
  if (typeof options !== 'object' || options === null)
    throw new ArgumentTypeError('options', `createFrameRing: options must be an object, got ${describeValue(options)}`);
  const { capacityBytes } = options;
  if (typeof capacityBytes !== 'number') {
    throw new ArgumentTypeError(
      'options.capacityBytes',
      `options.capacityBytes must be a number, got ${typeof capacityBytes}`,
    );
  }
  if (
    !Number.isInteger(capacityBytes) ||
    capacityBytes < FrameHeader.SIZE + FRAME_ALIGN ||
    capacityBytes > MAX_RING_CAPACITY
  ) {
    throw new InvalidArgumentError(
      'options.capacityBytes',
      `options.capacityBytes must be an integer in [${FrameHeader.SIZE + FRAME_ALIGN}, ${MAX_RING_CAPACITY}], got ${capacityBytes}`,
    );
  }
  // Storage holds capacity + 1 slots; make the storage a multiple of 8 so frames stay aligned across the wrap.
  const storageSize = Math.ceil((capacityBytes + 1) / FRAME_ALIGN) * FRAME_ALIGN;
  // A full ring keeps one slot free, and frames are multiples of 8: the largest frame is storageSize − 8.
  const largestPayload = storageSize - FRAME_ALIGN - FrameHeader.SIZE;
  const maxPayloadSize = options.maxPayloadSize ?? largestPayload;
  if (typeof maxPayloadSize !== 'number') {
    throw new ArgumentTypeError(
      'options.maxPayloadSize',
      `options.maxPayloadSize must be a number, got ${typeof maxPayloadSize}`,
    );
  }
  if (!Number.isInteger(maxPayloadSize) || maxPayloadSize < 0 || maxPayloadSize > largestPayload) {
    throw new InvalidArgumentError(
      'options.maxPayloadSize',
      `options.maxPayloadSize must be an integer in [0, ${largestPayload}] for a ${capacityBytes}-byte ring, got ${maxPayloadSize}`,
    );
  }
  const integrity = options.integrity ?? false;
  if (typeof integrity !== 'boolean')
    throw new ArgumentTypeError('options.integrity', `options.integrity must be a boolean, got ${typeof integrity}`);
  const ring = RingBuffer.getStorageForCapacity(storageSize - 1, Uint8Array);
  const signal = new SharedArrayBuffer(RingSignalOffset.SIZE);
  return Object.freeze({ ring, signal, maxPayloadSize, integrity });
}

/** Checks memory received from another thread and returns its storage size. */
export function checkRingMemory(memory: FrameRingMemory): number {
  if (typeof memory !== 'object' || memory === null)
    throw new ArgumentTypeError('memory', `memory must be a FrameRingMemory, got ${describeValue(memory)}`);
  const { ring, signal, maxPayloadSize, integrity } = memory;
  if (typeof integrity !== 'boolean')
    throw new ArgumentTypeError('memory.integrity', 'memory.integrity must be a boolean');
  if (!(ring instanceof SharedArrayBuffer) || !(signal instanceof SharedArrayBuffer)) {
    throw new ArgumentTypeError('memory.ring', 'memory.ring and memory.signal must be SharedArrayBuffers');
  }
  const storageSize = ring.byteLength - RingOffset.DATA;
  if (storageSize <= 0 || storageSize % FRAME_ALIGN !== 0) {
    throw new InvalidArgumentError(
      'memory.ring',
      `memory.ring: ring storage of ${storageSize} bytes is not a positive multiple of ${FRAME_ALIGN}`,
    );
  }
  if (signal.byteLength < RingSignalOffset.SIZE)
    throw new InvalidArgumentError(
      'memory.signal',
      `memory.signal is too small: ${signal.byteLength} bytes, a ring signal needs ${RingSignalOffset.SIZE}`,
    );
  if (
    !Number.isInteger(maxPayloadSize) ||
    maxPayloadSize < 0 ||
    alignedFrameSize(maxPayloadSize) > storageSize - FRAME_ALIGN
  ) {
    throw new InvalidArgumentError(
      'memory.maxPayloadSize',
      `memory.maxPayloadSize ${maxPayloadSize} does not fit a ring of ${storageSize} bytes`,
    );
  }
  return storageSize;
}

/**
 * Counts the complete frames in `[from, to)` of a ring's storage by walking their length prefixes.
 * O(frames): for metrics and diagnostics, not the hot path.
 */
export function countFrames(view: DataView, storageSize: number, from: number, to: number): number {
  let frames = 0;
  let at = from;
  let budget = (to - from + storageSize) % storageSize;
  while (budget > 0) {
    const length = view.getUint32(RingOffset.DATA + at, true);
    const size = (length + FRAME_ALIGN - 1) & ~(FRAME_ALIGN - 1);
    if (length < FrameHeader.SIZE || size > budget) break;
    frames++;
    budget -= size;
    at = (at + size) % storageSize;
  }
  return frames;
}
