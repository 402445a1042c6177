import { KernelFailedError } from '../errors/runtime-errors.js';
import type { ControlBlock } from '../wire/control-block.js';
import { FrameConsumer } from '../wire/frame-consumer.js';
import { FrameFlags } from '../wire/frame-header.js';
import type { FrameRingMemory } from '../wire/frame-ring.js';
import { RingSignalOffset } from '../wire/ring-signal.js';
import type { DeadLetter } from './dead-letters.js';

/** The rings and records of a kernel whose instance has gone, as its recovery needs them. */
export interface OrphanedKernel {
  /** The launch's name. */
  readonly name: string;
  readonly control: ControlBlock;
  /** The kernel's own input ring (the host produces into it). */
  readonly input: FrameRingMemory;
  /** Its kernel-to-kernel input rings. */
  readonly linkInputs: readonly FrameRingMemory[];
  onDeadLetter(letter: DeadLetter): void;
  /** A host call whose request frame is dead-lettered: it fails with `error`. */
  rejectCall(messageId: number, error: Error): void;
}

/**
 * The kernel's input rings, each with where its handlers got to: its own ring (the ControlBlock's handled cursor)
 * first, then its kernel-to-kernel inputs (each ring's own handled cursor).
 */
function inputRings(kernel: OrphanedKernel): { memory: FrameRingMemory; cursor: number }[] {
  const rings = [{ memory: kernel.input, cursor: kernel.control.handledCursor }];
  for (const memory of kernel.linkInputs) {
    const signal = new Int32Array(memory.signal);
    rings.push({ memory, cursor: Atomics.load(signal, RingSignalOffset.HANDLED_CURSOR >> 2) >>> 0 });
  }
  return rings;
}

/**
 * Before a restart (or a migration's swap): each input ring is taken over where the last instance's handlers got
 * to (its handled cursor), so nothing handled is handled again; and if the instance died inside a handler (its
 * worker crashed), that one message is dead-lettered rather than retried, so a poison message cannot crash every
 * restart in turn.
 */
export function recoverInputs(kernel: OrphanedKernel): void {
  const draining = kernel.control.drainingInput;
  inputRings(kernel).forEach(({ memory, cursor }, index) => {
    const taken = new FrameConsumer(memory);
    taken.resumeAt(cursor);
    if (draining !== index + 1) return;
    const error = new KernelFailedError(kernel.name, 'its instance died while handling this message');
    taken.drain((frame) => {
      kernel.onDeadLetter({
        kernel: kernel.name,
        reason: 'kernel-failed',
        error: { name: error.name, message: error.message, code: error.code },
        messageId: frame.messageId,
        correlationId: frame.correlationId,
        typeId: frame.typeId,
        payload: frame.payload.slice(),
        at: new Date(),
      });
      if (index === 0 && frame.flags & FrameFlags.REQUEST) kernel.rejectCall(frame.messageId, error);
    }, 1);
  });
}

/**
 * The worker is dead, so nobody consumes the input rings any more (the kernel's own, and those other kernels
 * produce into): the host takes over as their consumer and dead-letters what is left (reason `kernel-failed`), so
 * nothing sent is lost without a word. Each ring starts where the worker's handlers got to (its handled cursor),
 * not at its last published read index, so messages handled in the worker's last batch are not reported twice;
 * the message whose handler was running (the one that killed the worker, say) is reported.
 */
export function salvageInput(kernel: OrphanedKernel, reason: 'kernel-failed' | 'discarded-on-terminate'): void {
  const failed = new KernelFailedError(kernel.name, 'it ended before handling this message');
  const error = { name: failed.name, message: failed.message, code: failed.code };
  // Its kernel-to-kernel inputs too: what another kernel sent it and it never handled is as lost as the host's.
  for (const { memory, cursor } of inputRings(kernel)) {
    const orphaned = new FrameConsumer(memory);
    orphaned.resumeAt(cursor);
    orphaned.drain((frame) => {
      kernel.onDeadLetter({
        kernel: kernel.name,
        reason,
        error,
        messageId: frame.messageId,
        correlationId: frame.correlationId,
        typeId: frame.typeId,
        payload: frame.payload.slice(),
        at: new Date(),
      });
    });
  }
}
