import { EventEmitter } from 'node:events';
import { ArgumentTypeError, InvalidArgumentError } from '../errors/argument-errors.js';
import { CircuitOpenError } from '../errors/runtime-errors.js';

/** The three states of a {@link CircuitBreaker}. */
export type CircuitState = 'Closed' | 'Open' | 'HalfOpen';

/** Options of a {@link CircuitBreaker}; every one is used. */
export interface CircuitBreakerOptions {
  /** A name for errors and events. Default `'circuit'`. */
  readonly name?: string;
  /** Failures within `windowMs` that open the circuit. Default 5. */
  readonly failureThreshold?: number;
  /** The sliding window failures are counted in, ms. Failures older than this no longer count. Default 10 000. */
  readonly windowMs?: number;
  /** How long the circuit stays open before it lets probes through, ms. Default 30 000. */
  readonly recoveryTimeoutMs?: number;
  /** Concurrent probes allowed while half-open; that many successes close the circuit. Default 1. */
  readonly halfOpenProbes?: number;
  /** The clock, ms. Default `performance.now`. */
  readonly now?: () => number;
}

/** What a breaker has done so far. */
export interface CircuitBreakerStats {
  readonly state: CircuitState;
  /** Failures counted in the current window. */
  readonly failuresInWindow: number;
  /** Times the circuit opened. */
  readonly trips: number;
  /** Operations refused without being tried. */
  readonly rejected: number;
  readonly successes: number;
  readonly failures: number;
}

function positive(name: string, value: number, integer: boolean): number {
  if (typeof value !== 'number')
    throw new ArgumentTypeError(`options.${name}`, `options.${name} must be a number, got ${typeof value}`);
  if (!(value > 0) || (integer && !Number.isInteger(value)) || !Number.isFinite(value)) {
    throw new InvalidArgumentError(
      `options.${name}`,
      `options.${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`,
    );
  }
  return value;
}

/**
 * A circuit breaker: Closed while things work; Open — refusing at once with {@link CircuitOpenError} — after
 * `failureThreshold` failures within a sliding `windowMs`; HalfOpen after `recoveryTimeoutMs`, letting up to
 * `halfOpenProbes` operations through, which close the circuit if they all succeed and reopen it if one fails.
 * Unlike RingKernel's, the window is enforced: failures spread wider than it never open the circuit.
 *
 * @example
 * const breaker = new CircuitBreaker({ failureThreshold: 3, windowMs: 1000 });
 * const reply = await breaker.execute(() => handle.call(request, { timeout: 100 }));
 */
export class CircuitBreaker extends EventEmitter<{ stateChange: [CircuitState, CircuitState] }> {
  readonly name: string;
  readonly failureThreshold: number;
  readonly windowMs: number;
  readonly recoveryTimeoutMs: number;
  readonly halfOpenProbes: number;
  readonly #now: () => number;
  /** Failure times in the window, oldest first. */
  readonly #failureTimes: number[] = [];
  #state: CircuitState = 'Closed';
  #openedAt = 0;
  #probesInFlight = 0;
  #probeSuccesses = 0;
  #trips = 0;
  #rejected = 0;
  #successes = 0;
  #failures = 0;

  constructor(options: CircuitBreakerOptions = {}) {
    super();
    this.name = options.name ?? 'circuit';
    this.failureThreshold = positive('failureThreshold', options.failureThreshold ?? 5, true);
    this.windowMs = positive('windowMs', options.windowMs ?? 10_000, false);
    this.recoveryTimeoutMs = positive('recoveryTimeoutMs', options.recoveryTimeoutMs ?? 30_000, false);
    this.halfOpenProbes = positive('halfOpenProbes', options.halfOpenProbes ?? 1, true);
    this.#now = options.now ?? (() => performance.now());
  }

  /** The state now (an open circuit whose recovery timeout has passed reads as HalfOpen). */
  get state(): CircuitState {
    if (this.#state === 'Open' && this.#now() - this.#openedAt >= this.recoveryTimeoutMs) this.#move('HalfOpen');
    return this.#state;
  }

  /** Counters and the state. */
  stats(): CircuitBreakerStats {
    this.#prune();
    return {
      state: this.state,
      failuresInWindow: this.#failureTimes.length,
      trips: this.#trips,
      rejected: this.#rejected,
      successes: this.#successes,
      failures: this.#failures,
    };
  }

  /**
   * Runs `operation` if the circuit allows it and records the outcome.
   * @throws {CircuitOpenError} at once, without running it, while open (or when every half-open probe is taken).
   */
  async execute<T>(operation: () => T | Promise<T>): Promise<T> {
    const state = this.state;
    if (state === 'Open' || (state === 'HalfOpen' && this.#probesInFlight >= this.halfOpenProbes)) {
      this.#rejected++;
      throw new CircuitOpenError(this.name, this.#openedAt + this.recoveryTimeoutMs);
    }
    const probe = state === 'HalfOpen';
    if (probe) this.#probesInFlight++;
    try {
      const result = await operation();
      this.#success(probe);
      return result;
    } catch (error) {
      this.#failure(probe);
      throw error;
    } finally {
      if (probe) this.#probesInFlight--;
    }
  }

  /** Records a success of an operation run outside {@link CircuitBreaker.execute}. */
  recordSuccess(): void {
    this.#success(this.state === 'HalfOpen');
  }

  /** Records a failure of an operation run outside {@link CircuitBreaker.execute}. */
  recordFailure(): void {
    this.#failure(this.state === 'HalfOpen');
  }

  #success(probe: boolean): void {
    this.#successes++;
    if (probe && this.#state === 'HalfOpen' && ++this.#probeSuccesses >= this.halfOpenProbes) {
      this.#failureTimes.length = 0;
      this.#move('Closed');
    }
  }

  #failure(probe: boolean): void {
    this.#failures++;
    if (probe || this.#state === 'HalfOpen') {
      this.#open();
      return;
    }
    if (this.#state !== 'Closed') return;
    this.#failureTimes.push(this.#now());
    this.#prune();
    if (this.#failureTimes.length >= this.failureThreshold) this.#open();
  }

  #prune(): void {
    const oldest = this.#now() - this.windowMs;
    while (this.#failureTimes.length > 0 && (this.#failureTimes[0] as number) <= oldest) this.#failureTimes.shift();
  }

  #open(): void {
    this.#openedAt = this.#now();
    this.#trips++;
    this.#failureTimes.length = 0;
    this.#move('Open');
  }

  #move(next: CircuitState): void {
    const previous = this.#state;
    if (previous === next && next !== 'Open') return;
    this.#state = next;
    this.#probeSuccesses = 0;
    this.emit('stateChange', next, previous);
  }
}
