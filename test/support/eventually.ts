/**
 * Waits until `check` stops throwing (then returns its result) or rethrows its last error after `timeoutMs`.
 * For facts that arrive on another channel a moment after a reply: counters published at the end of a kernel's
 * batch, dead letters posted on its control port.
 */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (performance.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
}

/** Waits until `condition()` holds; fails with the condition's source text after `timeoutMs`. */
export function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  return eventually(() => {
    if (!condition()) throw new Error(`not true within ${timeoutMs} ms: ${condition.toString()}`);
  }, timeoutMs);
}

/**
 * Waits for `promise`, at most `timeoutMs`. The timer also holds the event loop while it waits: a kernel's ports
 * do not, so a bare `await handle.exited` on a kernel that ends later (a device fault on another thread) could
 * outlive everything else in the process and leave the test pending.
 */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
