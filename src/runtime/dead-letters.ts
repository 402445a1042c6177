import { EventEmitter } from 'node:events';
import type { DeadLetterReason, DeadLetterReport } from '../executor/protocol.js';

/** A message that could not be delivered or handled, with why. Nothing is dropped without one. */
export interface DeadLetter extends DeadLetterReport {
  /** The launched kernel's name. */
  readonly kernel: string;
  /** When the host learned of it. */
  readonly at: Date;
}

/**
 * The runtime's dead-letter stream: every message a kernel failed to handle, discarded on terminate, or found
 * malformed. Listen with `on('deadLetter', …)`; counts per reason are always kept, and the most recent letters
 * are retained for inspection.
 *
 * @example
 * runtime.deadLetters.on('deadLetter', (letter) => log.warn(letter.kernel, letter.reason, letter.error.message));
 */
export class DeadLetterStream extends EventEmitter<{ deadLetter: [DeadLetter] }> {
  /** How many recent letters {@link DeadLetterStream.recent} keeps. */
  readonly retain: number;
  readonly #recent: DeadLetter[] = [];
  readonly #counts = new Map<DeadLetterReason, number>();
  #total = 0;

  constructor(retain = 1000) {
    super();
    this.retain = retain;
  }

  /** Every dead letter so far. */
  get total(): number {
    return this.#total;
  }

  /** Dead letters so far, by reason. */
  counts(): Readonly<Partial<Record<DeadLetterReason, number>>> {
    return Object.fromEntries(this.#counts);
  }

  /** The most recent letters, oldest first. */
  recent(): readonly DeadLetter[] {
    return [...this.#recent];
  }

  /** Records a letter and tells listeners. @internal */
  publish(letter: DeadLetter): void {
    this.#total++;
    this.#counts.set(letter.reason, (this.#counts.get(letter.reason) ?? 0) + 1);
    this.#recent.push(letter);
    if (this.#recent.length > this.retain) this.#recent.shift();
    this.emit('deadLetter', letter);
  }
}

/** The letter of a message sent by name to no live kernel (reason `unknown-kernel`): a byte payload is kept. */
export function unknownKernelLetter(
  name: string,
  message: unknown,
  error: Error & { readonly code: string },
): DeadLetter {
  return {
    kernel: name,
    reason: 'unknown-kernel',
    error: { name: error.name, message: error.message, code: error.code },
    messageId: 0,
    correlationId: 0,
    typeId: 0,
    payload: message instanceof Uint8Array ? message.slice() : new Uint8Array(0),
    at: new Date(),
  };
}
