/**
 * The eventcount wake-up both ends of a ring use to sleep without losing a wake-up and without a notify per
 * message.
 *
 * Sleeper: spin on `ready()`; then read the seq, set its sleeping flag, re-check `ready()`, and only then wait
 * on the seq. Waker (after publishing): if the flag is set, lower it (`Atomics.exchange`, so of several wakers
 * only one takes it), bump the seq and notify. All JS atomics are sequentially consistent, so either the waker
 * sees the flag (and the bump makes the wait return) or the sleeper's re-check sees the published data — never
 * neither.
 *
 * Why the waker lowers the flag: the sleeper lowers it only once it runs again, an event-loop turn or a
 * scheduler slice after the notify. Meanwhile every frame a busy producer published found the flag still up
 * and paid a bump and a notify nobody waited for (about 400 000 a second on the main thread of a pipeline).
 * One notify per park is all the sleeper needs: the bump alone ends its wait, whenever it gets to it.
 * A waker that finds the flag down while the sleeper re-arms is covered by the re-check, as for any publish.
 *
 * Native threads cannot wake V8 waiters (V8's wait is not a futex), so waits that a native peer must end use a
 * finite timeout and re-check.
 */

/** setTimeout's largest delay; longer parks re-arm on their next loop. */
const MAX_TIMER_MS = 0x7fff_ffff;

/** How long, in iterations of `ready()`, a waiter spins before it parks. */
export const DEFAULT_SPIN = 2_000;

const READY = 'ready';
const EXPIRED = 'expired';

/**
 * Sleeper side, before parking: reads the seq, raises the sleeping flag, re-checks. Returns the seq to wait on,
 * or READY / EXPIRED with the flag lowered again.
 */
function arm(
  signal: Int32Array,
  seqIndex: number,
  sleepingIndex: number,
  ready: () => boolean,
  deadline: number,
): number | typeof READY | typeof EXPIRED {
  const seq = Atomics.load(signal, seqIndex);
  Atomics.store(signal, sleepingIndex, 1);
  if (ready()) {
    Atomics.store(signal, sleepingIndex, 0);
    return READY;
  }
  if (deadline - performance.now() <= 0) {
    Atomics.store(signal, sleepingIndex, 0);
    return EXPIRED;
  }
  return seq;
}

/**
 * Spins on `ready()` for up to `ms` milliseconds of wall time (the clock is read every 64 checks). Returns
 * whether it became ready. For callers that want a time-bounded spin before an async park.
 */
export function spinFor(ready: () => boolean, ms: number): boolean {
  const until = performance.now() + ms;
  do {
    for (let i = 0; i < 64; i++) if (ready()) return true;
  } while (performance.now() < until);
  return false;
}

/**
 * Waker side: call after publishing. Costs one atomic load when nobody sleeps; of the wakers that find the same
 * park, only the first notifies (it lowers the flag).
 */
export function wake(signal: Int32Array, seqIndex: number, sleepingIndex: number): void {
  if (Atomics.load(signal, sleepingIndex) !== 0 && Atomics.exchange(signal, sleepingIndex, 0) !== 0) {
    Atomics.add(signal, seqIndex, 1);
    Atomics.notify(signal, seqIndex);
  }
}

/**
 * Blocking wait (worker threads, or the main thread when blocking is acceptable) until `ready()` or the
 * deadline. Returns the final `ready()`.
 */
export function waitUntil(
  signal: Int32Array,
  seqIndex: number,
  sleepingIndex: number,
  ready: () => boolean,
  timeoutMs: number,
  spin: number,
): boolean {
  for (let i = 0; i < spin; i++) if (ready()) return true;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const seq = arm(signal, seqIndex, sleepingIndex, ready, deadline);
    if (seq === READY) return true;
    if (seq === EXPIRED) return false;
    const left = deadline - performance.now();
    Atomics.wait(signal, seqIndex, seq, left);
    Atomics.store(signal, sleepingIndex, 0);
    if (ready()) return true;
  }
}

/**
 * Event-loop wait with `Atomics.waitAsync`: one Promise per park, never per message. Resolves with the final
 * `ready()`; rejects with the signal's reason when aborted. `holdLoop`: a timer keeps the event loop alive for
 * the park (see below); a thread whose loop something else holds for as long as it waits (a pool worker's task
 * port) and that waits without a deadline passes false, and parks without a timer.
 */
export async function waitUntilAsync(
  signal: Int32Array,
  seqIndex: number,
  sleepingIndex: number,
  ready: () => boolean,
  timeoutMs: number,
  spin: number,
  abort?: AbortSignal,
  holdLoop = true,
): Promise<boolean> {
  for (let i = 0; i < spin; i++) if (ready()) return true;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    abort?.throwIfAborted();
    const seq = arm(signal, seqIndex, sleepingIndex, ready, deadline);
    if (seq === READY) return true;
    if (seq === EXPIRED) return false;
    const left = deadline - performance.now();
    const result = Atomics.waitAsync(signal, seqIndex, seq, left);
    if (result.async) {
      // A pending waitAsync does not keep a Node event loop alive (a worker with nothing else ref'd exits with
      // code 13 mid-wait), and its own timeout is a V8 task Node does not wait for. So a ref'd timer spans the
      // park and ends it at the deadline itself; a spurious wake-up only makes the loop re-check and re-park.
      const keepAlive =
        holdLoop || left !== Number.POSITIVE_INFINITY
          ? setTimeout(() => Atomics.notify(signal, seqIndex), Math.min(left, MAX_TIMER_MS))
          : undefined;
      if (abort === undefined) {
        try {
          await result.value;
        } finally {
          clearTimeout(keepAlive);
        }
      } else {
        // An abort must end the park: bump the seq ourselves, which resolves the pending waitAsync.
        const onAbort = (): void => {
          Atomics.add(signal, seqIndex, 1);
          Atomics.notify(signal, seqIndex);
        };
        abort.addEventListener('abort', onAbort, { once: true });
        try {
          await result.value;
        } finally {
          clearTimeout(keepAlive);
          abort.removeEventListener('abort', onAbort);
        }
      }
    }
    Atomics.store(signal, sleepingIndex, 0);
    if (ready()) return true;
  }
}
