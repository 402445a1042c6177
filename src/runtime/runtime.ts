import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { KernelRegistry } from '../../actors/kernel-registry.js';
import type { BackendProbe, BackendType } from '../backends/backend-type.js';
import type { MirrorStats } from '../bridge/dma-mirror.js';
import { TransferBridge } from '../bridge/transfer-bridge.js';
import type { TransferStrategy, TransferStrategyChoice } from '../bridge/transfer-strategy.js';
import { InvalidStateError, KernelNotFoundError, RuntimeShutDownError } from '../errors/runtime-errors.js';
import { CircuitBreaker, type CircuitBreakerOptions } from '../operations/circuit-breaker.js';
import { HealthChecker } from '../operations/health-checker.js';
import { KernelWatchdog } from '../operations/kernel-watchdog.js';
import { PrometheusExporter } from '../operations/prometheus-exporter.js';
import { ControlBlock } from '../wire/control-block.js';
import { alignedFrameSize, FrameHeader } from '../wire/frame-header.js';
import { createFrameRing } from '../wire/frame-ring.js';
import type { KernelStatusName } from '../wire/kernel-status.js';
import type { MessageCodec } from '../wire/message-schema.js';
import { type AttachResult, type AttachTask, ERROR_REPLY_MAX_BYTES } from '../worker/protocol.js';
import { RuntimeBuilder } from './builder.js';
import type { RuntimeConfig } from './config.js';
import { DeadLetterStream } from './dead-letters.js';
import { findKernel, type KernelDefinition } from './kernel-definition.js';
import { type CallOptions, type Dim3, KernelHandle, type KernelMetrics, type SendOptions } from './kernel-handle.js';
import { LATENCY_HISTOGRAM_BYTES } from './latency-histogram.js';

/** Options of {@link RingKernelRuntime.launch}. */
export interface LaunchOptions {
  /** The launch's name, for the runtime's by-name methods. Default: the kernel id. Unique among live kernels. */
  readonly name?: string;
  /** Frames each of the kernel's queues holds. Default: `config.defaultQueueCapacity`. */
  readonly queueCapacity?: number;
  /** Activate right after launch. Default false: a launched kernel is resident but idle (the seed's semantics). */
  readonly autoActivate?: boolean;
  /** What `send` does when the input queue is full. Default `'wait'`. */
  readonly onFull?: 'wait' | 'reject';
  /** Handle what is still queued on terminate (true, default) or dead-letter it (false). */
  readonly drainOnTerminate?: boolean;
  /** Checksum every frame (CRC32-C) on both queues. Default false. */
  readonly integrity?: boolean;
  /**
   * How the kernel's rings reach it: `direct`, `dma` (the native mirror thread) or `mapped` (reserved for CUDA).
   * Default: {@link RingKernelRuntime.transferStrategy}, detected for the backend. When `dma` is asked for and the
   * native library is missing, ringkernel says so once on stderr and the kernel runs `direct` (see its metrics).
   */
  readonly transferStrategy?: TransferStrategy;
}

/** What {@link RingKernelRuntime.shutdown} reports. */
export interface ShutdownReport {
  readonly terminated: number;
  readonly failed: number;
  readonly deadLetters: number;
  readonly durationMs: number;
}

/** Input to the runtime's constructor. @internal */
export interface RuntimeInit {
  readonly backend: BackendType;
  readonly probes: readonly BackendProbe[];
  readonly device: number;
  readonly config: RuntimeConfig;
}

const KERNEL_HOST = new URL('../worker/kernel-host.js', import.meta.url).href;

function dim3(name: string, value: Dim3): readonly [number, number, number] {
  const parts = typeof value === 'number' ? [value] : [...value];
  const dims = [parts[0] ?? 1, parts[1] ?? 1, parts[2] ?? 1] as const;
  if (parts.length > 3 || !dims.every((d) => Number.isInteger(d) && d >= 1 && d <= 2 ** 31 - 1)) {
    throw new RangeError(`${name} must be a positive integer or up to three of them, got ${JSON.stringify(value)}`);
  }
  return dims;
}

