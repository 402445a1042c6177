import type { FrameConsumer } from '../../wire/frame-consumer.js';
import type { FrameView } from '../../wire/frame-view.js';
import type { Slot } from './batch-slot.js';
import type { BatchSpanWriter } from './batch-span-writer.js';
import { MESSAGE_DESCRIPTOR_WORDS } from './wgsl-program.js';

const TWO_32 = 0x1_0000_0000;

/** How one batch is taken from an input ring. */
export interface BatchFill {
  /** The most messages a batch takes. */
  readonly max: number;
  /** Payload bytes past which the batch stops (room is left for one more of the largest). */
  readonly limit: number;
  /** Hold the ring's published read index at the batch's first frame (the kernel's own ring, not held yet). */
  readonly hold: boolean;
  /** Tracing on: the sampled frames' trace contexts are kept. */
  readonly tracer: BatchSpanWriter | undefined;
}

/**
 * Drains frames from `input` into the slot's host copies — descriptors, payload words, and what the outputs need
 * (message ids, correlation ids, where each frame ends, trace contexts) — until the batch is full. Returns how many
 * messages, their payload bytes (word-aligned, as uploaded) and their frames' bytes in the ring.
 */
export function fillBatch(
  slot: Slot,
  input: FrameConsumer,
  fill: BatchFill,
): { count: number; bytes: number; frameBytes: number } {
  const { max, limit, hold, tracer } = fill;
  const descriptors = slot.descriptors;
  const data = slot.data;
  let count = 0;
  let bytes = 0;
  let frameBytes = 0;
  const tracing = tracer !== undefined;
  slot.anySampled = false;
  if (tracing) slot.startNs = tracer.nowNs();
  input.drain((frame: FrameView) => {
    if (hold && count === 0) input.holdCurrentFrame();
    if (tracing) {
      // Unsampled frames cost this one byte read.
      const sampled = (frame.traceFlags & 1) !== 0;
      slot.sampled[count] = sampled ? 1 : 0;
      if (sampled) {
        frame.copyTraceContext(slot.traceContext, count * 24);
        slot.anySampled = true;
      }
    }
    const size = frame.payloadSize;
    const d = count * MESSAGE_DESCRIPTOR_WORDS;
    descriptors[d] = frame.typeId;
    descriptors[d + 1] = size;
    descriptors[d + 2] = frame.flags;
    descriptors[d + 3] = bytes >>> 2;
    const messageId = frame.messageId;
    descriptors[d + 4] = messageId >>> 0;
    descriptors[d + 5] = Math.floor(messageId / TWO_32);
    descriptors[d + 6] = frame.source;
    descriptors[d + 7] = frame.priority;
    slot.messageIds[count] = messageId;
    slot.frameEnds[count] = input.cursor;
    slot.correlationIds[count] = frame.correlationId;
    data.set(frame.payload, bytes);
    bytes += (size + 3) & ~3;
    frameBytes += frame.length;
    count++;
    // Stop while the next frame, however large, still fits the batch's payload area.
    return count < max && bytes <= limit;
  }, max);
  return { count, bytes, frameBytes };
}
