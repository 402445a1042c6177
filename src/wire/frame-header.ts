import { defineStructLayout } from './struct-layout.js';

/**
 * Byte offsets of the frame header: a u32 frame length followed by the envelope header. The payload starts at
 * {@link FrameHeader.SIZE}. Offsets are from the start of the frame; every frame starts 8-byte aligned in its
 * ring, so the 8-byte fields are naturally aligned for C and CUDA to read in place.
 */
export const FrameHeader = {
  /** u32: bytes in the frame, header plus payload, excluding the padding to the next 8-byte boundary. */
  LENGTH: 0,
  /** u32: {@link FRAME_MAGIC}. */
  MAGIC: 4,
  /** u16: {@link FRAME_VERSION}. */
  VERSION: 8,
  /** u16: {@link FrameFlags}. */
  FLAGS: 10,
  /** u32: the message schema's type id. */
  TYPE_ID: 12,
  /** u64: message id, unique per producer. */
  MESSAGE_ID: 16,
  /** u64: the id of the request this message answers (0 = none). */
  CORRELATION_ID: 24,
  /** u32: source kernel id (0 = host). */
  SOURCE: 32,
  /** u32: destination kernel id. */
  DESTINATION: 36,
  /** u32: payload bytes; always LENGTH − SIZE. */
  PAYLOAD_SIZE: 40,
  /** u32: CRC32-C over the frame except the length and this field, when {@link FrameFlags.CHECKSUM} is set. */
  CHECKSUM: 44,
  /** u64: HLC physical time, µs since the Unix epoch. */
  HLC_PHYSICAL_US: 48,
  /** u32: HLC logical counter. */
  HLC_LOGICAL: 56,
  /** u32: HLC node id of the clock that stamped the frame. */
  HLC_NODE: 60,
  /** 16 bytes: W3C trace id (all zero = no trace). */
  TRACE_ID: 64,
  /** 8 bytes: W3C parent span id. */
  SPAN_ID: 80,
  /** u8: message priority, 0 (lowest) … 255. */
  PRIORITY: 88,
  /** u8: W3C trace flags (bit 0 = sampled). */
  TRACE_FLAGS: 89,
  /** u16: reserved, written as 0. */
  RESERVED0: 90,
  /** u32: with {@link FrameFlags.DEAD_LETTER}, the RK_E_* error that failed the message; else 0. */
  ERROR_CODE: 92,
  /** Header size in bytes; the payload starts here. */
  SIZE: 96,
} as const;

/** The frame magic, `'RKF1'` as bytes in memory order. */
export const FRAME_MAGIC = 0x3146_4b52;
/** The envelope version this build writes and accepts. */
export const FRAME_VERSION = 1;
/** Frames start on, and are padded to, this many bytes. */
export const FRAME_ALIGN = 8;

/** Bits of the frame header's `flags` word. */
export const FrameFlags = {
  /** The frame carries a CRC32-C in `checksum`; the consumer verifies it. */
  CHECKSUM: 1 << 0,
  /** The frame answers a request (its correlation id names the request). */
  RESPONSE: 1 << 1,
  /** The frame reports an error instead of a result (with {@link FrameFlags.RESPONSE}). */
  ERROR: 1 << 2,
  /** The sender awaits a response (a `call`): on failure the kernel answers with an ERROR response. */
  REQUEST: 1 << 3,
  /**
   * A device executor's report of a message its handler failed: a copy of the input frame (ids, type, payload)
   * with the error in `error_code`, on the kernel's dead-letter ring, which the host drains into dead letters (a
   * GPU cannot post a report, and it releases the input's bytes with its batch).
   */
  DEAD_LETTER: 1 << 4,
} as const;

/** The frame header layout table, from which the C header is generated. */
export const FRAME_HEADER_LAYOUT = defineStructLayout(
  'rk_frame_header',
  'Frame = this header, then payload_size bytes of payload, then zero to seven bytes of padding to the next 8-byte boundary. Written once by the producer before the ring publishes it; read-only afterwards.',
  FrameHeader.SIZE,
  [
    ['length', 'u32', FrameHeader.LENGTH, 'frame', 'Header + payload bytes, excluding padding.'],
    ['magic', 'u32', FrameHeader.MAGIC, 'frame', 'RK_FRAME_MAGIC.'],
    ['version', 'u16', FrameHeader.VERSION, 'frame', 'RK_FRAME_VERSION.'],
    ['flags', 'u16', FrameHeader.FLAGS, 'frame', 'RK_FRAME_FLAG_* bits.'],
    ['type_id', 'u32', FrameHeader.TYPE_ID, 'frame', "The message schema's stable type id."],
    ['message_id', 'u64', FrameHeader.MESSAGE_ID, 'frame', 'Unique per producer.'],
    ['correlation_id', 'u64', FrameHeader.CORRELATION_ID, 'frame', 'Request this frame answers; 0 = none.'],
    ['source_kernel', 'u32', FrameHeader.SOURCE, 'frame', 'Source kernel id; 0 = host.'],
    ['destination_kernel', 'u32', FrameHeader.DESTINATION, 'frame', 'Destination kernel id.'],
    ['payload_size', 'u32', FrameHeader.PAYLOAD_SIZE, 'frame', 'Payload bytes = length - sizeof(header).'],
    ['checksum', 'u32', FrameHeader.CHECKSUM, 'frame', 'CRC32-C of bytes [4,44) and [48,length) when flagged.'],
    ['hlc_physical_us', 'u64', FrameHeader.HLC_PHYSICAL_US, 'frame', 'HLC physical time, µs since the epoch.'],
    ['hlc_logical', 'u32', FrameHeader.HLC_LOGICAL, 'frame', 'HLC logical counter.'],
    ['hlc_node', 'u32', FrameHeader.HLC_NODE, 'frame', 'HLC node id.'],
    ['trace_id', 'u8', FrameHeader.TRACE_ID, 'frame', 'W3C trace id; all zero = untraced.', { count: 16 }],
    ['span_id', 'u8', FrameHeader.SPAN_ID, 'frame', 'W3C parent span id.', { count: 8 }],
    ['priority', 'u8', FrameHeader.PRIORITY, 'frame', '0 (lowest) to 255.'],
    ['trace_flags', 'u8', FrameHeader.TRACE_FLAGS, 'frame', 'W3C trace flags; bit 0 = sampled.'],
    ['reserved0', 'u16', FrameHeader.RESERVED0, 'frame', 'Zero.'],
    [
      'error_code',
      'u32',
      FrameHeader.ERROR_CODE,
      'frame',
      'With the DEAD_LETTER flag: the RK_E_* error that failed the message. Else 0.',
    ],
  ],
);

/**
 * Bytes a frame with `payloadSize` bytes of payload occupies in a ring, padding included.
 *
 * @example
 * alignedFrameSize(0); // 96
 * alignedFrameSize(1); // 104
 */
export function alignedFrameSize(payloadSize: number): number {
  return (FrameHeader.SIZE + payloadSize + (FRAME_ALIGN - 1)) & ~(FRAME_ALIGN - 1);
}