/**
 * The ringkernel runtime: launches kernels, hosts them in a pool of worker threads (Piscina; many kernels per
 * worker), and gives back a {@link KernelHandle} per launch. Build one with {@link RingKernelRuntime.builder}.
 *
 * @example
 * await using runtime = await RingKernelRuntime.builder().backend('cpu').build();
 * const averager = await runtime.launch('averager', 1, 1, { autoActivate: true });
 * const mean = await averager.call({ value: 4 });
 */
export class RingKernelRuntime {
  /** The backend in use. */
  readonly backend: BackendType;
  /** The device index on that backend. */
  readonly device: number;
  /** The effective configuration. */
  readonly config: RuntimeConfig;
  /** Why each backend was or was not chosen. */
  readonly backendProbes: readonly BackendProbe[];
  /** Every message that could not be handled or delivered. */
  readonly deadLetters = new DeadLetterStream();
  /** Kernels under hierarchical names, with wildcard lookup and watches. */
  readonly registry = new KernelRegistry();
  readonly #pool: Piscina<AttachTask, AttachResult>;
  /** Transfer strategies and the runtime's one DMA mirror thread. */
  readonly #bridge: TransferBridge;
  readonly #kernels = new Map<string, KernelHandle>();
  readonly #breakers = new Map<string, CircuitBreaker>();
  #watchdog: KernelWatchdog | undefined;
  #health: HealthChecker | undefined;
  #prometheus: PrometheusExporter | undefined;
  /** When kernels failed, most recent last. */
  readonly #failureTimes: number[] = [];
  /** Names whose launch is in progress. */
  readonly #launching = new Set<string>();
  /** Kernels hosted per worker thread, for placement. */
  readonly #hosted = new Map<number, number>();
  readonly #threadOf = new Map<KernelHandle, number>();
  /** Worker threads known to have exited (a hosted kernel's control port closed). */
  readonly #deadThreads = new Set<number>();
  #nextInstanceId = 1;
  #shutdown: Promise<ShutdownReport> | undefined;
  #terminated = 0;
  #failed = 0;

  /** The transfer strategy launches use unless they ask for another, and why (per backend). */
  get transferStrategy(): TransferStrategyChoice {
    return this.#bridge.detected;
  }

  /** The DMA mirror thread's counters (passes, sleeps, wake-up callbacks, rings), or null before any `dma` launch. */
  mirrorStats(): MirrorStats | null {
    return this.#bridge.mirrorStats();
  }

  /** Starts a runtime builder. */
  static builder(): RuntimeBuilder {
    return new RuntimeBuilder();
  }

