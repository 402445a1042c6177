import type { KernelHandle } from '../src/internal.js';

/** Yields one event-loop turn. */
export const yieldTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The `kernel.send.64` measurement, shared by every case built on it (direct, dma, traced): sends `n` messages
 * into a sink kernel (`trySend`, falling back to `await send` when the queue is full) and returns msg/s after the
 * warm-up fifth, counted when the kernel has processed them (its ControlBlock counter).
 */
export async function sinkSendRate<In>(
  sink: KernelHandle<In>,
  sample: In & { seq: number },
  n: number,
): Promise<number> {
  const send = async (count: number): Promise<void> => {
    for (let i = 0; i < count; i++) {
      sample.seq = i;
      if (!sink.trySend(sample)) await sink.send(sample);
    }
  };
  const processed = (): number => sink.counters().processed;
  const warm = Math.floor(n / 5);
  const base = processed();
  await send(warm);
  while (processed() - base < warm) await yieldTurn();
  const start = performance.now();
  await send(n - warm);
  while (processed() - base < n) await yieldTurn();
  return (n - warm) / ((performance.now() - start) / 1000);
}
