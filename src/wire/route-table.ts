import { MAX_KERNEL_LINKS } from './link-table.js';
import { defineStructLayout } from './struct-layout.js';

/**
 * A device executor's kernel-to-kernel outputs: the link rings its outputs go to instead of its own output ring
 * (a CUDA kernel's, from `runtime.connect(cudaKernel, consumer)`), each for one message type or for all. As on the
 * CPU, an output goes to every link that takes its type, to the host when none does; responses to calls always go
 * to the host. The host (the CUDA device thread) fills an entry, then publishes it by storing `count` with release.
 */
export const RouteTableOffset = {
  COUNT: 0,
  RESERVED: 4,
  RING: 8,
  STORAGE: 8 + 8 * MAX_KERNEL_LINKS,
  TYPE_ID: 8 + 12 * MAX_KERNEL_LINKS,
  DEAD_LETTERS: 8 + 16 * MAX_KERNEL_LINKS,
  DEAD_LETTER_STORAGE: 16 + 16 * MAX_KERNEL_LINKS,
  RESERVED2: 20 + 16 * MAX_KERNEL_LINKS,
  SIZE: 24 + 16 * MAX_KERNEL_LINKS,
} as const;

/** The route table's layout, from which the C header is generated. */
export const ROUTE_TABLE_LAYOUT = defineStructLayout(
  'rk_route_table',
  "Kernel-to-kernel output rings of a device executor. Host: fill entry count, then release-store count + 1. Executor: acquire-load count when it writes outputs; it is each ring's only producer (hold until room, copy, release-store the write index).",
  RouteTableOffset.SIZE,
  [
    ['count', 'u32', RouteTableOffset.COUNT, 'host', 'Entries in use (published last).', { atomic: true }],
    ['reserved', 'u32', RouteTableOffset.RESERVED, 'host', 'Zero.'],
    [
      'ring',
      'u64',
      RouteTableOffset.RING,
      'host',
      'Device address of each link ring (rk_ring_header, then its data area).',
      { count: MAX_KERNEL_LINKS },
    ],
    ['storage', 'u32', RouteTableOffset.STORAGE, 'host', 'Data bytes of each link ring.', { count: MAX_KERNEL_LINKS }],
    [
      'type_id',
      'u32',
      RouteTableOffset.TYPE_ID,
      'host',
      'The message type each link takes; 0 = every type.',
      { count: MAX_KERNEL_LINKS },
    ],
    [
      'dead_letters',
      'u64',
      RouteTableOffset.DEAD_LETTERS,
      'host',
      "Device address of the kernel's dead-letter ring (the messages its handler failed and the frames it would not handle, back whole), or 0. Set before launch; the host's device thread consumes it.",
    ],
    ['dead_letter_storage', 'u32', RouteTableOffset.DEAD_LETTER_STORAGE, 'host', 'Data bytes of the dead-letter ring.'],
    ['reserved2', 'u32', RouteTableOffset.RESERVED2, 'host', 'Zero.'],
  ],
);
