import { Worker } from 'node:worker_threads';
import { ErrorCode } from '../../errors/codes.js';
import { RingKernelError } from '../../errors/ringkernel-error.js';
import { WebGpuError, WgslCompileError } from '../../errors/webgpu-errors.js';
import type { BatchDeadLetter, BatchEngineStats } from './batch-engine.js';
import { prepareWebGpuDriver } from './dawn-module.js';
import type {
  DeviceKernelLaunch,
  DeviceThreadCommand,
  DeviceThreadReport,
  SerializedDeviceError,
} from './device-thread-protocol.js';
import type { WebGpuAdapterDescription, WebGpuAdapterOptions } from './webgpu-adapter.js';

/** What the owner of a device thread hears about its kernels. */
export interface DeviceThreadListener {
  /** Messages a kernel gave up (handler error codes, discards, malformed frames), in input order. */
  onDeadLetters?(kernelId: string, letters: readonly BatchDeadLetter[]): void;
  /** A kernel can run no more (its device was lost or reported an error). */
  onKernelFailed?(kernelId: string, error: RingKernelError): void;
}

type Command = DeviceThreadCommand extends infer C ? (C extends { seq: number } ? Omit<C, 'seq'> : never) : never;

/** Rebuilds the typed error a device thread reported. */
function revive(error: SerializedDeviceError): RingKernelError | Error {
  if (error.code === ErrorCode.WgslCompileFailed && error.compilerMessages !== undefined) {
    return new WgslCompileError(error.kernelId ?? '?', error.compilerMessages);
  }
  if ((error.code === ErrorCode.WebGpuError || error.code === ErrorCode.WebGpuDeviceLost) && error.kind !== undefined) {
    const revived = new WebGpuError(error.kind as WebGpuError['kind'], error.operation ?? '?', '');
    revived.message = error.message;
    return revived;
  }
  if (error.code?.startsWith('RK_')) {
    const revived = new RingKernelError(error.code as RingKernelError['code'], error.message);
    revived.name = error.name;
    return revived;
  }
  return new Error(error.message);
}

/**
 * The host's end of a WebGPU device thread: a worker that owns one `GPUDevice` and runs the kernels placed on it
 * (one per adapter). Commands are control plane (launch, pause, checkpoint, stop); kernels' messages go through
 * their rings, which the thread drains in batches.
 *
 * {@link WebGpuDeviceThread.close} is the only way the thread ends: it stops every kernel (draining or discarding
 * their queues), waits for every readback, destroys the device, and the thread then exits on its own. It is never
 * terminated from outside while it may have a readback pending (that takes the process down).
 *
 * @example
 * const thread = await WebGpuDeviceThread.open({ allowFallback: true });
 * await thread.launch({ kernelId: 'echo', program, input, output, sourceId: 1 });
 * // ... producers write the input ring, consumers read the output ring ...
 * await thread.close('drain');
 */
