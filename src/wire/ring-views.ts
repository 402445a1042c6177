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
 * The views of one ring end. The scratch frame is made the first time a frame wraps: most rings' ends never
 * need it (a ring end is made per kernel per side), and each would be a buffer of its own to allocate and collect.
 */
class OpenRing implements RingViews {
  readonly storageSize: number;
  readonly indices: Uint32Array;
  readonly view: DataView;
  readonly bytes: Uint8Array;
  readonly signal: Int32Array;
  readonly spin: number;
  readonly #maxPayloadSize: number;
  #scratchBytes: Uint8Array | undefined;
  #scratchView: DataView | undefined;

  constructor(memory: FrameRingMemory, storageSize: number, spin: number) {
    this.storageSize = storageSize;
    this.indices = new Uint32Array(memory.ring, 0, 2);
    this.view = new DataView(memory.ring);
    this.bytes = new Uint8Array(memory.ring);
    this.signal = new Int32Array(memory.signal);
    this.spin = spin;
    this.#maxPayloadSize = memory.maxPayloadSize;
  }

  get scratchBytes(): Uint8Array {
    if (this.#scratchBytes === undefined) this.#makeScratch();
    return this.#scratchBytes as Uint8Array;
  }

  get scratchView(): DataView {
    if (this.#scratchView === undefined) this.#makeScratch();
    return this.#scratchView as DataView;
  }

  #makeScratch(): void {
    const bytes = new Uint8Array(alignedFrameSize(this.#maxPayloadSize));
    this.#scratchBytes = bytes;
    this.#scratchView = new DataView(bytes.buffer);
  }
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
  return new OpenRing(memory, storageSize, spin);
}
