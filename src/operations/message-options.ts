import type { CircuitBreaker } from './circuit-breaker.js';

/**
 * The options of a send and of a call, whichever kernel they go to: a local handle or a reference to a kernel on
 * another node take the same. Declared once, here beside the circuit breaker a call may be guarded by, where both
 * the runtime and the cluster may import them.
 */

/** How a send behaves when the kernel's input queue is full. */
export interface SendOptions {
  /** `'wait'` (default): wait for room, in order. `'reject'`: fail at once with `QueueFullError`. */
  readonly onFull?: 'wait' | 'reject';
  /** Longest wait for room, in ms: 0…2³¹−1, or `Infinity` (the default: no limit). */
  readonly timeout?: number;
  /** Cancels the wait for room (an aborted one sends nothing): rejects with `AbortedError`, the reason its cause. */
  readonly signal?: AbortSignal;
  /** The message's priority, 0…255 (default {@link Priority.Normal}): load shedding refuses the lowest first. */
  readonly priority?: number;
}

/** Options of a kernel's `call`. */
export interface CallOptions {
  /**
   * Guards the call: refused at once with `CircuitOpenError` while the breaker is open; a failed call (handler
   * error, timeout, kernel failure) counts against it.
   */
  readonly breaker?: CircuitBreaker;
  /** Longest wait for the response, in ms: 0…2³¹−1, or `Infinity` for no limit. Default 30 000. */
  readonly timeout?: number;
  /**
   * Cancels the call: an aborted signal sends nothing; one that aborts later rejects with `AbortedError` (the
   * reason its cause), and the response, should it still come, is a dead letter (`late-response`).
   */
  readonly signal?: AbortSignal;
  /** The request's priority, 0…255 (default {@link Priority.Normal}). */
  readonly priority?: number;
}
