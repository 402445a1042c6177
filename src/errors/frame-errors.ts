import { ErrorCode, type ErrorCodeString } from './codes.js';
import { RingKernelError } from './ringkernel-error.js';

/**
 * A frame whose payload exceeds the ring's maximum message size. Thrown by the producer before a single byte
 * is written, so the ring is untouched.
 */
export class FrameTooLargeError extends RingKernelError {
  /** The payload size that was asked for, in bytes. */
  readonly payloadSize: number;
  /** The ring's maximum payload size, in bytes. */
  readonly maxPayloadSize: number;

  constructor(payloadSize: number, maxPayloadSize: number) {
    super(
      ErrorCode.FrameTooLarge,
      `frame payload of ${payloadSize} bytes exceeds the ring's maximum of ${maxPayloadSize} bytes`,
    );
    this.payloadSize = payloadSize;
    this.maxPayloadSize = maxPayloadSize;
  }
}

/** The codes a {@link MalformedFrameError} can carry. */
export type MalformedFrameCode =
  | typeof ErrorCode.FrameBadMagic
  | typeof ErrorCode.FrameBadVersion
  | typeof ErrorCode.FrameBadLength
  | typeof ErrorCode.FramePayloadSizeMismatch
  | typeof ErrorCode.FrameBadChecksum;

/**
 * A frame the consumer found corrupt. The consumer reports it (to its `onMalformed` hook and its counters),
 * skips it and carries on: a bad frame never stops a ring or crashes a worker.
 */
export class MalformedFrameError extends RingKernelError {
  /** Byte position of the frame in the ring's data area (the read index when it was found). */
  readonly ringOffset: number;
  /** How many bytes the consumer skipped to get past it. */
  readonly skippedBytes: number;
  /** A copy of the bytes that were skipped (at most the ring's maximum frame), for dead-letter inspection. */
  readonly bytes: Uint8Array;

  constructor(code: MalformedFrameCode, detail: string, ringOffset: number, skippedBytes: number, bytes: Uint8Array) {
    super(code as ErrorCodeString, `malformed frame at ring offset ${ringOffset}: ${detail}`);
    this.ringOffset = ringOffset;
    this.skippedBytes = skippedBytes;
    this.bytes = bytes;
  }
}
