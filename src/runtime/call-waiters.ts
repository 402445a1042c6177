import { AbortedError, TimeoutError } from '../errors/value-errors.js';

/** A call or receive waiting for its answer. */
export interface PendingCall {
  /** performance.now() when the call (or receive) began. */
  readonly startedAt: number;
  readonly deadline: number;
  expire(): void;
  resolve(value: unknown): void;
  reject(error: Error): void;
  cleanup(): void;
}

/** What the waiters need from their kernel's handle. */
export interface WaitersOwner {
  readonly name: string;
  /** Whether the kernel has ended: then its deadline timer must not hold the handle (and its rings). */
  hasEnded(): boolean;
  /**
   * The call `messageId` gave up (its deadline, its signal) and has been rejected with `error`; its request may
   * still wait for room, or be answered later.
   */
  callGaveUp(messageId: number, error: Error): void;
}

/**
 * The calls and receives waiting on a kernel's outputs: calls by message id (their responses come matched by
 * correlation id), receives oldest first. Their timeouts share one timer, armed for the earliest deadline,
 * instead of a timer per call (a setTimeout/clearTimeout pair per call costs about as much as the call itself).
 * The handle's output pump reads {@link CallWaiters.calls} and {@link CallWaiters.receivers} directly.
 */
export class CallWaiters<Out> {
  readonly #owner: WaitersOwner;
  readonly #calls = new Map<number, PendingCall>();
  readonly #receivers: PendingCall[] = [];
  /** Every call and receive waiting with a deadline, for the shared timer. */
  readonly #deadlines = new Set<PendingCall>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  /** Ids of receives (each keys a table of its own). */
  #nextReceiveId = 0;

  constructor(owner: WaitersOwner) {
    this.#owner = owner;
  }

  /** The calls waiting for their responses, by message id. */
  get calls(): Map<number, PendingCall> {
    return this.#calls;
  }

  /** The receives waiting for an output, oldest first. */
  get receivers(): PendingCall[] {
    return this.#receivers;
  }

  /** Waits for the response to the request `messageId`. */
  call(messageId: number, timeout: number, signal: AbortSignal | undefined): Promise<Out> {
    return this.#waitFor(this.#calls, messageId, timeout, signal, 'call');
  }

  /** Waits for the next output that is not a call's response. */
  receive(timeout: number, signal: AbortSignal | undefined): Promise<Out> {
    const id = this.#nextReceiveId++;
    const waiting = new Map<number, PendingCall>();
    const promise = this.#waitFor(waiting, id, timeout, signal, 'receive');
    this.#receivers.push(waiting.get(id) as PendingCall);
    return promise;
  }

  /** The kernel has ended: with nobody waiting, the deadline timer goes (it must not hold the ended handle). */
  kernelEnded(): void {
    if (this.#deadlines.size === 0) this.#disarmTimer();
  }

  /** Registers a waiter (call or receive) with its timeout and abort signal. */
  #waitFor(
    table: Map<number, PendingCall>,
    id: number,
    timeout: number,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<Out> {
    const owner = this.#owner;
    return new Promise<Out>((resolve, reject) => {
      // A call that gives up (its deadline, its signal) leaves its request behind: see WaitersOwner.callGaveUp.
      const giveUp = (error: Error): void => {
        pending.reject(error);
        if (table === this.#calls) owner.callGaveUp(id, error);
      };
      const onAbort = (): void => giveUp(new AbortedError(`${what} on kernel '${owner.name}'`, signal?.reason));
      const startedAt = performance.now();
      const pending: PendingCall = {
        startedAt,
        deadline: startedAt + timeout,
        expire: () => giveUp(new TimeoutError(`${what} on kernel '${owner.name}'`, timeout)),
        resolve: (value) => {
          pending.cleanup();
          resolve(value as Out);
        },
        reject: (error) => {
          pending.cleanup();
          reject(error);
        },
        cleanup: () => {
          // An ended kernel's timer must not hold the handle (and its rings) until the deadline.
          if (this.#deadlines.delete(pending) && this.#deadlines.size === 0 && owner.hasEnded()) {
            this.#disarmTimer();
          }
          if (signal !== undefined) signal.removeEventListener('abort', onAbort);
          table.delete(id);
          if (table !== this.#calls) {
            const at = this.#receivers.indexOf(pending);
            if (at >= 0) this.#receivers.splice(at, 1);
          }
        },
      };
      if (signal !== undefined) signal.addEventListener('abort', onAbort, { once: true });
      table.set(id, pending);
      if (timeout === Number.POSITIVE_INFINITY) return; // no deadline to watch
      this.#deadlines.add(pending);
      if (pending.deadline < this.#timerAt) this.#armTimer(pending.deadline);
    });
  }

  #disarmTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  #armTimer(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    // Unref'd: waiting callers are kept alive by the output pump's park, not by their deadline.
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - performance.now())).unref();
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const pending of [...this.#deadlines]) {
      if (pending.deadline <= now) pending.expire();
      else next = Math.min(next, pending.deadline);
    }
    if (next !== Number.POSITIVE_INFINITY) this.#armTimer(next);
  }
}