export class WebGpuDeviceThread {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve(value: unknown): void; reject(error: unknown): void }>();
  readonly #listener: DeviceThreadListener;
  readonly #exited: Promise<number>;
  #seq = 0;
  #adapter: WebGpuAdapterDescription | undefined;
  #closed: Promise<void> | undefined;
  #exitCode: number | undefined;

  private constructor(listener: DeviceThreadListener) {
    // Environment set here reaches the driver: a worker's process.env is a copy the native side does not read.
    prepareWebGpuDriver();
    this.#listener = listener;
    this.#worker = new Worker(new URL('./device-thread-main.js', import.meta.url));
    this.#worker.on('message', (report: DeviceThreadReport) => this.#report(report));
    this.#exited = new Promise((resolve) => {
      this.#worker.once('exit', (code) => {
        this.#exitCode = code;
        const gone = new RingKernelError(ErrorCode.KernelFailed, `the WebGPU device thread exited (code ${code})`);
        for (const { reject } of this.#pending.values()) reject(gone);
        this.#pending.clear();
        resolve(code);
      });
    });
    this.#worker.on('error', (error) => {
      for (const { reject } of this.#pending.values()) reject(error);
      this.#pending.clear();
    });
  }

  /**
   * Starts a device thread and opens a device on the best adapter the options allow.
   *
   * @throws {BackendUnavailableError} without the `webgpu` package or an adapter (the thread has ended then).
   */
  static async open(
    options: WebGpuAdapterOptions = {},
    listener: DeviceThreadListener = {},
  ): Promise<WebGpuDeviceThread> {
    const thread = new WebGpuDeviceThread(listener);
    try {
      thread.#adapter = (await thread.#send({ type: 'open', adapter: options })) as WebGpuAdapterDescription;
    } catch (error) {
      await thread.close('discard');
      throw error;
    }
    return thread;
  }

  /** The adapter the device is on. */
  get adapter(): WebGpuAdapterDescription {
    return this.#adapter as WebGpuAdapterDescription;
  }

  /** The worker thread's id. */
  get threadId(): number {
    return this.#worker.threadId;
  }

  /** Resolves with the thread's exit code once it has exited. */
  get exited(): Promise<number> {
    return this.#exited;
  }

  /**
   * Compiles a kernel on the device, makes its resident buffers and starts draining its input ring.
   *
   * @throws {WgslCompileError} when its handler does not compile.
   */
  async launch(kernel: DeviceKernelLaunch): Promise<void> {
    await this.#send({ type: 'launch', kernel });
  }

  /** Stops taking the kernel's input (batches in flight finish); its state stays on the device. */
  async pause(kernelId: string): Promise<void> {
    await this.#send({ type: 'pause', kernelId });
  }

  /** Takes the kernel's input again. */
  async resume(kernelId: string): Promise<void> {
    await this.#send({ type: 'resume', kernelId });
  }

  /** The kernel's state, read back at a batch boundary. */
  async checkpoint(kernelId: string): Promise<Uint8Array> {
    return (await this.#send({ type: 'checkpoint', kernelId })) as Uint8Array;
  }

  /** Overwrites the kernel's state before its next batch. */
  async restore(kernelId: string, state: Uint8Array): Promise<void> {
    await this.#send({ type: 'restore', kernelId, state });
  }

  /** The kernel's batch counters. */
  async stats(kernelId: string): Promise<BatchEngineStats> {
    return (await this.#send({ type: 'stats', kernelId })) as BatchEngineStats;
  }

  /** Ends the kernel: its queue drained (handled) or discarded (dead-lettered); its buffers freed. */
  async stop(kernelId: string, mode: 'drain' | 'discard'): Promise<void> {
    await this.#send({ type: 'stop', kernelId, mode });
  }

  /**
   * Stops every kernel (`drain` or `discard`), settles every readback, destroys the device and lets the thread
   * exit. Idempotent; resolves once the thread has exited.
   */
  close(mode: 'drain' | 'discard' = 'drain'): Promise<void> {
    this.#closed ??= (async () => {
      if (this.#exitCode === undefined) await this.#send({ type: 'close', mode }).catch(() => {});
      await this.#exited;
    })();
    return this.#closed;
  }

  #send(command: Command): Promise<unknown> {
    if (this.#exitCode !== undefined) {
      return Promise.reject(new RingKernelError(ErrorCode.KernelFailed, 'the WebGPU device thread has exited'));
    }
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(seq, { resolve, reject });
      this.#worker.postMessage({ ...command, seq });
    });
  }

  #report(report: DeviceThreadReport): void {
    switch (report.type) {
      case 'reply': {
        const pending = this.#pending.get(report.seq);
        if (pending === undefined) return;
        this.#pending.delete(report.seq);
        if (report.ok) pending.resolve(report.value);
        else pending.reject(revive(report.error));
        return;
      }
      case 'deadLetters':
        this.#listener.onDeadLetters?.(report.kernelId, report.letters);
        return;
      case 'kernelFailed':
        this.#listener.onKernelFailed?.(report.kernelId, revive(report.error) as RingKernelError);
        return;
    }
  }
}
