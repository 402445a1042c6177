import { defineStructLayout } from './struct-layout.js';

/**
 * The shared blocks of the native DMA mirror (native/src/mirror.c): one state block per mirror thread and one
 * channel block per mirrored ring. The mirror thread writes them (statistics, its sleeping flag, wake requests);
 * JavaScript reads them with `Atomics.load`. Offsets in bytes.
 */
export const MirrorStateOffset = {
  /** i32, mirror: 1 while the mirror thread sleeps (or is about to); a host producer then kicks it. */
  SLEEPING: 0,
  /** u64, mirror: passes over the channel table. */
  PASSES: 8,
  /** u64, mirror: times the thread went to sleep (idle). */
  SLEEPS: 16,
  /** u64, mirror: wake-up callbacks into JavaScript requested. */
  WAKE_CALLS: 24,
  /** u32, mirror: channels attached. */
  CHANNELS: 32,
  SIZE: 64,
} as const;

/**
 * The mirror state block layout, from which the C header is generated.
 * @example
 * const passes = Atomics.load(new BigUint64Array(stateBlock), layoutField(MIRROR_STATE_LAYOUT, 'passes').offset / 8);
 */
export const MIRROR_STATE_LAYOUT = defineStructLayout(
  'rk_mirror_state',
  'One per mirror thread, in a SharedArrayBuffer the host reads. Written only by the mirror thread (seq_cst for the sleeping flag: it pairs with the host producer publishing then loading it, Dekker style; relaxed for the counters).',
  MirrorStateOffset.SIZE,
  [
    [
      'sleeping',
      'i32',
      MirrorStateOffset.SLEEPING,
      'mirror',
      '1 while the thread sleeps; host producers kick it.',
      { atomic: true },
    ],
    ['reserved0', 'u32', 4, 'mirror', 'Zero.'],
    ['passes', 'u64', MirrorStateOffset.PASSES, 'mirror', 'Passes over the channel table.', { atomic: true }],
    ['sleeps', 'u64', MirrorStateOffset.SLEEPS, 'mirror', 'Times the thread slept, idle.', { atomic: true }],
    ['wake_calls', 'u64', MirrorStateOffset.WAKE_CALLS, 'mirror', 'Wake-up callbacks into JS.', { atomic: true }],
    ['channels', 'u32', MirrorStateOffset.CHANNELS, 'mirror', 'Channels attached.', { atomic: true }],
    ['reserved1', 'u8', 36, 'mirror', 'Zero; room to grow.', { count: 28 }],
  ],
);

/**
 * Directions of a mirrored ring (rk_mirror_channel.direction; RK_MIRROR_HOST_TO_DEVICE / _DEVICE_TO_HOST in C).
 * @example
 * const outputs = new Int32Array(channelBlock)[MirrorChannelOffset.DIRECTION >> 2] === MirrorDirection.DEVICE_TO_HOST;
 */
export const MirrorDirection = {
  /** An input ring: the host produces, the device replica's consumer (the kernel) reads. */
  HOST_TO_DEVICE: 0,
  /** An output ring: the kernel produces into the device replica, the host consumes. */
  DEVICE_TO_HOST: 1,
} as const;

/** Offsets of the per-channel block (one per mirrored ring). */
export const MirrorChannelOffset = {
  /** u64, mirror: bytes copied (frame padding included). */
  BYTES: 0,
  /** u64, mirror: frames copied. */
  FRAMES: 8,
  /** u64, mirror: copy batches (one per pass that found new bytes). */
  BATCHES: 16,
  /** u64, mirror: nanoseconds spent copying. */
  COPY_NS: 24,
  /** u32, mirror: bytes published at the source and not yet at the destination when the last batch started. */
  LAG_BYTES: 32,
  /** u32, mirror: the largest such lag seen. */
  MAX_LAG_BYTES: 36,
  /** i32, mirror: bumped when a JS waiter of this channel (a parked consumer or producer) must be notified. */
  WAKE_SEQ: 40,
  /** u32, host: {@link MirrorDirection}; set before the block is shared. */
  DIRECTION: 44,
  /** u64, mirror: the copy batches of {@link MirrorChannelOffset.BATCHES} made by a host thread serving the ring. */
  SERVED_BATCHES: 48,
  /**
   * i32, host: 1 while a host thread carries this ring itself (a stream written in one event-loop turn, served
   * by that thread as it goes and at the turn's end); the mirror thread then leaves the ring alone.
   */
  HOST_CARRIES: 56,
  /** u32, mirror: passes of the mirror thread that left the ring to its host carrier. */
  CARRIED_SKIPS: 60,
  SIZE: 64,
} as const;

/**
 * The mirror channel block layout, from which the C header is generated.
 * @example
 * const frames = Atomics.load(new BigUint64Array(channelBlock), layoutField(MIRROR_CHANNEL_LAYOUT, 'frames').offset / 8);
 */
export const MIRROR_CHANNEL_LAYOUT = defineStructLayout(
  'rk_mirror_channel',
  'One per mirrored ring (a kernel on the dma strategy has two: input, host to device; output, device to host). Statistics, the wake request word and the host-carries flag; relaxed counters, seq_cst wake_seq and host_carries.',
  MirrorChannelOffset.SIZE,
  [
    ['bytes', 'u64', MirrorChannelOffset.BYTES, 'mirror', 'Bytes copied, padding included.', { atomic: true }],
    ['frames', 'u64', MirrorChannelOffset.FRAMES, 'mirror', 'Frames copied.', { atomic: true }],
    ['batches', 'u64', MirrorChannelOffset.BATCHES, 'mirror', 'Copy batches.', { atomic: true }],
    ['copy_ns', 'u64', MirrorChannelOffset.COPY_NS, 'mirror', 'Nanoseconds spent copying.', { atomic: true }],
    ['lag_bytes', 'u32', MirrorChannelOffset.LAG_BYTES, 'mirror', 'Bytes behind at the last batch.', { atomic: true }],
    ['max_lag_bytes', 'u32', MirrorChannelOffset.MAX_LAG_BYTES, 'mirror', 'Largest lag seen.', { atomic: true }],
    [
      'wake_seq',
      'i32',
      MirrorChannelOffset.WAKE_SEQ,
      'mirror',
      'Bumped to ask JS to notify waiters.',
      { atomic: true },
    ],
    ['direction', 'u32', MirrorChannelOffset.DIRECTION, 'host', '0 host to device, 1 device to host.'],
    [
      'served_batches',
      'u64',
      MirrorChannelOffset.SERVED_BATCHES,
      'mirror',
      'Of the batches, those a host thread made (rk_mirror_serve).',
      { atomic: true },
    ],
    [
      'host_carries',
      'i32',
      MirrorChannelOffset.HOST_CARRIES,
      'host',
      'Nonzero while a host thread carries the ring itself: the mirror skips it. Host: store 1, then serve the ring at least once more before storing 0; after storing 0 (seq_cst), load the mirror state sleeping flag and kick a sleeping mirror that still has work there. Mirror: load it seq_cst in every pass, the re-scan before sleeping included (Dekker pair with that store and load). A hint only: the channel lock still keeps one stepper at a time.',
      { atomic: true },
    ],
    [
      'carried_skips',
      'u32',
      MirrorChannelOffset.CARRIED_SKIPS,
      'mirror',
      'Passes that left the ring to its host carrier.',
      { atomic: true },
    ],
  ],
);
