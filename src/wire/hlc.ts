import { describeValue, InvalidArgumentError } from '../errors/argument-errors.js';
import { ClockSkewError, ValueOutOfRangeError } from '../errors/value-errors.js';

/** A hybrid-logical-clock timestamp. Ordered by physical time, then logical counter, then node id. */
export interface HlcTimestamp {
  /** Physical component, µs since the Unix epoch. */
  readonly physicalUs: number;
  /** Logical counter: orders events within the same physical microsecond. */
  readonly logical: number;
  /** The node (kernel or host) whose clock made the timestamp. */
  readonly node: number;
}

/** Options of a {@link HybridLogicalClock}. */
export interface HybridLogicalClockOptions {
  /** The largest amount, in µs, a remote timestamp may be ahead of local physical time. Default 60 s. */
  readonly maxSkewUs?: number;
  /** The physical time source, µs since the epoch. Default: `performance.timeOrigin + performance.now()`. */
  readonly now?: () => number;
}

const MAX_LOGICAL = 0xffff_ffff;

/** The default physical clock: µs since the epoch, with sub-millisecond resolution. */
export function wallClockUs(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

/**
 * Compares two timestamps: negative when `a` happened before `b`, positive after, 0 when equal.
 *
 * @example
 * [b, a].sort(compareHlc);
 */
export function compareHlc(a: HlcTimestamp, b: HlcTimestamp): number {
  return a.physicalUs - b.physicalUs || a.logical - b.logical || a.node - b.node;
}

/**
 * A hybrid logical clock (Kulkarni et al.): timestamps that follow physical time closely yet never go backwards
 * and respect causality across kernels — a message's receive is always stamped after its send.
 *
 * The hot path reads {@link HybridLogicalClock.physicalUs} and {@link HybridLogicalClock.logical} after
 * {@link HybridLogicalClock.tick} instead of allocating a timestamp object per message.
 *
 * @example
 * const clock = new HybridLogicalClock(1);
 * const sent = clock.now();                 // local event or send
 * const other = new HybridLogicalClock(2);
 * const received = other.update(sent);      // receive: after `sent`, whatever the two wall clocks say
 */
export class HybridLogicalClock {
  /** This clock's node id, stamped into every timestamp. */
  readonly node: number;
  /** The largest forward skew accepted from a remote timestamp, µs. */
  readonly maxSkewUs: number;
  /** Physical component of the last timestamp issued. */
  physicalUs = 0;
  /** Logical component of the last timestamp issued. */
  logical = 0;
  readonly #now: () => number;

  constructor(node: number, options: HybridLogicalClockOptions = {}) {
    if (!Number.isInteger(node) || node < 0 || node > 0xffff_ffff) {
      throw new InvalidArgumentError('node', `HybridLogicalClock node must be an integer in [0, 2^32), got ${node}`);
    }
    const maxSkewUs = options.maxSkewUs ?? 60_000_000;
    if (!(maxSkewUs >= 0)) {
      throw new InvalidArgumentError(
        'options.maxSkewUs',
        `HybridLogicalClock options.maxSkewUs must be a non-negative number, got ${describeValue(maxSkewUs)}`,
      );
    }
    this.node = node;
    this.maxSkewUs = maxSkewUs;
    this.#now = options.now ?? wallClockUs;
  }

  /** Advances the clock for a local event or a send; read the result from `physicalUs` / `logical`. */
  tick(): void {
    const wall = this.#now();
    if (wall > this.physicalUs) {
      this.physicalUs = wall;
      this.logical = 0;
    } else {
      this.#bumpLogical();
    }
  }

  /** Advances the clock for a local event or a send and returns the new timestamp. */
  now(): HlcTimestamp {
    this.tick();
    return { physicalUs: this.physicalUs, logical: this.logical, node: this.node };
  }

  /**
   * Merges a received timestamp: the result is after both the remote timestamp and every timestamp this clock
   * issued before.
   *
   * @throws {ClockSkewError} when the remote physical time is more than `maxSkewUs` ahead of local wall time;
   * the clock is left unchanged.
   */
  update(remote: HlcTimestamp): HlcTimestamp {
    this.receive(remote.physicalUs, remote.logical);
    return { physicalUs: this.physicalUs, logical: this.logical, node: this.node };
  }

  /**
   * {@link HybridLogicalClock.update} without allocating: reads the result from `physicalUs` / `logical`.
   * `wallUs` lets a caller that handles a batch read the wall clock once for the whole batch (the result is still
   * after both the remote and every earlier local timestamp; only its physical part may lag by the batch).
   */
  receive(remotePhysicalUs: number, remoteLogical: number, wallUs: number = this.#now()): void {
    const wall = wallUs;
    const skew = remotePhysicalUs - wall;
    if (skew > this.maxSkewUs) throw new ClockSkewError(skew, this.maxSkewUs);
    const local = this.physicalUs;
    const physical = Math.max(wall, local, remotePhysicalUs);
    let logical: number;
    if (physical === local && physical === remotePhysicalUs) logical = Math.max(this.logical, remoteLogical) + 1;
    else if (physical === local) logical = this.logical + 1;
    else if (physical === remotePhysicalUs) logical = remoteLogical + 1;
    else logical = 0;
    if (logical > MAX_LOGICAL)
      throw new ValueOutOfRangeError('HlcTimestamp.logical', `the logical counter would pass ${MAX_LOGICAL}`);
    this.physicalUs = physical;
    this.logical = logical;
  }

  #bumpLogical(): void {
    if (this.logical === MAX_LOGICAL) {
      // 2^32 events in one microsecond cannot happen on a real clock; move physical time on instead of wrapping.
      this.physicalUs += 1;
      this.logical = 0;
    } else {
      this.logical += 1;
    }
  }
}