  /** @internal — use {@link RingKernelRuntime.builder}. */
  constructor(init: RuntimeInit) {
    this.backend = init.backend;
    this.device = init.device;
    this.config = init.config;
    this.backendProbes = init.probes;
    this.#bridge = new TransferBridge(init.backend, init.config.bridgePollInterval);
    const workers = init.config.workers;
    this.#pool = new Piscina<AttachTask, AttachResult>({
      filename: KERNEL_HOST,
      minThreads: workers,
      maxThreads: workers,
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: init.config.maxKernelsPerWorker,
      // Kernels park with Atomics.waitAsync on the worker's event loop; Piscina's 'sync' atomics would freeze it.
      atomics: 'disabled',
      // Place each kernel on the worker hosting the fewest (attach tasks in flight count too).
      loadBalancer: (_task, candidates) => {
        let best = null;
        let bestLoad = Number.POSITIVE_INFINITY;
        for (const worker of candidates) {
          // A thread whose kernels saw it die may not be marked destroyed by Piscina yet: never place on it.
          if (worker.terminating || worker.destroyed || this.#deadThreads.has(worker.id)) continue;
          const load = (this.#hosted.get(worker.id) ?? 0) + worker.currentUsage;
          if (load < bestLoad && load < init.config.maxKernelsPerWorker) {
            best = worker;
            bestLoad = load;
          }
        }
        return best;
      },
    });
    // Without a listener, a worker error outside any task would crash the process. The kernels of a worker that
    // dies learn it through their control ports; this only reports the event.
    this.#pool.on('error', (error: Error) => {
      process.emitWarning(`ringkernel: a worker thread failed: ${error.message}`, 'RingKernelWarning');
    });
  }

  /**
   * Launches a kernel: allocates its ControlBlock and rings, attaches it to a worker (which loads the kernel's
   * module and starts its lifecycle actor) and resolves with its handle, status Launched — resident, not yet
   * consuming (`activate()` it, or pass `autoActivate`).
   *
   * @throws {KernelNotFoundError} for an unknown kernel id; {@link InvalidStateError} when a live kernel already
   * has the launch's name; `TypeError`/`RangeError` on bad sizes or options.
   */
  async launch<InIn, InView, OutIn, OutView, State>(
    kernel: string | KernelDefinition<InIn, InView, OutIn, OutView, State>,
    gridSize: Dim3 = 1,
    blockSize: Dim3 = 1,
    options: LaunchOptions = {},
  ): Promise<KernelHandle<InIn, OutView>> {
    if (this.#shutdown !== undefined) throw new RuntimeShutDownError('launch');
    const definition = typeof kernel === 'string' ? findKernel(kernel) : kernel;
    const name = options.name ?? definition.id;
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('options.name must be a non-empty string');
    const existing = this.#kernels.get(name);
    if (existing !== undefined) throw new InvalidStateError(name, 'launch', existing.status, 'Launched');
    if (this.#launching.has(name)) throw new InvalidStateError(name, 'launch', 'Created', 'Launched');
    const grid = dim3('gridSize', gridSize);
    const block = dim3('blockSize', blockSize);
    const capacity = options.queueCapacity ?? this.config.defaultQueueCapacity;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 20) {
      throw new RangeError(`options.queueCapacity must be an integer in [1, 1048576], got ${capacity}`);
    }
    const integrity = options.integrity ?? false;
    const instanceId = this.#nextInstanceId++;
    const control = ControlBlock.create(instanceId);
    const histogram = new SharedArrayBuffer(LATENCY_HISTOGRAM_BYTES);
    const input = this.#ring(definition.input, capacity, integrity, 0);
    const output = this.#ring(definition.output, capacity, integrity, ERROR_REPLY_MAX_BYTES);
    const transfer = this.#bridge.open(input, output, options.transferStrategy);
    const { port1, port2 } = new MessageChannel();
    // Reserve the name before the first await, so two concurrent launches cannot both take it.
    this.#launching.add(name);
    let attached: AttachResult;
    try {
      attached = await this.#pool.run(
        {
          kernelId: definition.id,
          moduleUrl: definition.moduleUrl,
          instanceId,
          controlBlock: control.buffer,
          histogram,
          input: transfer.kernelInput,
          output: transfer.kernelOutput,
          port: port2,
          enableTelemetry: this.config.enableTelemetry,
        },
        { transferList: [port2] },
      );
    } catch (error) {
      port1.close();
      transfer.release();
      throw error;
    } finally {
      this.#launching.delete(name);
    }
    const handle = new KernelHandle<InIn, OutView>({
      name,
      definition,
      instanceId,
      control,
      histogram: new Uint32Array(histogram),
      input,
      output,
      transfer,
      port: port1,
      threadId: attached.threadId,
      gridSize: grid,
      blockSize: block,
      onFull: options.onFull ?? 'wait',
      queueCapacity: capacity,
      drainOnTerminate: options.drainOnTerminate ?? true,
      terminationTimeout: this.config.terminationTimeout,
      onDeadLetter: (letter) => this.deadLetters.publish(letter),
      onExit: (exited) => this.#release(exited),
      onWorkerExit: (threadId) => this.#deadThreads.add(threadId),
    });
    this.#kernels.set(name, handle as KernelHandle);
    this.#threadOf.set(handle as KernelHandle, attached.threadId);
    this.#hosted.set(attached.threadId, (this.#hosted.get(attached.threadId) ?? 0) + 1);
    if (options.autoActivate) await handle.activate();
    return handle;
  }

  /**
   * A ring sized for `capacity` frames of the codec's message (fixed schemas) or of modest raw payloads (bytes,
   * up to `defaultMessageSize`), plus room for one frame of `reserve` bytes (an output ring's error reply).
   */
  #ring(codec: MessageCodec<unknown, unknown>, capacity: number, integrity: boolean, reserve: number) {
    const fixed = (codec as { size?: unknown }).size;
    if (typeof fixed === 'number') {
      const maxPayloadSize = Math.max(fixed, reserve);
      const capacityBytes = capacity * alignedFrameSize(fixed) + (reserve > fixed ? alignedFrameSize(reserve) : 0) + 8;
      return createFrameRing({ capacityBytes, maxPayloadSize, integrity });
    }
    const maxPayloadSize = this.config.defaultMessageSize - FrameHeader.SIZE;
    // Raw bytes: room for `capacity` modest frames, and never less than two of the largest.
    const capacityBytes = Math.max(capacity * alignedFrameSize(64), 2 * alignedFrameSize(maxPayloadSize) + 8);
    return createFrameRing({ capacityBytes, maxPayloadSize, integrity });
  }

  #release(handle: KernelHandle): void {
    // The mirror's final copy brings the kernel's last outputs to the host ring, then it lets go of the rings.
    handle.transfer.release();
    if (this.#kernels.get(handle.name) === handle) this.#kernels.delete(handle.name);
    const thread = this.#threadOf.get(handle);
    this.#threadOf.delete(handle);
    if (thread !== undefined) this.#hosted.set(thread, Math.max(0, (this.#hosted.get(thread) ?? 1) - 1));
    if (handle.status === 'Failed') {
      this.#failed++;
      this.#failureTimes.push(performance.now());
      if (this.#failureTimes.length > 1000) this.#failureTimes.shift();
    } else {
      this.#terminated++;
    }
  }

  /** How many kernels failed in the last `ms` milliseconds (for health checks). */
  recentFailures(ms: number): number {
    const since = performance.now() - ms;
    return this.#failureTimes.filter((at) => at >= since).length;
  }

  /** The runtime's health checker (one per runtime), with its built-in checks registered. */
  healthChecker(): HealthChecker {
    this.#health ??= new HealthChecker(this);
    return this.#health;
  }

  /**
   * Kernel-to-kernel: wires `from`'s outputs straight into `to`'s input over a ring of their own — worker to
   * worker, never through this thread. Call it more than once for fan-out (every link gets each
   * output) and fan-in (`to` merges its input and all its links fairly, batch by batch). Backpressure runs
   * upstream: when a link is full, `from` holds its output and stops taking input. Answers to `call`s still go
   * back to the caller.
   *
   * @throws {TypeError} when `from`'s output type is not `to`'s input type.
   * @example
   * await runtime.connect('parse', 'enrich');
   * await runtime.connect('enrich', 'store');
   */
  async connect(
    from: string | KernelHandle,
    to: string | KernelHandle,
    options: { readonly queueCapacity?: number } = {},
  ): Promise<void> {
    const source = typeof from === 'string' ? this.kernel(from) : from;
    const target = typeof to === 'string' ? this.kernel(to) : to;
    if (source === target) throw new TypeError(`kernel '${source.name}' cannot be connected to itself`);
    const produced = source.outputCodec;
    const accepted = target.inputCodec;
    if (produced.typeId !== accepted.typeId) {
      throw new TypeError(
        `cannot connect '${source.name}' to '${target.name}': it outputs ${produced.name} and '${target.name}' takes ${accepted.name}`,
      );
    }
    const capacity = options.queueCapacity ?? this.config.defaultQueueCapacity;
    const memory = this.#ring(produced, capacity, target.inputMemory.integrity, 0);
    // Consumer first: frames may flow as soon as the producer has the ring.
    await target.link({ command: 'LINK_IN', memory });
    await source.link({ command: 'LINK_OUT', memory, wake: target.transfer.kernelInput.signal, types: undefined });
  }

  /**
   * The runtime's circuit breaker named `name` (created with `options` on first use, then shared). Pass it to
   * `call` / `send` as `breaker` to guard them.
   *
   * @example
   * const breaker = runtime.circuitBreaker('scoring', { failureThreshold: 3, windowMs: 1000 });
   * await handle.call(request, { breaker, timeout: 100 });
   */
  circuitBreaker(name = 'default', options: Omit<CircuitBreakerOptions, 'name'> = {}): CircuitBreaker {
    let breaker = this.#breakers.get(name);
    if (breaker === undefined) {
      breaker = new CircuitBreaker({ ...options, name });
      this.#breakers.set(name, breaker);
    }
    return breaker;
  }

  /** Every circuit breaker made with {@link RingKernelRuntime.circuitBreaker}. */
  circuitBreakers(): CircuitBreaker[] {
    return [...this.#breakers.values()];
  }

  /** The runtime's Prometheus exporter (one per runtime). */
  prometheusExporter(): PrometheusExporter {
    this.#prometheus ??= new PrometheusExporter(this);
    return this.#prometheus;
  }

  /** The runtime's kernel watchdog (one per runtime): finds kernels whose input waits while they do not beat. */
  kernelWatchdog(): KernelWatchdog {
    this.#watchdog ??= new KernelWatchdog(() => this.kernels());
    return this.#watchdog;
  }

  /** The live kernel launched under `name`. @throws {KernelNotFoundError} when there is none. */
  kernel(name: string): KernelHandle {
    const handle = this.#kernels.get(name);
    if (handle === undefined) {
      throw new KernelNotFoundError(name, 'no live kernel is launched under this name');
    }
    return handle;
  }

  /** Every live kernel. */
  kernels(): KernelHandle[] {
    return [...this.#kernels.values()];
  }

  /** {@link KernelHandle.activate} by name. */
  activate(name: string): Promise<void> {
    return this.kernel(name).activate();
  }
  /** {@link KernelHandle.deactivate} by name. */
  deactivate(name: string): Promise<void> {
    return this.kernel(name).deactivate();
  }
  /** {@link KernelHandle.terminate} by name. */
  terminate(name: string, options?: { readonly drain?: boolean }): Promise<void> {
    return this.kernel(name).terminate(options);
  }
  /** {@link KernelHandle.send} by name. */
  send(name: string, message: unknown, options?: SendOptions): Promise<void> {
    const handle = this.#kernels.get(name);
    if (handle === undefined) {
      const error = new KernelNotFoundError(name, 'no live kernel is launched under this name');
      this.deadLetters.publish({
        kernel: name,
        reason: 'unknown-kernel',
        error: { name: error.name, message: error.message, code: error.code },
        messageId: 0,
        correlationId: 0,
        typeId: 0,
        payload: message instanceof Uint8Array ? message.slice() : new Uint8Array(0),
        at: new Date(),
      });
      return Promise.reject(error);
    }
    return handle.send(message, options);
  }
  /** {@link KernelHandle.receive} by name. */
  receive(name: string, timeout?: number): Promise<unknown> {
    return this.kernel(name).receive(timeout);
  }
  /** {@link KernelHandle.call} by name. */
  call(name: string, request: unknown, options?: CallOptions): Promise<unknown> {
    return this.kernel(name).call(request, options);
  }
  /** {@link KernelHandle.status} by name. */
  status(name: string): KernelStatusName {
    return this.kernel(name).status;
  }
  /** {@link KernelHandle.metrics} by name. */
  metrics(name: string): KernelMetrics {
    return this.kernel(name).metrics();
  }

  /**
   * Terminates every kernel (draining as each was launched to), then stops the worker pool. Idempotent. After
   * it resolves no worker thread is left and the process can exit.
   */
  shutdown(): Promise<ShutdownReport> {
    this.#shutdown ??= (async () => {
      const started = performance.now();
      await Promise.allSettled(
        this.kernels().map(async (handle) => {
          try {
            await handle[Symbol.asyncDispose]();
          } catch {
            handle.fail('shut down while terminating');
          }
        }),
      );
      this.#watchdog?.stop();
      this.#health?.stop();
      await this.#pool.destroy();
      await this.#bridge.close();
      return {
        terminated: this.#terminated,
        failed: this.#failed,
        deadLetters: this.deadLetters.total,
        durationMs: Math.round(performance.now() - started),
      };
    })();
    return this.#shutdown;
  }

  /** Shuts the runtime down (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}
