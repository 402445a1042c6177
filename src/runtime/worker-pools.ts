import type { EventLoopUtilization } from 'node:perf_hooks';
import { MessageChannel, type MessagePort, type ResourceLimits, type Worker } from 'node:worker_threads';
import { Piscina, queueOptionsSymbol } from 'piscina';
import { prepareWebGpuDriver } from '../backends/webgpu/dawn-module.js';
import { RingKernelError } from '../errors/ringkernel-error.js';
import { KernelFailedError, RuntimeShutDownError } from '../errors/runtime-errors.js';
import type { ControlPort, LinePort } from '../executor/control-line.js';
import type { AttachBatch, AttachBatchResult, AttachResult, AttachTask } from '../executor/protocol.js';
import { ControlLines } from './control-lines.js';

/** The CPU backend's executor: the Piscina task module that hosts kernels in worker threads. */
const KERNEL_HOST = new URL('../worker/kernel-host.js', import.meta.url).href;
/** The CUDA backend's executor: the device thread's task module. */
const CUDA_DEVICE_HOST = new URL('../backends/cuda/cuda-device-host.js', import.meta.url).href;
/** The WebGPU backend's executor: the device thread's task module (one thread owns the GPUDevice). */
const WEBGPU_DEVICE_HOST = new URL('../backends/webgpu/webgpu-device-host.js', import.meta.url).href;
/** How many CUDA kernels the device thread may host (each is a resident launch plus a few ring polls). */
const MAX_CUDA_KERNELS = 1024;
/** The attach batch option naming the worker thread the batch was placed on (read by the load balancer). */
const PLACED_ON = queueOptionsSymbol;

/**
 * A kernel instance's control port: the host's end, and what its attach task carries for the executor's (a
 * MessagePort to transfer, or the key of its share of a CPU worker's control line).
 */
export interface KernelControl {
  readonly host: ControlPort;
  readonly executor: MessagePort | number;
}

/**
 * A worker that ended (or whose pool threw) while attaching a batch: each of its kernels fails, typed, with the
 * pool's error as the cause — Piscina's own errors ("worker exited with code: 7") carry no RK_* code.
 */
function attachLost(kernelId: string, error: unknown): Error {
  if (error instanceof RingKernelError) return error;
  const why = error instanceof Error ? error.message : String(error);
  return new KernelFailedError(kernelId, `its worker ended while attaching it (${why})`, { cause: error });
}

/** A CPU attach asked for in this turn of the event loop, waiting to go out with the others in one batch. */
interface PendingAttach {
  readonly task: AttachTask;
  readonly port: LinePort;
  resolve(result: AttachResult): void;
  reject(error: unknown): void;
}

/**
 * The executor threads a runtime attaches kernels to: one Piscina pool of worker threads per device (CPU virtual
 * devices: each a group of the workers), the CUDA device thread (started by the first CUDA launch), and which
 * kernel each thread hosts — placement puts a kernel on the worker hosting the fewest, never on one seen to die.
 * Keyed by the runtime's kernel handles (`K`); only the control plane comes here.
 */
export class WorkerPools<K extends object> {
  readonly #pools: Piscina<AttachBatch, AttachBatchResult>[] = [];
  /** The CPU workers' control lines (one per thread, every kernel's control port on it). */
  readonly #lines = new ControlLines();
  #cuda: Piscina<AttachTask, AttachResult> | undefined;
  #webgpu: Piscina<AttachTask, AttachResult> | undefined;
  readonly #maxKernelsPerWorker: number;
  /** Kernels hosted per worker thread, for placement. */
  readonly #hosted = new Map<number, number>();
  readonly #threadOf = new Map<K, number>();
  /** Worker threads known to have exited (a hosted kernel's control port closed). */
  readonly #deadThreads = new Set<number>();
  /** Each worker's event-loop utilization at the previous load measurement. */
  readonly #elu = new Map<number, EventLoopUtilization>();
  /**
   * CPU attaches not sent yet, by device, in order: those asked for in this turn (they leave together, one batch
   * per worker, at its end), then those waiting for a worker with room (sent as kernels leave).
   */
  readonly #pending = new Map<number, PendingAttach[]>();
  /** Devices whose pending attaches are about to be sent. */
  readonly #flushing = new Set<number>();
  /** Kernels in attach batches on their way to each worker thread: placement counts them as hosted. */
  readonly #attaching = new Map<number, number>();
  /** The kernel workers' heap limits. */
  readonly #resourceLimits: ResourceLimits;

