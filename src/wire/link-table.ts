import { defineStructLayout } from './struct-layout.js';

/**
 * A device executor's kernel-to-kernel inputs: the link rings it consumes besides its own input ring (a CUDA
 * kernel's, from `runtime.connect(producer, cudaKernel)`). The host (the CUDA device thread) fills an entry, then
 * publishes it by storing `count` with release; the device loop acquire-loads `count` every round and drains the
 * rings after its own. One table per kernel instance, in pinned host memory mapped into the device.
 */
export const MAX_KERNEL_LINKS = 8;

/** Byte offsets of {@link LINK_TABLE_LAYOUT}. */
export const LinkTableOffset = {
  COUNT: 0,
  RESERVED: 4,
  RING: 8,
  SIGNAL: 8 + 8 * MAX_KERNEL_LINKS,
  STORAGE: 8 + 16 * MAX_KERNEL_LINKS,
  PLAN_END: 8 + 20 * MAX_KERNEL_LINKS,
  SIZE: 8 + 24 * MAX_KERNEL_LINKS,
} as const;

/** The link table's layout, from which the C header is generated. */
export const LINK_TABLE_LAYOUT = defineStructLayout(
  'rk_link_table',
  'Kernel-to-kernel input rings of a device executor. Host: fill entry count, then release-store count + 1. Executor: acquire-load count each round; drain each ring after its own input; release-store the ring read index (and the handled cursor in its signal) once the batch is published.',
  LinkTableOffset.SIZE,
  [
    ['count', 'u32', LinkTableOffset.COUNT, 'host', 'Entries in use (published last).', { atomic: true }],
    ['reserved', 'u32', LinkTableOffset.RESERVED, 'host', 'Zero.'],
    [
      'ring',
      'u64',
      LinkTableOffset.RING,
      'host',
      'Device address of each link ring (rk_ring_header, then its data area).',
      { count: MAX_KERNEL_LINKS },
    ],
    [
      'signal',
      'u64',
      LinkTableOffset.SIGNAL,
      'host',
      "Device address of each link ring's rk_ring_signal (its handled cursor).",
      { count: MAX_KERNEL_LINKS },
    ],
    ['storage', 'u32', LinkTableOffset.STORAGE, 'host', 'Data bytes of each link ring.', { count: MAX_KERNEL_LINKS }],
    [
      'plan_end',
      'u32',
      LinkTableOffset.PLAN_END,
      'executor',
      "Where the round's batch ends in each link ring (the device loop's own bookkeeping).",
      { count: MAX_KERNEL_LINKS },
    ],
  ],
);
