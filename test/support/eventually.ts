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