  /** `heap`: the kernel workers' heap limits in MiB (config.workerHeapMB, workerYoungHeapMB; 0: Node's default). */
  constructor(maxKernelsPerWorker: number, heap: { readonly oldMB: number; readonly youngMB: number }) {
    this.#maxKernelsPerWorker = maxKernelsPerWorker;
    this.#resourceLimits = {
      ...(heap.oldMB > 0 ? { maxOldGenerationSizeMb: heap.oldMB } : {}),
      ...(heap.youngMB > 0 ? { maxYoungGenerationSizeMb: heap.youngMB } : {}),
    };
  }

  /** Adds the next device's pool, of `workers` threads. */
  addDevice(workers: number): void {
    const pool = new Piscina<AttachBatch, AttachBatchResult>({
      filename: KERNEL_HOST,
      minThreads: workers,
      maxThreads: workers,
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: this.#maxKernelsPerWorker,
      // Kernels park with Atomics.waitAsync on the worker's event loop; Piscina's 'sync' atomics would freeze it.
      atomics: 'disabled',
      resourceLimits: this.#resourceLimits,
      // A batch goes to the worker its kernels were placed on (#flush), under maxKernelsPerWorker; one whose worker
      // has gone since (or placed when no worker was known) to the worker hosting the fewest. Never refused: a
      // task the balancer refuses heads Piscina's queue and holds back every task behind it.
      loadBalancer: (task, candidates) => {
        const placedOn = ((task as unknown as Record<symbol, unknown>)[PLACED_ON] as { threadId?: number } | null)
          ?.threadId;
        let best = null;
        let bestLoad = Number.POSITIVE_INFINITY;
        for (const worker of candidates) {
          // A thread whose kernels saw it die may not be marked destroyed by Piscina yet: never place on it.
          if (worker.terminating || worker.destroyed || this.#deadThreads.has(worker.id)) continue;
          if (worker.id === placedOn) return worker;
          const load = this.#load(worker.id) + worker.currentUsage;
          if (load < bestLoad) {
            best = worker;
            bestLoad = load;
          }
        }
        return best;
      },
    });
    // Without a listener, a worker error outside any task would crash the process. The kernels of a worker that
    // dies learn it through their control ports; this only reports the event.
    pool.on('error', (error: Error) => {
      process.emitWarning(`ringkernel: a worker thread failed: ${error.message}`, 'RingKernelWarning');
    });
    this.#pools.push(pool);
  }

  /**
   * A control port for a new kernel instance: a share of its worker's control line for a CPU kernel, a
   * MessageChannel of its own for a device thread's (`onDevice`: CUDA or WebGPU).
   */
  openControl(onDevice: boolean): KernelControl {
    if (onDevice) {
      const { port1, port2 } = new MessageChannel();
      return { host: port1, executor: port2 };
    }
    const port = this.#lines.open();
    return { host: port, executor: port.key };
  }

  /** Control ports open on the CPU workers' lines (each kernel instance's, until its end closes). */
  get openControlPorts(): number {
    return this.#lines.size;
  }

  /**
   * Runs an attach task: on the WebGPU or CUDA device thread (`onCuda`), else on a worker of `device`'s pool. A
   * device thread's kernel's control port is transferred with it; a CPU kernel's is bound to its worker's line.
   * CPU attaches asked for in the same turn of the event loop (a wave of launches) leave together at its end, one
   * Piscina task per worker rather than one per kernel.
   */
  attach(task: AttachTask, onCuda: boolean, device: number, control: KernelControl): Promise<AttachResult> {
    const { executor } = control;
    if (task.webgpu !== undefined || onCuda) {
      // `control` came from openControl(true): a device thread's kernel has a MessagePort of its own.
      const onDevice = { transferList: typeof executor === 'number' ? [] : [executor] };
      return task.webgpu !== undefined ? this.#webgpuPool().run(task, onDevice) : this.#cudaPool().run(task, onDevice);
    }
    const port = control.host as LinePort;
    return new Promise<AttachResult>((resolve, reject) => {
      let pending = this.#pending.get(device);
      if (pending === undefined) {
        pending = [];
        this.#pending.set(device, pending);
      }
      pending.push({ task, port, resolve, reject });
      this.#scheduleFlush(device);
    });
  }

  /** Sends `device`'s pending attaches at the end of this turn (once, however many are asked for in it). */
  #scheduleFlush(device: number): void {
    if (this.#flushing.has(device)) return;
    this.#flushing.add(device);
    queueMicrotask(() => {
      this.#flushing.delete(device);
      this.#flush(device);
    });
  }

  /** A kernel left a worker, or an attach failed: attaches waiting for room may go now. */
  #roomMayHaveCome(): void {
    for (const [device, pending] of this.#pending) if (pending.length > 0) this.#scheduleFlush(device);
  }

  /**
   * Sends `device`'s pending attaches, in order: each kernel placed on the live worker hosting the fewest
   * (counting those being attached), under `maxKernelsPerWorker`; one batch per worker, pinned to it. When no
   * worker has room the rest wait, in order, until a kernel leaves. With no live worker known (all replaced just
   * now) they go unpinned: Piscina hands them to the first worker ready.
   */
  #flush(device: number): void {
    const pending = this.#pending.get(device);
    if (pending === undefined) return;
    const pool = this.#pools[device] as Piscina<AttachBatch, AttachBatchResult>;
    const threads = pool.threads.map((thread) => thread.threadId).filter((id) => !this.#deadThreads.has(id));
    if (threads.length === 0) {
      this.#pending.delete(device);
      this.#send(pool, undefined, pending);
      return;
    }
    const batches = new Map<number, PendingAttach[]>();
    let placed = 0;
    for (const attach of pending) {
      let best: number | undefined;
      let bestLoad = this.#maxKernelsPerWorker;
      for (const threadId of threads) {
        const load = this.#load(threadId);
        if (load < bestLoad) {
          best = threadId;
          bestLoad = load;
        }
      }
      if (best === undefined) break; // every worker is full: the rest wait for room
      placed++;
      this.#attaching.set(best, (this.#attaching.get(best) ?? 0) + 1);
      const batch = batches.get(best);
      if (batch === undefined) batches.set(best, [attach]);
      else batch.push(attach);
    }
    pending.splice(0, placed);
    if (pending.length === 0) this.#pending.delete(device);
    for (const [threadId, batch] of batches) this.#send(pool, threadId, batch);
  }

  /** One attach batch to the worker `threadId` (or wherever the load balancer says); each kernel settles alone. */
  #send(pool: Piscina<AttachBatch, AttachBatchResult>, threadId: number | undefined, batch: PendingAttach[]): void {
    const task = { attach: batch.map((pending) => pending.task), [PLACED_ON]: { threadId } };
    pool.run(task).then(
      ({ results, line }) => {
        this.#attached(threadId, batch.length);
        // The thread that ran the batch (the one it was placed on, unless that one had gone).
        const ranOn = (results[0] as AttachResult).threadId;
        if (line !== undefined) this.#lines.adopt(ranOn, line);
        batch.forEach((pending, i) => {
          this.#lines.bind(pending.port, ranOn);
          pending.resolve(results[i] as AttachResult);
        });
        // A kernel whose attach failed takes no room: after the launches resumed (and joined), look again.
        if (results.some((result) => result.failure !== undefined)) setImmediate(() => this.#roomMayHaveCome());
      },
      (error: unknown) => {
        this.#attached(threadId, batch.length);
        for (const pending of batch) pending.reject(attachLost(pending.task.kernelId, error));
        setImmediate(() => this.#roomMayHaveCome());
      },
    );
  }

  /** A batch placed on `threadId` has come back: its kernels are hosted now (or failed), no longer attaching. */
  #attached(threadId: number | undefined, kernels: number): void {
    if (threadId === undefined) return;
    const left = (this.#attaching.get(threadId) ?? kernels) - kernels;
    if (left > 0) this.#attaching.set(threadId, left);
    else this.#attaching.delete(threadId);
  }

  /** Kernels a worker thread hosts or is being given: what placement balances. */
  #load(threadId: number): number {
    return (this.#hosted.get(threadId) ?? 0) + (this.#attaching.get(threadId) ?? 0);
  }

  /** The worker threads of `device`'s pool. */
  threads(device: number): readonly Worker[] {
    return (this.#pools[device] as Piscina<AttachBatch, AttachBatchResult>).threads;
  }

  /** The mean event-loop utilization of `device`'s workers since the last time it was asked. */
  utilization(device: number): number {
    const threads = this.threads(device);
    let utilization = 0;
    for (const thread of threads) {
      const previous = this.#elu.get(thread.threadId);
      const now = thread.performance.eventLoopUtilization();
      utilization += (previous === undefined ? now : thread.performance.eventLoopUtilization(now, previous))
        .utilization;
      this.#elu.set(thread.threadId, now);
    }
    return threads.length === 0 ? 0 : utilization / threads.length;
  }

  /** `kernel` now runs on `threadId` (a launch, a restart, a migration): it leaves the thread it was on. */
  hosts(kernel: K, threadId: number): void {
    this.left(kernel);
    this.#threadOf.set(kernel, threadId);
    this.#hosted.set(threadId, (this.#hosted.get(threadId) ?? 0) + 1);
  }

  /** `kernel` has left its thread (it ended, or its instance failed). */
  left(kernel: K): void {
    const thread = this.#threadOf.get(kernel);
    this.#threadOf.delete(kernel);
    if (thread === undefined) return;
    this.#hosted.set(thread, Math.max(0, (this.#hosted.get(thread) ?? 1) - 1));
    this.#roomMayHaveCome();
  }

  /** The thread hosting `kernel`, if any. */
  threadOf(kernel: K): number | undefined {
    return this.#threadOf.get(kernel);
  }

  /** Every kernel `threadId` hosts. */
  kernelsOn(threadId: number): K[] {
    return [...this.#threadOf].flatMap(([kernel, thread]) => (thread === threadId ? [kernel] : []));
  }

  /** A worker of any pool, by thread id. */
  worker(threadId: number): Worker | undefined {
    return this.#pools.flatMap((pool) => pool.threads).find((thread) => thread.threadId === threadId);
  }

  /** The thread is gone (or being replaced): nothing is placed on it again. */
  markDead(threadId: number): void {
    this.#deadThreads.add(threadId);
  }

  isDead(threadId: number): boolean {
    return this.#deadThreads.has(threadId);
  }

  /** Stops every thread (the kernels have been terminated). */
  async destroy(): Promise<void> {
    // Launches still waiting for a worker with room will not get one.
    for (const pending of this.#pending.values()) {
      for (const attach of pending.splice(0)) attach.reject(new RuntimeShutDownError('launch'));
    }
    this.#pending.clear();
    await Promise.all(this.#pools.map((pool) => pool.destroy()));
    await this.#cuda?.destroy();
    // Its kernels have ended: every batch readback has settled (ending a thread with one pending would crash).
    await this.#webgpu?.destroy();
  }

  /** The WebGPU device thread, started by the first WebGPU launch. */
  #webgpuPool(): Piscina<AttachTask, AttachResult> {
    if (this.#webgpu === undefined) {
      // The driver's environment (VK_DRIVER_FILES) must be set from this thread: a worker's env is a copy.
      prepareWebGpuDriver();
      this.#webgpu = new Piscina<AttachTask, AttachResult>({
        filename: WEBGPU_DEVICE_HOST,
        minThreads: 1,
        maxThreads: 1,
        idleTimeout: Number.POSITIVE_INFINITY,
        concurrentTasksPerWorker: MAX_CUDA_KERNELS,
        // Engines park with Atomics.waitAsync on the thread's event loop; Piscina's 'sync' atomics would freeze it.
        atomics: 'disabled',
      });
      this.#webgpu.on('error', (error: Error) => {
        process.emitWarning(`ringkernel: the WebGPU device thread failed: ${error.message}`, 'RingKernelWarning');
      });
    }
    return this.#webgpu;
  }

  /** The CUDA device thread (one for every CUDA device), started by the first CUDA launch. */
  #cudaPool(): Piscina<AttachTask, AttachResult> {
    if (this.#cuda === undefined) {
      this.#cuda = new Piscina<AttachTask, AttachResult>({
        filename: CUDA_DEVICE_HOST,
        minThreads: 1,
        maxThreads: 1,
        idleTimeout: Number.POSITIVE_INFINITY,
        concurrentTasksPerWorker: MAX_CUDA_KERNELS,
        // The device thread's pump sleeps with Atomics.wait between polls; Piscina's own atomics stay out of it.
        atomics: 'disabled',
      });
      this.#cuda.on('error', (error: Error) => {
        process.emitWarning(`ringkernel: the CUDA device thread failed: ${error.message}`, 'RingKernelWarning');
      });
    }
    return this.#cuda;
  }
}
