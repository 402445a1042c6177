import { ErrorNumber } from '../../errors/codes.js';
import type { MalformedFrameError } from '../../errors/frame-errors.js';
import type { FrameView } from '../../wire/frame-view.js';
import type { BatchDeadLetter, BatchDeadLetterReason } from './batch-engine-contract.js';
import type { Slot } from './batch-slot.js';
import { MESSAGE_DESCRIPTOR_WORDS } from './wgsl-program.js';

/** The dead letter of message `i` of a batch, read from the host's copy of what the batch uploaded. */
export function slotLetter(
  slot: Slot,
  i: number,
  reason: BatchDeadLetterReason,
  errorNumber: number,
  message: string,
): BatchDeadLetter {
  const d = i * MESSAGE_DESCRIPTOR_WORDS;
  const at = (slot.descriptors[d + 3] as number) * 4;
  const size = slot.descriptors[d + 1] as number;
  return {
    reason,
    fromHost: slot.source === 0,
    errorNumber,
    message,
    messageId: slot.messageIds[i] as number,
    correlationId: slot.correlationIds[i] as number,
    typeId: slot.descriptors[d] as number,
    flags: slot.descriptors[d + 2] as number,
    payload: slot.data.slice(at, at + size),
  };
}

/** The dead letter of a frame still queued when kernel `kernelId` terminated with discard. */
export function discardedLetter(frame: FrameView, fromHost: boolean, kernelId: string): BatchDeadLetter {
  return {
    reason: 'discarded-on-terminate',
    fromHost,
    errorNumber: ErrorNumber.KernelFailed,
    message: `kernel '${kernelId}' terminated with discard before handling the message`,
    messageId: frame.messageId,
    correlationId: frame.correlationId,
    typeId: frame.typeId,
    flags: frame.flags,
    payload: frame.payload.slice(),
  };
}

/** The dead letter of a malformed frame in the kernel's input ring (nothing of it can be trusted). */
export function malformedLetter(error: MalformedFrameError): BatchDeadLetter {
  return {
    reason: 'malformed-frame',
    fromHost: true,
    errorNumber: error.errno,
    message: error.message,
    messageId: 0,
    correlationId: 0,
    typeId: 0,
    flags: 0,
    payload: new Uint8Array(0),
  };
}

/** The WebGPU error scope an uncaptured error belongs to. */
export function uncapturedKind(error: GPUError): 'validation' | 'out-of-memory' | 'internal' {
  const name = error.constructor.name;
  if (name === 'GPUValidationError') return 'validation';
  if (name === 'GPUOutOfMemoryError') return 'out-of-memory';
  return 'internal';
}
