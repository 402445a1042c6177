import { defineStructLayout } from './struct-layout.js';

/**
 * The doorbell beside each ring: an eventcount per direction, so a parked consumer (or a producer waiting for
 * room) is woken only when it actually sleeps. ringbuf.js's own layout has no room for it, so it lives in a
 * second, 128-byte SharedArrayBuffer; each direction has its own 64-byte cache line so the two ends do not
 * false-share. Offsets in bytes; all words are i32 (the type `Atomics.wait` needs).
 */
export const RingSignalOffset = {
  /** i32, producer: bumped when the producer publishes while the consumer sleeps. The consumer waits on it. */
  DATA_SEQ: 0,
  /**
   * i32, consumer: 1 while the consumer is parked (or about to park), else 0. The first producer-side waker
   * lowers it as it notifies (the one wake-up the park is owed; see eventcount.ts).
   */
  CONSUMER_SLEEPING: 4,
  /**
   * u32, consumer: ring offset just past the last frame it finished handling (stored per frame). A consumer that
   * takes over a ring whose consumer died resumes there instead of at the last published read index.
   */
  HANDLED_CURSOR: 8,
  /** i32, consumer: bumped when the consumer frees space while the producer sleeps. The producer waits on it. */
  SPACE_SEQ: 64,
  /** i32, producer: 1 while the producer waits for room, else 0. Lowered by the first waker, as above. */
  PRODUCER_SLEEPING: 68,
  /** Size of the signal block in bytes. */
  SIZE: 128,
} as const;

/** The signal block layout table, from which the C header is generated. */
export const RING_SIGNAL_LAYOUT = defineStructLayout(
  'rk_ring_signal',
  "Eventcount doorbell of one ring. A sleeper sets its *_sleeping flag, re-checks the ring, then waits on the other side's *_seq; the other side, after publishing, bumps the seq and notifies only when the flag is set (a JS waker lowers the flag with an atomic exchange as it does: one notify per park). Native threads cannot wake V8 waiters (not a futex): they only bump the seq, and JS waiters use a bounded wait.",
  RingSignalOffset.SIZE,
  [
    ['data_seq', 'i32', RingSignalOffset.DATA_SEQ, 'producer', 'Eventcount the consumer parks on.', { atomic: true }],
    [
      'consumer_sleeping',
      'i32',
      RingSignalOffset.CONSUMER_SLEEPING,
      'consumer',
      '1 while parked; a JS waker may lower it.',
      { atomic: true },
    ],
    [
      'handled_cursor',
      'u32',
      RingSignalOffset.HANDLED_CURSOR,
      'consumer',
      'Ring offset just past the last frame whose handling finished.',
      { atomic: true },
    ],
    ['pad0', 'u8', 12, 'host', 'Cache-line padding.', { count: 52 }],
    ['space_seq', 'i32', RingSignalOffset.SPACE_SEQ, 'consumer', 'Eventcount the producer parks on.', { atomic: true }],
    [
      'producer_sleeping',
      'i32',
      RingSignalOffset.PRODUCER_SLEEPING,
      'producer',
      '1 while waiting; a JS waker may lower it.',
      { atomic: true },
    ],
    ['pad1', 'u8', 72, 'host', 'Cache-line padding.', { count: 56 }],
  ],
);

/** ringbuf.js ring layout: byte offsets of its two indices and its data (fixed by ringbuf.js 0.4). */
export const RingOffset = {
  /** u32, producer: next slot to write, modulo the storage size. Published with a release store. */
  WRITE_INDEX: 0,
  /** u32, consumer: next slot to read, modulo the storage size. Published with a release store. */
  READ_INDEX: 4,
  /** First data byte. The data area holds capacity + 1 slots. */
  DATA: 8,
} as const;

/** The ring header layout (ringbuf.js's), from which the C header is generated. */
export const RING_HEADER_LAYOUT = defineStructLayout(
  'rk_ring_header',
  'ringbuf.js 0.4 SPSC ring: this header, then storage_size data bytes (capacity + 1 slots). Indices wrap modulo storage_size; the ring is empty when they are equal and full when write + 1 == read (mod storage_size). Producer: copy, then release-store write_index. Consumer: acquire-load write_index, read, then release-store read_index.',
  8,
  [
    ['write_index', 'u32', RingOffset.WRITE_INDEX, 'producer', 'Next slot to write.', { atomic: true }],
    ['read_index', 'u32', RingOffset.READ_INDEX, 'consumer', 'Next slot to read.', { atomic: true }],
  ],
);
