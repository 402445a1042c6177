import { InvalidArgumentError } from '../errors/argument-errors.js';
import { InvalidStateError } from '../errors/runtime-errors.js';
import type { DeadLetterReason } from '../executor/protocol.js';
import { checkPriority, invalidPriority, isPriority } from '../kernel/priority.js';
import { checkOptions, checkSignal, checkTimeout } from '../kernel/wait-options.js';
import type { KernelStatusName } from '../wire/kernel-status.js';
import type { MessageCodec } from '../wire/message-schema.js';
import type { DeadLetter } from './dead-letters.js';
import type { CallOptions, Refusal, SendOptions } from './kernel-handle-options.js';

/** A kernel that did not take a message at once, as the refusal reads it (built on the refusing path only). */
export interface RefusingKernel {
  readonly name: string;
  readonly status: KernelStatusName;
  readonly failure: Error | undefined;
  readonly exitStatus: 'Terminated' | 'Failed' | undefined;
  /** `terminate()` was called: the kernel takes no new message. */
  readonly closed: boolean;
  /** Whether the message's priority is at or above the lowest the kernel admits now. */
  readonly admitted: boolean;
  /** How a message below that priority is reported (drain, load shedding). */
  readonly refusal: Refusal | undefined;
  /** Supervised (or between two instances): messages queue in the ring for the restarted instance. */
  readonly awaitsRestart: boolean;
}

/** A refused message's error, and the reason its dead letter gives. */
export interface Refused {
  readonly error: Error;
  readonly reason: DeadLetterReason;
}

/**
 * Why `kernel` refuses a message of `priority` that its fast check did not take: undefined when it takes it
 * after all (a supervised kernel whose instance may be failing, stopped or restarting: the message queues for
 * the next instance, or is dead-lettered should the supervisor give the kernel up).
 */
export function refusalOf(kernel: RefusingKernel, operation: string, priority: number): Refused | undefined {
  if (!isPriority(priority)) {
    // Not a priority at all (-1, NaN, 300): the caller's mistake, not the kernel's state.
    return { error: invalidPriority(priority), reason: 'invalid-argument' };
  }
  if (kernel.closed && kernel.failure === undefined) {
    // Terminate was called: the status word may still say Active until the worker takes the command.
    const error = new InvalidStateError(
      kernel.name,
      operation,
      kernel.exitStatus ?? 'Terminating',
      'Active',
      'and takes no more messages (launch it again for a new instance)',
    );
    return { error, reason: 'kernel-gone' };
  }
  if (!kernel.admitted && kernel.failure === undefined && kernel.refusal !== undefined) {
    return kernel.refusal(kernel.name, priority);
  }
  // Supervised and not given up: the host may not know yet that the instance failed (the status word is written
  // before the exit report arrives).
  if (kernel.awaitsRestart && kernel.failure === undefined) return undefined;
  const status = kernel.status;
  const error =
    kernel.failure ??
    new InvalidStateError(
      kernel.name,
      operation,
      status,
      'Active',
      status === 'Terminated' || status === 'Terminating'
        ? 'and takes no more messages (launch it again for a new instance)'
        : 'and takes no messages',
    );
  return { error, reason: 'kernel-gone' };
}

/**
 * Checks the options of a send (`send`: also `onFull`) or call up front, each wrong one refused with a typed
 * error naming it.
 */
export function checkSendOptions<T extends SendOptions & CallOptions>(options: T, send: boolean): T {
  const bag = checkOptions(options, 'options');
  if (bag.timeout !== undefined) checkTimeout(bag.timeout, 'options.timeout');
  checkSignal(bag.signal, 'options.signal');
  if (bag.priority !== undefined) checkPriority(bag.priority, 'options.priority');
  if (send && bag.onFull !== undefined && bag.onFull !== 'wait' && bag.onFull !== 'reject') {
    throw new InvalidArgumentError('options.onFull', `options.onFull must be 'wait' or 'reject', got ${bag.onFull}`);
  }
  return bag;
}

/** The dead letter of a message refused before it reached the kernel's queue. */
export function refusedLetter<In>(
  kernel: string,
  refused: Refused,
  codec: MessageCodec<In, unknown>,
  message: In,
): DeadLetter {
  const error = refused.error;
  return {
    kernel,
    reason: refused.reason,
    error: { name: error.name, message: error.message, code: (error as { code?: string }).code },
    messageId: 0,
    correlationId: 0,
    typeId: codec.typeId,
    payload: encodeCopy(codec, message),
    at: new Date(),
  };
}

/** The message as bytes, for a dead letter (an empty payload if it cannot even be encoded). */
function encodeCopy<In>(codec: MessageCodec<In, unknown>, message: In): Uint8Array {
  try {
    const bytes = new Uint8Array(codec.encodedSize(message));
    codec.encodeInto(new DataView(bytes.buffer), bytes, 0, message);
    return bytes;
  } catch {
    return new Uint8Array(0);
  }
}
