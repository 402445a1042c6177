import { describeValue, InvalidArgumentError } from '../errors/argument-errors.js';
import { DEFAULT_SPIN } from './eventcount.js';
import { alignedFrameSize } from './frame-header.js';
import { checkRingMemory, type FrameRingMemory } from './frame-ring.js';

/** The typed views one end of a frame ring works through; built once per producer or consumer. */
export interface RingViews {
  /** Data bytes in the ring (capacity + 1), a multiple of 8. */
  readonly storageSize: number;
  /** [write index, read index] as u32. */
  readonly indices: Uint32Array;
  /** The whole ring SAB: indices at 0 and 4, data from 8. */
  readonly view: DataView;
  readonly bytes: Uint8Array;
  /** The doorbell as i32 words. */
  readonly signal: Int32Array;
  /** One maximum-size frame of private memory, for frames that wrap around the end of the storage. */
  readonly scratchBytes: Uint8Array;
  readonly scratchView: DataView;
  /** Iterations to spin before parking. */
  readonly spin: number;
}

/**
 * Checks ring memory received from any thread and builds the views over it.
 * @throws {TypeError | RangeError} on memory that is not a frame ring, or a bad spin count.
 *
 */
export function openRing(memory: FrameRingMemory, spin: number = DEFAULT_SPIN): RingViews {
  const storageSize = checkRingMemory(memory);
  if (!Number.isInteger(spin) || spin < 0)
    throw new InvalidArgumentError(
      'options.spin',
      `options.spin must be a non-negative integer, got ${describeValue(spin)}`,
    );
  const scratchBytes = new Uint8Array(alignedFrameSize(memory.maxPayloadSize));
  return {
    storageSize,
    indices: new Uint32Array(memory.ring, 0, 2),
    view: new DataView(memory.ring),
    bytes: new Uint8Array(memory.ring),
    signal: new Int32Array(memory.signal),
    scratchBytes,
    scratchView: new DataView(scratchBytes.buffer),
    spin,
  };
}
