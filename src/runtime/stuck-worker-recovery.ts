import type { Relaunch } from '../bridge/relaunch.js';
import type { WatchdogRecovery } from '../operations/kernel-watchdog.js';
import type { KernelFailureListener } from './kernel-handle-options.js';

/** A kernel as the recovery of its stuck worker sees it. */
export interface WorkerHostedKernel {
  readonly name: string;
  /** Whether the kernel's worker is inside one of its batches. */
  readonly inBatch: boolean;
  readonly relaunch: Relaunch;
  /** Its supervision: whether a supervisor watches it, and taking it out of its supervisor's hands. */
  readonly supervision: {
    readonly supervised: boolean;
    superviseWith(listener: KernelFailureListener | undefined): void;
  };
}

/** What the recovery needs from the runtime. */
export interface StuckWorkerPort<K extends WorkerHostedKernel> {
  /** The runtime is shutting down: nothing is recovered any more. */
  readonly shuttingDown: boolean;
  readonly workers: {
    threadOf(kernel: K): number | undefined;
    worker(threadId: number): { terminate(): Promise<number> } | undefined;
    isDead(threadId: number): boolean;
    kernelsOn(threadId: number): K[];
    markDead(threadId: number): void;
  };
  /** The supervisor that restarts the kernels moved off the stuck worker (the runtime's watchdog supervisor). */
  supervisor(): { supervise(kernel: K): void };
}

/**
 * A kernel's handler never returns: only replacing its worker thread stops it. The worker's other kernels are
 * put under the watchdog's supervisor first (unless supervised already), so they restart on a live worker with
 * their queues; the stuck kernel restarts too, or, under `'fail'`, stays Failed. Undefined when there is nothing
 * to do: the worker is being replaced already (every kernel of a stuck worker looks stale, and one recovery
 * covers them all), or the runtime is shutting down.
 */
export async function replaceStuckWorker<K extends WorkerHostedKernel>(
  stale: K,
  policy: 'restart' | 'fail',
  port: StuckWorkerPort<K>,
): Promise<WatchdogRecovery | undefined> {
  const workers = port.workers;
  const threadId = workers.threadOf(stale);
  const worker = threadId === undefined ? undefined : workers.worker(threadId);
  if (threadId === undefined || worker === undefined || workers.isDead(threadId)) return undefined;
  if (port.shuttingDown) return undefined;
  const hosted = workers.kernelsOn(threadId);
  // The kernel whose handler is stuck is the one inside a batch; the others only wait for the worker.
  const handle = hosted.find((kernel) => kernel.inBatch) ?? stale;
  const moved = hosted.filter((kernel) => kernel !== handle);
  const supervisor = port.supervisor();
  // Direct kernels move (restart elsewhere), and so do dma ones (their restart attaches fresh replicas).
  const movable = (kernel: K): boolean => kernel.relaunch.anotherWorker;
  for (const other of moved) if (!other.supervision.supervised && movable(other)) supervisor.supervise(other);
  if (policy === 'fail' || !movable(handle)) handle.supervision.superviseWith(undefined);
  else if (!handle.supervision.supervised) supervisor.supervise(handle);
  workers.markDead(threadId);
  await worker.terminate();
  return { kernel: handle.name, policy, threadId, moved: moved.map((other) => other.name) };
}
