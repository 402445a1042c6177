import { totalmem } from 'node:os';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { createActor } from 'xstate';
import type { BackendProbe, BackendType } from '../backends/backend-type.js';
import { STICKY_CU_RESULTS } from '../backends/cuda/cu-result.js';
import { type CudaDeviceInfo, requireCudaDriver } from '../backends/cuda/driver.js';
import type { MirrorStats } from '../bridge/dma-mirror.js';
import { type KernelTransfer, TransferBridge } from '../bridge/transfer-bridge.js';
import type { TransferStrategy, TransferStrategyChoice } from '../bridge/transfer-strategy.js';
import type { ClusterNode } from '../cluster/cluster-node.js';
import type { ClusterOptions } from '../cluster/cluster-options.js';
import type { ClusterRuntimePort, HostedKernel, KernelRef } from '../cluster/cluster-ports.js';
import { type KernelCheckpoint, preloadQueuedFrames } from '../devices/checkpoint.js';
import { CudaDeviceMemory } from '../devices/cuda-device-memory.js';
import { cudaTopology } from '../devices/cuda-topology.js';
import { KernelMigrator, type MigrationReport } from '../devices/kernel-migrator.js';
import {
  type DeviceLoad,
  type DeviceSelector,
  type LoadBalancingStrategy,
  MultiGpuCoordinator,
} from '../devices/multi-gpu-coordinator.js';
import { type DeviceInfo, type DeviceKind, type GpuTopology, measureHostLink } from '../devices/topology.js';
import { ErrorNumber } from '../errors/codes.js';
import { CudaCompileError, CudaDeviceLostError, CudaError } from '../errors/cuda-errors.js';
import { PlacementError, StateSnapshotError } from '../errors/device-errors.js';
import {
  BackendUnavailableError,
  InvalidStateError,
  KernelFailedError,
  KernelModuleError,
  KernelNotFoundError,
  LinkTypeMismatchError,
  NotAcceptingWorkError,
  RuntimeShutDownError,
} from '../errors/runtime-errors.js';
import { KERNEL_MODULE_FAILED } from '../executor/kernel-module.js';
import {
  type AttachResult,
  type AttachTask,
  type DeadLetterReason,
  ERROR_REPLY_MAX_BYTES,
} from '../executor/protocol.js';
import { findKernel, isEntryModule, type KernelDefinition } from '../kernel/kernel-definition.js';
import { LATENCY_HISTOGRAM_BYTES, LatencyHistogram } from '../kernel/latency-histogram.js';
import { RESTORE_FAILED } from '../kernel/state-codec.js';
import { CircuitBreaker, type CircuitBreakerOptions } from '../operations/circuit-breaker.js';
import {
  type DegradationLevel,
  DegradationManager,
  type DegradationOptions,
  type DegradationSignals,
} from '../operations/degradation-manager.js';
import { HealthChecker } from '../operations/health-checker.js';
import { KernelWatchdog, type WatchdogRecovery } from '../operations/kernel-watchdog.js';
import { GpuMemoryDashboard } from '../operations/memory-dashboard.js';
import { PrometheusExporter, type PrometheusExporterOptions } from '../operations/prometheus-exporter.js';
import { Supervisor, type SupervisorOptions } from '../supervision/supervisor.js';
import type { RuntimeTracing } from '../telemetry/runtime-tracing.js';
import { LifecycleTransition } from '../telemetry/span-record.js';
import { ControlBlock } from '../wire/control-block.js';
import { alignedFrameSize, FrameHeader } from '../wire/frame-header.js';
import { createFrameRing, type FrameRingMemory } from '../wire/frame-ring.js';
import type { KernelStatusName } from '../wire/kernel-status.js';
import type { MessageCodec } from '../wire/message-schema.js';
// biome-ignore lint/suspicious/noImportCycles: the one allowed cycle, builder ⇄ runtime (see builder.ts).
import { RuntimeBuilder } from './builder.js';
import type { RuntimeConfig } from './config.js';
import { DeadLetterStream } from './dead-letters.js';
import {
  type CallOptions,
  type Dim3,
  KernelHandle,
  type KernelMetrics,
  type Refusal,
  type SendOptions,
} from './kernel-handle.js';
import { KernelRegistry } from './kernel-registry.js';
import { createLogger, type RuntimeLogger } from './logger.js';
import type { PresetName } from './presets.js';
import { type RuntimeLifecycleState, runtimeLifecycle } from './runtime-lifecycle.js';

/** Options of {@link RingKernelRuntime.launch}. */
export interface LaunchOptions {
  /**
   * GPU backends: the launch's grid size (blocks), when `launch(kernel, options)` is called without the
   * positional sizes. Default 1. CPU kernels ignore it.
   */
  readonly gridSize?: Dim3;
  /** GPU backends: the launch's block size, as the positional form takes it. Default 1. CPU kernels ignore it. */
  readonly blockSize?: Dim3;
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
   * What a handler that throws does to its kernel. `'dead-letter'` (default): the message is dead-lettered (and a
   * call answered with the error) and the kernel goes on. `'fail'`: the same, then the kernel fails — let it
   * crash, for a {@link Supervisor} to restart with fresh state.
   */
  readonly onHandlerError?: 'dead-letter' | 'fail';
  /**
   * How the kernel's rings reach it: `direct`, `dma` (the native mirror thread) or `mapped` (reserved for CUDA).
   * Default: {@link RingKernelRuntime.transferStrategy}, detected for the backend. When `dma` is asked for and the
   * native library is missing, ringkernel says so once on stderr and the kernel runs `direct` (see its metrics).
   */
  readonly transferStrategy?: TransferStrategy;
  /**
   * The device to place the kernel on (`0 … config.devices − 1`). Default: the runtime's
   * {@link MultiGpuCoordinator} picks one (its strategy, default LeastLoaded; see `colocateWith`).
   */
  readonly device?: number;
  /** Place the kernel on the device of this live kernel (when no `device` is given). */
  readonly colocateWith?: string;
  /**
   * Start from a checkpoint (`handle.checkpoint()` of a kernel of the same definition): its state instead of
   * `init()`, and the messages it had queued, first in the new input queue, in order. The queue must hold them
   * (`RangeError` otherwise) and match the checkpoint's `integrity` (`TypeError`).
   */
  readonly restore?: KernelCheckpoint;
}

/** What {@link RingKernelRuntime.shutdown} (or `completeShutdown`) reports: the runtime's whole life in figures. */
export interface ShutdownReport {
  /** From build to Stopped, ms. */
  readonly uptimeMs: number;
  /** Kernels launched over the runtime's life. */
  readonly kernelsLaunched: number;
  /** Kernels that ended Terminated / Failed. */
  readonly terminated: number;
  readonly failed: number;
  /** Kernel restarts by supervisors (and the watchdog). */
  readonly restarts: number;
  /** Messages the kernels handled without error, whose handler threw, and dropped (malformed, discarded). */
  readonly messagesProcessed: number;
  readonly messagesFailed: number;
  readonly messagesDropped: number;
  /** Every message dead-lettered, and by reason. */
  readonly deadLetters: number;
  readonly deadLettersByReason: Readonly<Partial<Record<DeadLetterReason, number>>>;
  /** Messages refused by load shedding. */
  readonly shedMessages: number;
  /** Times a circuit breaker opened. */
  readonly circuitTrips: number;
  /** Health checks run. */
  readonly healthChecks: number;
  /** Stale kernels the watchdog acted on. */
  readonly watchdogRecoveries: number;
  /** Kernels moved between devices, and checkpoints taken (by `handle.checkpoint()` and by migrations). */
  readonly migratedKernels: number;
  readonly checkpoints: number;
  /** Whether a drain finished with no work left (undefined: no drain was asked for). */
  readonly drained: boolean | undefined;
  /** How long the shutdown itself took, ms. */
  readonly durationMs: number;
}

/** What {@link RingKernelRuntime.drain} reports. */
export interface DrainReport {
  /** True when all work completed within the timeout. */
  readonly drained: boolean;
  /** Work left when the drain returned (see `KernelHandle.pendingWork`). */
  readonly pendingWork: number;
  readonly waitedMs: number;
}

/**
 * The runtime's lifecycle state (the seed's `LifecycleState`).
 *
 * @example
 * if (!runtime.state().isAcceptingWork()) return reply(503);
 */
export interface RuntimeState {
  readonly value: RuntimeLifecycleState;
  /** Only a Running runtime takes new work (launches, sends, calls). */
  isAcceptingWork(): boolean;
}

/** Input to the runtime's constructor. @internal */
export interface RuntimeInit {
  /** Start at once (Initializing → Running); default true. */
  readonly start?: boolean;
  /** The builder preset applied, if any. */
  readonly preset?: PresetName | undefined;
  readonly backend: BackendType;
  readonly probes: readonly BackendProbe[];
  readonly device: number;
  readonly config: RuntimeConfig;
  /** Tracing, when the builder turned it on. */
  readonly tracing?: RuntimeTracing | undefined;
}

/** A CUDA device lost to the process: see {@link RingKernelRuntime.lostDevices}. */
export interface LostCudaDevice {
  /** The device's ordinal. */
  readonly device: number;
  /** The sticky error a kernel there failed with, e.g. `'CUDA_ERROR_ILLEGAL_ADDRESS'`. */
  readonly cudaErrorName: string;
  /** When the runtime learned of it. */
  readonly at: Date;
}

const KERNEL_HOST = new URL('../worker/kernel-host.js', import.meta.url).href;
const CUDA_DEVICE_HOST = new URL('../backends/cuda/cuda-device-host.js', import.meta.url).href;
/** How many CUDA kernels the device thread may host (each is a resident launch plus a few ring polls). */
const MAX_CUDA_KERNELS = 1024;

/** The machine's CUDA devices, as the driver describes them (the runtime's devices on the CUDA backend). */
function cudaDevices(): CudaDeviceInfo[] {
  const driver = requireCudaDriver();
  driver.init();
  return Array.from({ length: driver.deviceCount() }, (_, ordinal) => driver.deviceInfo(ordinal));
}

/** Rebuilds the typed error of a CUDA attach that failed in the device thread. */
function cudaAttachError(failure: NonNullable<AttachResult['failure']>, kernelId: string): Error {
  if (failure.deviceLost !== undefined) {
    const { device, cudaErrorName } = failure.deviceLost;
    return new CudaDeviceLostError(device, cudaErrorName, `kernel '${kernelId}' cannot be launched there`);
  }
  if (failure.compiler !== undefined) return new CudaCompileError(kernelId, failure.compiler, failure.log ?? '');
  if (failure.operation !== undefined) {
    return new CudaError(failure.operation, failure.cudaResult ?? 0, failure.cudaErrorName ?? 'CUDA_ERROR_UNKNOWN');
  }
  const error = new KernelFailedError(kernelId, `the CUDA device thread could not launch it: ${failure.error.message}`);
  return error;
}

function ringBytes(memory: FrameRingMemory): number {
  return memory.ring.byteLength + memory.signal.byteLength;
}

/** Whether launch's second argument is its options object (not a grid size: a number or an array). */
function isLaunchOptions(value: Dim3 | LaunchOptions): value is LaunchOptions {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

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
  /** The builder preset this runtime was built with, if any. */
  readonly preset: PresetName | undefined;
  /** The runtime's log (control-plane events, at `config.logLevel`). */
  readonly log: RuntimeLogger;
  /** Every message that could not be handled or delivered. */
  readonly deadLetters = new DeadLetterStream();
  /** Kernels under hierarchical names, with wildcard lookup and watches. */
  readonly registry = new KernelRegistry();
  /** OpenTelemetry tracing (`builder().tracing()`): `flush()`, `stats()`. Undefined when tracing is off. */
  readonly tracing: RuntimeTracing | undefined;
  /** Transfer strategies and the runtime's one DMA mirror thread. */
  readonly #bridge: TransferBridge;
  /** One worker pool per device (CPU virtual devices: each a group of the workers). */
  readonly #pools: Piscina<AttachTask, AttachResult>[] = [];
  #cuda: Piscina<AttachTask, AttachResult> | undefined;
  readonly #devices: DeviceInfo[] = [];
  /** Each worker's event-loop utilization at the previous load measurement. */
  readonly #elu = new Map<number, EventLoopUtilization>();
  /** CUDA devices lost to a sticky error: nothing more is launched there (CUDA kernels go elsewhere). */
  readonly #lostDevices = new Map<number, LostCudaDevice>();
  #coordinator: MultiGpuCoordinator | undefined;
  /** The CUDA topology, measured on the first `gpuTopology()` (CUDA backend). */
  #cudaTopology: GpuTopology | undefined;
  /** Reads CUDA devices' memory (`cuMemGetInfo`) for placement and metrics; opened on first use. */
  #cudaMemory: CudaDeviceMemory | undefined;
  #migrator: KernelMigrator | undefined;
  #migrations = 0;
  #checkpoints = 0;
  readonly #kernels = new Map<string, KernelHandle>();
  readonly #breakers = new Map<string, CircuitBreaker>();
  #watchdog: KernelWatchdog | undefined;
  /** Supervises the kernels the watchdog moves off a replaced worker. */
  #watchdogSupervisor: Supervisor | undefined;
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
  #restarts = 0;
  readonly #builtAt = performance.now();
  readonly #lifecycle = createActor(runtimeLifecycle).start();
  #launched = 0;
  /** Counters of kernels that have ended, added up as each one leaves. */
  readonly #ended = { processed: 0, failed: 0, dropped: 0 };
  #drained: boolean | undefined;
  /** What every kernel admits: the lowest priority, and how a refusal is reported (drain, load shedding). */
  #admission: { minPriority: number; refusal: Refusal | undefined } = { minPriority: 0, refusal: undefined };
  /** Load shedding's floor, kept apart so a drain's "nothing" does not forget it. */
  #shedding: { minPriority: number; refusal: Refusal | undefined } = { minPriority: 0, refusal: undefined };
  #shed = 0;
  #degradation: DegradationManager | undefined;
  #lastLoad = { processed: 0, failed: 0 };
  readonly #memory = new GpuMemoryDashboard();
  #signalHandlers: (() => void) | undefined;
  readonly #supervisors = new Set<Supervisor>();
  /** The cluster this runtime is a node of (`builder().cluster()`), if any. */
  #cluster: ClusterNode | undefined;
  /** Told when a kernel is launched or has ended (the cluster node serves and registers them). */
  readonly #kernelWatchers = new Set<(event: { type: 'launched' | 'ended'; kernel: HostedKernel }) => void>();

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
    this.preset = init.preset;
    this.log = createLogger(init.config.logLevel);
    this.deadLetters.on('deadLetter', (letter) =>
      this.log.debug(`dead letter from '${letter.kernel}' (${letter.reason}): ${letter.error.message}`),
    );
    this.tracing = init.tracing;
    this.tracing?.trackMemory(this.#memory);
    this.#bridge = new TransferBridge(init.backend, init.config.bridgePollInterval);
    // CUDA: the machine's GPUs are the devices (each also gets CPU workers, for kernels with no cuda part).
    const gpus = init.backend === 'cuda' ? cudaDevices() : undefined;
    const devices = gpus?.length ?? init.config.devices;
    const budgetMB = init.config.deviceMemoryMB || Math.floor(totalmem() / 2 ** 20 / devices);
    for (let device = 0; device < devices; device++) {
      // The workers split as evenly as can be: the first `workers % devices` devices get one more.
      const workers = Math.max(
        1,
        Math.floor(init.config.workers / devices) + (device < init.config.workers % devices ? 1 : 0),
      );
      this.#pools.push(this.#createPool(init.config, workers));
      const gpu = gpus?.[device];
      this.#devices.push(
        gpu === undefined
          ? {
              id: device,
              name: `cpu:${device}`,
              kind: 'cpu',
              memoryMB: budgetMB,
              computeUnits: workers,
              workerThreadIds: [],
            }
          : {
              id: device,
              name: gpu.name,
              kind: 'cuda',
              memoryMB: Math.floor(Number(gpu.totalMemoryBytes / 1_048_576n)),
              computeUnits: gpu.multiprocessorCount,
              workerThreadIds: [],
            },
      );
    }
    if (init.start !== false) this.#lifecycle.send({ type: 'START' });
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

  #createPool(config: RuntimeConfig, workers: number): Piscina<AttachTask, AttachResult> {
    const pool = new Piscina<AttachTask, AttachResult>({
      filename: KERNEL_HOST,
      minThreads: workers,
      maxThreads: workers,
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: config.maxKernelsPerWorker,
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
          if (load < bestLoad && load < config.maxKernelsPerWorker) {
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
    return pool;
  }

  /** The lifecycle state, and whether new work is accepted. */
  state(): RuntimeState {
    const value = this.#lifecycle.getSnapshot().value as RuntimeLifecycleState;
    return { value, isAcceptingWork: () => value === 'Running' };
  }

  /**
   * Initializing → Running (a runtime built with `deferStart()`); a Running runtime stays Running.
   * @throws {RuntimeShutDownError} once it is stopping; {@link NotAcceptingWorkError} while draining.
   */
  start(): void {
    const state = this.state().value;
    if (state === 'Initializing') this.#lifecycle.send({ type: 'START' });
    else if (state === 'Stopping' || state === 'Stopped') throw new RuntimeShutDownError('start');
    else if (state === 'Draining') throw new NotAcceptingWorkError('start', state);
  }

  #checkAccepting(operation: string): void {
    const state = this.state().value;
    if (state === 'Running') return;
    if (state === 'Stopping' || state === 'Stopped' || this.#shutdown !== undefined) {
      throw new RuntimeShutDownError(operation);
    }
    throw new NotAcceptingWorkError(operation, state);
  }

  /**
   * Running → Draining: new work is refused with {@link NotAcceptingWorkError} (launches, sends, calls; each
   * refused message dead-lettered as `not-accepting-work`), and existing work completes — queued messages are
   * handled, calls answered, kernel-to-kernel pipelines emptied. Resolves when nothing is left or after
   * `timeoutMs`, saying which. Then call {@link RingKernelRuntime.completeShutdown}.
   *
   * @example
   * const { drained } = await runtime.drain(30_000);
   * const report = await runtime.completeShutdown();
   */
  async drain(timeoutMs = 30_000): Promise<DrainReport> {
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) {
      throw new RangeError(`drain timeout must be a non-negative number of ms, got ${timeoutMs}`);
    }
    const state = this.state().value;
    if (state === 'Stopping' || state === 'Stopped') throw new RuntimeShutDownError('drain');
    if (state !== 'Draining') this.#lifecycle.send({ type: 'DRAIN' });
    this.#applyAdmission();
    const started = performance.now();
    let pendingWork = 0;
    for (;;) {
      pendingWork = this.kernels().reduce((sum, handle) => sum + handle.pendingWork, 0);
      if (pendingWork === 0 || performance.now() - started >= timeoutMs) break;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    this.#drained = pendingWork === 0;
    return { drained: this.#drained, pendingWork, waitedMs: Math.round(performance.now() - started) };
  }

  /**
   * The runtime's degradation manager (one per runtime, made with `options` on first use): a level from Normal
   * to Critical driven by queue pressure, memory pressure, error rate and open breakers, shedding messages by
   * priority.
   */
  degradationManager(options: DegradationOptions = {}): DegradationManager {
    this.#degradation ??= new DegradationManager(
      {
        measure: () => this.#measureLoad(),
        shedBelow: (minPriority, refuse) => {
          this.#shedding = {
            minPriority,
            refusal:
              refuse === undefined
                ? undefined
                : (kernel, priority) => {
                    this.#shed++;
                    return { error: refuse(kernel, priority), reason: 'load-shed' };
                  },
          };
          this.#applyAdmission();
        },
      },
      options,
    );
    this.#degradation.on('change', ({ from, to }) => this.log.warn(`degradation ${from} → ${to}`));
    return this.#degradation;
  }

  /** The degradation level: the manager's, or Normal when there is none. */
  degradationLevel(): DegradationLevel {
    return this.#degradation?.level() ?? 'Normal';
  }

  /** The degradation signals, measured now. */
  #measureLoad(): DegradationSignals {
    let queuePressure = 0;
    let processed = 0;
    let failed = 0;
    for (const handle of this.#kernels.values()) {
      const metrics = handle.metrics();
      queuePressure = Math.max(queuePressure, metrics.inputQueueDepth / metrics.inputQueueCapacity);
      processed += metrics.messagesProcessed;
      failed += metrics.messagesFailed;
    }
    const handled = processed - this.#lastLoad.processed + (failed - this.#lastLoad.failed);
    const errorRate = handled > 0 ? Math.max(0, failed - this.#lastLoad.failed) / handled : 0;
    this.#lastLoad = { processed, failed };
    const breakers = this.circuitBreakers();
    const open = breakers.filter((breaker) => breaker.state !== 'Closed').length;
    return {
      queuePressure: Math.min(1, queuePressure),
      memoryPressure: this.gpuMemoryDashboard().memoryPressure(),
      errorRate,
      openBreakers: breakers.length === 0 ? 0 : open / breakers.length,
    };
  }

  /** The runtime's memory dashboard (one per runtime): its rings and control blocks by kind, and pressure. */
  gpuMemoryDashboard(): GpuMemoryDashboard {
    return this.#memory;
  }

  #applyAdmission(): void {
    const state = this.state().value;
    this.#admission =
      state === 'Running'
        ? this.#shedding
        : {
            minPriority: 256,
            refusal: (kernel) => ({
              error: new NotAcceptingWorkError(`send to kernel '${kernel}'`, this.state().value),
              reason: 'not-accepting-work',
            }),
          };
    for (const handle of this.#kernels.values()) handle.admit(this.#admission.minPriority, this.#admission.refusal);
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
    options?: LaunchOptions,
  ): Promise<KernelHandle<InIn, OutView>>;
  async launch<InIn, InView, OutIn, OutView, State>(
    kernel: string | KernelDefinition<InIn, InView, OutIn, OutView, State>,
    gridSize: Dim3,
    blockSize?: Dim3,
    options?: LaunchOptions,
  ): Promise<KernelHandle<InIn, OutView>>;
  async launch<InIn, InView, OutIn, OutView, State>(
    kernel: string | KernelDefinition<InIn, InView, OutIn, OutView, State>,
    sizesOrOptions: Dim3 | LaunchOptions = 1,
    positionalBlockSize: Dim3 = 1,
    positionalOptions: LaunchOptions = {},
  ): Promise<KernelHandle<InIn, OutView>> {
    // launch(kernel, options) — the sizes, which only GPU backends use, inside the options — or the positional
    // launch(kernel, gridSize, blockSize, options).
    const byOptions = isLaunchOptions(sizesOrOptions);
    const options: LaunchOptions = byOptions ? sizesOrOptions : positionalOptions;
    const gridSize: Dim3 = byOptions ? (options.gridSize ?? 1) : sizesOrOptions;
    const blockSize: Dim3 = byOptions ? (options.blockSize ?? 1) : positionalBlockSize;
    this.#checkAccepting('launch');
    const definition = typeof kernel === 'string' ? findKernel(kernel) : kernel;
    if (isEntryModule(definition.moduleUrl)) {
      throw new KernelModuleError(
        { id: definition.id, moduleUrl: definition.moduleUrl },
        "it is the program's entry module. Workers import a kernel's module to find the kernel, so each would run the whole program again. Move the kernel into a module of its own (for example kernels/" +
          `${definition.id}.js), export it, and import it from here; a bundled app bundles that module as an entry of its own and passes its URL as the kernel's \`module\``,
      );
    }
    const name = options.name ?? definition.id;
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('options.name must be a non-empty string');
    const existing = this.#kernels.get(name);
    const taken = (state: string): InvalidStateError =>
      new InvalidStateError(
        name,
        'launch',
        state,
        'Launched',
        `and the name '${name}' is taken while it lives: pass { name } to launch another instance of kernel '${definition.id}'`,
      );
    if (existing !== undefined) throw taken(existing.status);
    if (this.#launching.has(name)) throw taken('Created');
    const grid = dim3('gridSize', gridSize);
    const block = dim3('blockSize', blockSize);
    const capacity = options.queueCapacity ?? this.config.defaultQueueCapacity;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 20) {
      throw new RangeError(`options.queueCapacity must be an integer in [1, 1048576], got ${capacity}`);
    }
    const integrity = options.integrity ?? false;
    const onHandlerError = options.onHandlerError ?? 'dead-letter';
    if (onHandlerError !== 'dead-letter' && onHandlerError !== 'fail') {
      throw new TypeError(
        `options.onHandlerError must be 'dead-letter' or 'fail', got ${JSON.stringify(onHandlerError)}`,
      );
    }
    const failOnHandlerError = onHandlerError === 'fail';
    const restore = options.restore;
    if (restore !== undefined && restore.kernelId !== definition.id) {
      throw new TypeError(`options.restore is a checkpoint of kernel '${restore.kernelId}', not '${definition.id}'`);
    }
    if (restore !== undefined && restore.queued.frames > 0 && restore.queued.integrity !== integrity) {
      throw new TypeError(
        `options.restore carries frames from a ring ${restore.queued.integrity ? 'with' : 'without'} integrity checksums: launch with integrity: ${restore.queued.integrity}`,
      );
    }
    // On the CUDA backend a kernel with a cuda part runs on its GPU; every other kernel runs on CPU workers.
    const onCuda = this.backend === 'cuda' && definition.cuda !== undefined;
    if (!onCuda && definition.cpu === undefined) {
      throw new BackendUnavailableError(
        'cuda',
        `kernel '${definition.id}' has only a CUDA handler, and this runtime's backend is ${this.backend}`,
      );
    }
    if (onCuda) {
      if (
        options.transferStrategy !== undefined &&
        options.transferStrategy !== 'mapped' &&
        options.transferStrategy !== 'dma'
      ) {
        throw new RangeError(
          `options.transferStrategy: CUDA kernels take 'mapped' (rings pinned and mapped into the device) or 'dma' (replicas in device memory, copied by the mirror thread), got ${JSON.stringify(options.transferStrategy)}`,
        );
      }
    }
    const instanceId = this.#nextInstanceId++;
    const control = ControlBlock.create(instanceId);
    // A device executor learns from the block that its rings require checksums (a CPU worker from the rings).
    control.setIntegrity(integrity);
    const histogram = new SharedArrayBuffer(LATENCY_HISTOGRAM_BYTES);
    const input = this.#ring(definition.input, capacity, integrity, 0);
    const output = this.#ring(
      [definition.output, ...(definition.emits ?? [])],
      capacity,
      integrity,
      ERROR_REPLY_MAX_BYTES,
    );
    // Its queued messages go first into the new input ring, before anyone can send (RangeError if they don't fit).
    if (restore !== undefined) preloadQueuedFrames(input, restore.queued.bytes);
    const kernelBytes = control.buffer.byteLength + histogram.byteLength + ringBytes(input) + ringBytes(output);
    const device = this.#placeLaunch(options, kernelBytes, onCuda);
    if (!onCuda && this.backend === 'cuda' && options.transferStrategy === 'mapped') {
      throw new RangeError(
        `options.transferStrategy 'mapped' is for CUDA kernels; kernel '${definition.id}' runs on CPU workers ('direct' or 'dma')`,
      );
    }
    // A CPU kernel on the CUDA backend reads its rings in place, as on the CPU backend.
    const transfer = onCuda
      ? this.#openCudaTransfer(input, output, device, options.transferStrategy === 'dma' ? 'dma' : 'mapped')
      : this.#bridge.open(input, output, options.transferStrategy ?? (this.backend === 'cuda' ? 'direct' : undefined));
    const { port1, port2 } = new MessageChannel();
    const tracing = this.tracing;
    const launchSpan = tracing?.host.beginLifecycle();
    const telemetry = tracing?.attachKernel(instanceId, name, definition.id);
    // Reserve the name before the first await, so two concurrent launches cannot both take it.
    this.#launching.add(name);
    let attached: AttachResult;
    const task = (
      port: MessagePort,
      on: number,
      state?: Uint8Array,
      dormant = false,
      // The rings as they are now: a restarted dma kernel has fresh replicas, a migrated CUDA one its target's.
      rings: Pick<KernelTransfer, 'kernelInput' | 'kernelOutput' | 'devicePointers'> = transfer,
    ): AttachTask => ({
      kernelId: definition.id,
      moduleUrl: definition.moduleUrl,
      instanceId,
      controlBlock: control.buffer,
      histogram,
      // The rings the worker reads: the host's own (direct), or the mirror's replicas (dma).
      input: rings.kernelInput,
      output: rings.kernelOutput,
      port,
      enableTelemetry: this.config.enableTelemetry,
      failOnHandlerError,
      // The kernel's telemetry ring outlives its instances: a restarted instance writes to the same one.
      tracing: telemetry,
      device: on,
      restoreState: state,
      dormant,
      ...(onCuda
        ? {
            cuda: {
              gridSize: grid[0],
              blockSize: block[0],
              pollIntervalUs: this.config.bridgePollInterval,
              devicePointers: rings.devicePointers,
            },
          }
        : {}),
    });
    try {
      if (onCuda) {
        attached = await this.#cudaPool().run(task(port2, device, restore?.state), { transferList: [port2] });
        if (attached.failure !== undefined) throw this.#attachError(attached.failure, definition.id);
        const how = attached.cuda;
        if (how !== undefined) {
          this.log.debug(`kernel '${name}': CUDA image ${how.key} from ${how.cached ? 'the cache' : how.compiler}`);
        }
      } else {
        attached = await this.#pool(device).run(task(port2, device, restore?.state), { transferList: [port2] });
      }
    } catch (error) {
      port1.close();
      transfer.release();
      if (launchSpan !== undefined) {
        tracing?.host.endLifecycle(launchSpan, LifecycleTransition.LAUNCH, instanceId, ErrorNumber.KernelFailed);
      }
      tracing?.detachKernel(instanceId);
      const message = error instanceof Error ? error.message : String(error);
      // The worker's restore of the checkpoint's state failed (errors cross threads by message).
      if (restore !== undefined && message.startsWith(RESTORE_FAILED)) {
        throw new StateSnapshotError(name, 'restore', message.slice(RESTORE_FAILED.length));
      }
      if (message.startsWith(KERNEL_MODULE_FAILED)) {
        throw new KernelModuleError(
          { id: definition.id, moduleUrl: definition.moduleUrl },
          message.slice(KERNEL_MODULE_FAILED.length),
        );
      }
      throw error;
    } finally {
      this.#launching.delete(name);
    }
    const handle = new KernelHandle<InIn, OutView>({
      name,
      definition,
      instanceId,
      control,
      histogram: new LatencyHistogram(histogram),
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
      onInterrupted: (interrupted) => this.#interrupted(interrupted),
      onDeviceLost: (lost, cudaErrorName) => this.#deviceLost(lost, cudaErrorName),
      reattach: (restarted, port) =>
        this.#reattach(
          restarted,
          // A migrated dma kernel's replicas are on its new device: the handle's transfer has them.
          (on) => task(port, on, undefined, false, restarted.transfer),
          port,
        ),
      failOnHandlerError,
      tracer: tracing?.host,
      device,
      firstMessageId: (restore?.queued.maxMessageId ?? 0) + 1,
      attachDormant: async (moving, port, on, devicePointers) => {
        if (!onCuda) {
          const { threadId } = await this.#pool(on).run(task(port, on, undefined, true, moving.transfer), {
            transferList: [port],
          });
          return threadId;
        }
        const rings = devicePointers === undefined ? moving.transfer : { ...moving.transfer, devicePointers };
        const dormant = await this.#cudaPool().run(task(port, on, undefined, true, rings), {
          transferList: [port],
        });
        if (dormant.failure !== undefined) throw this.#attachError(dormant.failure, definition.id);
        return dormant.threadId;
      },
      onCheckpoint: () => this.#checkpoints++,
    });
    if (launchSpan !== undefined) tracing?.host.endLifecycle(launchSpan, LifecycleTransition.LAUNCH, instanceId, 0);
    handle.admit(this.#admission.minPriority, this.#admission.refusal);
    this.#launched++;
    this.#memory.record(handle, [
      { kind: 'control-block', owner: name, bytes: control.buffer.byteLength + histogram.byteLength },
      { kind: 'ring', owner: name, bytes: ringBytes(input) + ringBytes(output) },
    ]);
    this.#kernels.set(name, handle as KernelHandle);
    for (const watcher of this.#kernelWatchers) watcher({ type: 'launched', kernel: handle as KernelHandle });
    this.#threadOf.set(handle as KernelHandle, attached.threadId);
    this.#hosted.set(attached.threadId, (this.#hosted.get(attached.threadId) ?? 0) + 1);
    const on = this.#devices.length > 1 ? ` of device ${device}` : '';
    this.log.debug(`launched kernel '${name}' (${definition.id}) on worker ${attached.threadId}${on}`);
    if (options.autoActivate) await handle.activate();
    return handle;
  }

  /**
   * A ring sized for `capacity` frames of the codec's message (fixed schemas) or of modest raw payloads (bytes,
   * up to `defaultMessageSize`), plus room for one frame of `reserve` bytes (an output ring's error reply).
   */
  #ring(
    codec: MessageCodec<unknown, unknown> | readonly MessageCodec<unknown, unknown>[],
    capacity: number,
    integrity: boolean,
    reserve: number,
  ) {
    // A kernel that emits several types: room for the largest of them.
    const sizes = (Array.isArray(codec) ? codec : [codec]).map((c) => (c as { size?: unknown }).size);
    const fixed = sizes.every((size) => typeof size === 'number') ? Math.max(...(sizes as number[])) : undefined;
    if (fixed !== undefined) {
      const maxPayloadSize = Math.max(fixed, reserve);
      const capacityBytes = capacity * alignedFrameSize(fixed) + (reserve > fixed ? alignedFrameSize(reserve) : 0) + 8;
      return createFrameRing({ capacityBytes, maxPayloadSize, integrity });
    }
    const maxPayloadSize = this.config.defaultMessageSize - FrameHeader.SIZE;
    // Raw bytes: room for `capacity` modest frames, and never less than two of the largest.
    const capacityBytes = Math.max(capacity * alignedFrameSize(64), 2 * alignedFrameSize(maxPayloadSize) + 8);
    return createFrameRing({ capacityBytes, maxPayloadSize, integrity });
  }

  #pool(device: number): Piscina<AttachTask, AttachResult> {
    return this.#pools[device] as Piscina<AttachTask, AttachResult>;
  }

  /**
   * The launch's device: the one it names, or the coordinator's choice; a CUDA kernel never goes to a lost device.
   * @throws {PlacementError}
   * @throws {CudaDeviceLostError} a CUDA kernel asked for a lost device, or every device is lost.
   */
  #placeLaunch(options: LaunchOptions, memoryBytes: number, onCuda: boolean): number {
    const device = options.device;
    const lost = onCuda ? [...this.#lostDevices.keys()] : [];
    if (device === undefined && lost.length > 0 && lost.length >= this.#devices.length) {
      throw this.#lostError(lost[0] as number, 'every CUDA device of this runtime is lost');
    }
    // One device: nothing to choose (and no load to measure on every launch).
    if (device === undefined && this.#devices.length === 1) return 0;
    if (device === undefined) {
      return this.multiGpuCoordinator().selectDevice({
        memoryBytes,
        ...(options.colocateWith === undefined ? {} : { colocateWith: options.colocateWith }),
        ...(lost.length === 0 ? {} : { excludeDevices: lost }),
      });
    }
    if (!Number.isInteger(device) || device < 0 || device >= this.#devices.length) {
      throw new PlacementError(`device ${device} does not exist (devices 0…${this.#devices.length - 1})`);
    }
    if (lost.includes(device)) throw this.#lostError(device, 'a launch asked for it');
    const free = this.#freeBytes(device);
    if (memoryBytes > free) {
      throw new PlacementError(`device ${device} has ${free} bytes of budget free, the kernel needs ${memoryBytes}`);
    }
    return device;
  }

  #freeBytes(device: number): number {
    const info = this.#devices[device] as DeviceInfo;
    let used = 0;
    for (const handle of this.#kernels.values()) if (handle.device === device) used += this.#memory.bytesOf(handle);
    return info.memoryMB * 2 ** 20 - used;
  }

  /**
   * The runtime's devices and the links between them. On the CPU backend: `config.devices` virtual devices, each a
   * group of worker threads (its compute units) with a memory budget; every pair linked through host memory, with
   * a bandwidth and latency measured once (see {@link measureHostLink}). On the CUDA backend: the CUDA devices and
   * their links (`nvlink` through NVML, `pcie` with peer access, else `host`), measured on the first call (see
   * `cudaTopology`) and kept.
   *
   * @example
   * const { devices, links } = runtime.gpuTopology();
   * console.log(devices.map((d) => `${d.name}: ${d.computeUnits} workers, ${d.memoryMB} MiB`));
   */
  gpuTopology(): GpuTopology {
    const withWorkers = (device: DeviceInfo): DeviceInfo => ({
      ...device,
      workerThreadIds: this.#pool(device.id).threads.map((thread) => thread.threadId),
    });
    if (this.backend === 'cuda') {
      this.#cudaTopology ??= cudaTopology(requireCudaDriver());
      return { ...this.#cudaTopology, devices: this.#cudaTopology.devices.map(withWorkers) };
    }
    const devices = this.#devices.map(withWorkers);
    const { bandwidthGBps, latencyUs } = measureHostLink();
    const links = [];
    for (let from = 0; from < devices.length; from++) {
      for (let to = from + 1; to < devices.length; to++) {
        // One host memory: each side reaches the other's rings directly, Atomics included.
        links.push({
          from,
          to,
          kind: 'host' as const,
          bandwidthGBps,
          latencyUs,
          peerAccess: true,
          nativeAtomics: true,
          p2pPerformanceRank: 0,
          nvlinks: 0,
          nvswitch: false,
          measuredWith: 'host-memcpy' as const,
        });
      }
    }
    return { devices, links, linkSource: 'host-memory', notes: [] };
  }

  /**
   * Every device's memory, now: CPU virtual devices — the bytes of rings and control blocks their kernels own
   * against the device's budget (`config.deviceMemoryMB`); CUDA devices — the device's memory in use (by every
   * process: `cuMemGetInfo`, total − free) against its total. The coordinator's `MemoryBased` strategy and the
   * `ringkernel_device_memory_bytes` gauge read it.
   *
   * @example
   * for (const { device, usedBytes, budgetBytes } of runtime.deviceMemory()) console.log(device, usedBytes / budgetBytes);
   */
  deviceMemory(): {
    readonly device: number;
    readonly kind: DeviceKind;
    readonly usedBytes: number;
    readonly budgetBytes: number;
  }[] {
    return this.#devices.map((device) => {
      if (device.kind === 'cuda') {
        // A lost device answers every call with its sticky error: it counts as full (nothing goes there).
        const full = device.memoryMB * 2 ** 20;
        if (this.#lostDevices.has(device.id)) {
          return { device: device.id, kind: device.kind, usedBytes: full, budgetBytes: full };
        }
        this.#cudaMemory ??= new CudaDeviceMemory(requireCudaDriver());
        try {
          const { usedBytes, totalBytes } = this.#cudaMemory.read(device.id);
          return { device: device.id, kind: device.kind, usedBytes, budgetBytes: totalBytes };
        } catch (error) {
          // A sticky error: the device was lost in this process (under another runtime, say). Now it is known.
          if (!(error instanceof CudaError) || !STICKY_CU_RESULTS.has(error.cudaResult)) throw error;
          this.#deviceLost(device.id, error.cudaErrorName);
          return { device: device.id, kind: device.kind, usedBytes: full, budgetBytes: full };
        }
      }
      let usedBytes = 0;
      for (const handle of this.#kernels.values()) {
        if (handle.device === device.id) usedBytes += this.#memory.bytesOf(handle);
      }
      return { device: device.id, kind: device.kind, usedBytes, budgetBytes: device.memoryMB * 2 ** 20 };
    });
  }

  /** Every device's load, measured now (event-loop utilization since the last measurement). */
  #deviceLoads(): DeviceLoad[] {
    const memory = this.deviceMemory();
    return this.#devices.map((device) => {
      let utilization = 0;
      const threads = this.#pool(device.id).threads;
      for (const thread of threads) {
        const previous = this.#elu.get(thread.threadId);
        const now = thread.performance.eventLoopUtilization();
        utilization += (previous === undefined ? now : thread.performance.eventLoopUtilization(now, previous))
          .utilization;
        this.#elu.set(thread.threadId, now);
      }
      utilization = threads.length === 0 ? 0 : utilization / threads.length;
      let kernels = 0;
      let queuedFrames = 0;
      let queueCapacity = 0;
      for (const handle of this.#kernels.values()) {
        if (handle.device !== device.id) continue;
        const metrics = handle.metrics();
        kernels++;
        queuedFrames += metrics.inputQueueDepth;
        queueCapacity += metrics.inputQueueCapacity;
      }
      const { usedBytes: memoryUsedBytes, budgetBytes: memoryBudgetBytes } = memory[device.id] as {
        usedBytes: number;
        budgetBytes: number;
      };
      const queuePressure = queueCapacity === 0 ? 0 : queuedFrames / queueCapacity;
      return {
        device: { ...device, workerThreadIds: threads.map((thread) => thread.threadId) },
        kernels,
        queuedFrames,
        queueCapacity,
        utilization,
        memoryUsedBytes,
        memoryBudgetBytes,
        score: utilization + queuePressure + (0.01 * kernels) / Math.max(1, device.computeUnits),
      };
    });
  }

  /**
   * The runtime's multi-device coordinator (one per runtime; `strategy` applies on first use): places launches
   * that name no device.
   *
   * @example
   * runtime.multiGpuCoordinator().setStrategy(LoadBalancingStrategy.RoundRobin);
   */
  multiGpuCoordinator(strategy?: LoadBalancingStrategy | DeviceSelector): MultiGpuCoordinator {
    this.#coordinator ??= new MultiGpuCoordinator(
      {
        loads: () => this.#deviceLoads(),
        deviceOfKernel: (name) => this.kernel(name).device,
      },
      strategy,
    );
    return this.#coordinator;
  }

  /**
   * The runtime's kernel migrator (one per runtime): moves live kernels between devices with their state and
   * queue, nothing lost, rolled back on failure.
   *
   * @example
   * const report = await runtime.kernelMigrator().migrateKernel('scorer', 0, 1);
   */
  kernelMigrator(): KernelMigrator {
    this.#migrator ??= new KernelMigrator({
      defaultTimeoutMs: this.config.terminationTimeout,
      checkAccepting: (operation) => this.#checkAccepting(operation),
      kernel: (name) => this.kernel(name),
      deviceCount: () => this.#devices.length,
      freeBytes: (device) => this.#freeBytes(device),
      bytesOf: (handle) => this.#memory.bytesOf(handle),
      migrated: (handle, from, dormant, report) => this.#migrated(handle, from, dormant.threadId, report),
    });
    return this.#migrator;
  }

  #migrated(handle: KernelHandle, from: number, threadId: number, report: MigrationReport): void {
    const previous = this.#threadOf.get(handle);
    if (previous !== undefined) this.#hosted.set(previous, Math.max(0, (this.#hosted.get(previous) ?? 1) - 1));
    this.#threadOf.set(handle, threadId);
    this.#hosted.set(threadId, (this.#hosted.get(threadId) ?? 0) + 1);
    this.#migrations++;
    this.#checkpoints++;
    this.log.info(
      `kernel '${handle.name}' migrated from device ${from} to ${report.to} (worker ${threadId}): ${report.bytesMoved} B moved, ${report.messagesCarried} messages carried, paused ${report.pauseMs.toFixed(2)} ms`,
    );
  }

  /** A supervised kernel's instance failed: it leaves its worker, and counts as a failure for health checks. */
  #interrupted(handle: KernelHandle): void {
    this.log.info(
      `kernel '${handle.name}' failed (${handle.metrics().lastError?.message ?? 'unknown'}); its supervisor decides`,
    );
    const thread = this.#threadOf.get(handle);
    this.#threadOf.delete(handle);
    if (thread !== undefined) this.#hosted.set(thread, Math.max(0, (this.#hosted.get(thread) ?? 1) - 1));
    this.#failureTimes.push(performance.now());
    if (this.#failureTimes.length > 1000) this.#failureTimes.shift();
  }

  /**
   * A supervisor restarts a kernel: a new instance on the least loaded live worker. A CUDA kernel whose device was
   * lost goes to another device (`mapped`: its rings are host memory, so any device can map them); a `dma` kernel
   * cannot (its ring replicas were on the lost device).
   */
  async #reattach(
    handle: KernelHandle,
    task: (device: number) => AttachTask,
    port: MessagePort,
  ): Promise<{ threadId: number; device: number }> {
    if (this.#shutdown !== undefined) throw new RuntimeShutDownError('restart');
    let device = handle.device;
    const onCuda = task(device).cuda !== undefined;
    if (onCuda && this.#lostDevices.has(device)) {
      // The kernel's actual strategy (a dma launch without the native mirror runs mapped).
      if (handle.transfer.devicePointers !== undefined) {
        throw this.#lostError(device, `kernel '${handle.name}' uses dma, whose ring replicas were there`);
      }
      device = this.#placeLaunch({}, 0, true);
      this.log.warn(`kernel '${handle.name}': its CUDA device ${handle.device} is lost; restarting it on ${device}`);
    }
    const restartSpan = this.tracing?.host.beginLifecycle();
    // A CUDA kernel is relaunched by the CUDA device thread, over the same rings and ControlBlock.
    const attached = await (onCuda ? this.#cudaPool() : this.#pool(device)).run(task(device), {
      transferList: [port],
    });
    if (attached.failure !== undefined) throw this.#attachError(attached.failure, handle.kernelId);
    const { threadId } = attached;
    if (restartSpan !== undefined) {
      this.tracing?.host.endLifecycle(restartSpan, LifecycleTransition.RESTART, handle.instanceId, 0);
    }
    this.#threadOf.set(handle, threadId);
    this.#hosted.set(threadId, (this.#hosted.get(threadId) ?? 0) + 1);
    this.#restarts++;
    this.log.info(`kernel '${handle.name}' restarted on worker ${threadId} (restart ${handle.restarts})`);
    return { threadId, device };
  }

  /** A CUDA kernel's rings; replicas on a device that turns out lost (`dma`) fail with CudaDeviceLostError. */
  #openCudaTransfer(
    input: FrameRingMemory,
    output: FrameRingMemory,
    device: number,
    strategy: 'mapped' | 'dma',
  ): KernelTransfer {
    try {
      return this.#bridge.openCuda(input, output, device, strategy);
    } catch (error) {
      if (!(error instanceof CudaError) || !STICKY_CU_RESULTS.has(error.cudaResult)) throw error;
      this.#deviceLost(device, error.cudaErrorName);
      throw this.#lostError(device, 'its ring replicas could not be allocated there');
    }
  }

  /** A CUDA attach's failure as its typed error; a lost device is remembered. */
  #attachError(failure: NonNullable<AttachResult['failure']>, kernelId: string): Error {
    if (failure.deviceLost !== undefined) this.#deviceLost(failure.deviceLost.device, failure.deviceLost.cudaErrorName);
    return cudaAttachError(failure, kernelId);
  }

  /** A kernel on `device` failed with a sticky CUDA error: the device is lost to this process. */
  #deviceLost(device: number, cudaErrorName: string): void {
    if (this.#lostDevices.has(device)) return;
    this.#lostDevices.set(device, { device, cudaErrorName, at: new Date() });
    this.log.error(
      `CUDA device ${device} is lost (${cudaErrorName}, a sticky error): its kernels failed, and new CUDA kernels go to other devices`,
    );
  }

  #lostError(device: number, detail: string): CudaDeviceLostError {
    const lost = this.#lostDevices.get(device) as LostCudaDevice;
    return new CudaDeviceLostError(device, lost.cudaErrorName, detail);
  }

  /**
   * The CUDA devices lost to this process: a kernel on each faulted (an illegal address, a trap, a failed device
   * assert), and CUDA's errors from a fault are sticky. Every kernel there failed; launches go to the other
   * devices, and supervised `mapped` kernels restart on them. Only a new process can use a lost device again.
   *
   * @example
   * for (const { device, cudaErrorName, at } of runtime.lostDevices()) console.error(`GPU ${device}: ${cudaErrorName} at ${at}`);
   */
  lostDevices(): LostCudaDevice[] {
    return [...this.#lostDevices.values()];
  }

  /**
   * A new top-level supervisor of this runtime: kernels launched through it are restarted by its strategy when
   * they fail. Nest supervisors with {@link Supervisor.supervisor}.
   *
   * @example
   * const supervisor = runtime.supervisor({ strategy: RestartStrategy.OneForOne, maxRestarts: 3, windowMs: 5000 });
   * const parser = await supervisor.launch('parse', 1, 1, { autoActivate: true, onHandlerError: 'fail' });
   */
  supervisor(options: SupervisorOptions = {}): Supervisor {
    if (this.#shutdown !== undefined) throw new RuntimeShutDownError('supervisor');
    const supervisor = new Supervisor(this, options);
    this.#supervisors.add(supervisor);
    return supervisor;
  }

  #release(handle: KernelHandle): void {
    // The mirror's final copy brings the kernel's last outputs to the host ring, then it lets go of the rings.
    handle.transfer.release();
    if (this.#kernels.get(handle.name) === handle) {
      this.#kernels.delete(handle.name);
      for (const watcher of this.#kernelWatchers) watcher({ type: 'ended', kernel: handle });
    }
    this.#memory.release(handle);
    this.#prometheus?.kernelEnded(handle);
    const counters = handle.counters();
    this.#ended.processed += counters.processed;
    this.#ended.failed += counters.failed;
    this.#ended.dropped += counters.dropped;
    this.tracing?.detachKernel(handle.instanceId);
    const thread = this.#threadOf.get(handle);
    this.#threadOf.delete(handle);
    if (thread !== undefined) this.#hosted.set(thread, Math.max(0, (this.#hosted.get(thread) ?? 1) - 1));
    if (handle.status === 'Failed') {
      this.log.error(`kernel '${handle.name}' failed: ${handle.metrics().lastError?.message ?? 'unknown'}`);
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
    const accepted = target.inputCodec;
    const emitted = [source.outputCodec, ...(source.emittedCodecs ?? [])];
    const produced = emitted.find((codec) => codec.typeId === accepted.typeId);
    if (produced === undefined) {
      throw new LinkTypeMismatchError(
        `cannot connect '${source.name}' to '${target.name}': '${source.name}' outputs ${emitted.map((codec) => codec.name).join(', ')} and '${target.name}' takes ${accepted.name}`,
      );
    }
    // A kernel that emits several types: the link takes only the consumer's (routing by message type).
    const types = emitted.length > 1 ? [accepted.typeId] : undefined;
    const capacity = options.queueCapacity ?? this.config.defaultQueueCapacity;
    const memory = this.#ring(produced, capacity, target.inputMemory.integrity, 0);
    // The link's ring lives as long as its consumer.
    this.#memory.record(target, [{ kind: 'ring', owner: `${source.name}→${target.name}`, bytes: ringBytes(memory) }]);
    // Consumer first: frames may flow as soon as the producer has the ring.
    await target.link({ command: 'LINK_IN', memory });
    await source.link({ command: 'LINK_OUT', memory, wake: target.transfer.kernelInput.signal, types });
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

  /**
   * The runtime's Prometheus exporter (one per runtime). `options` apply when it is first made: register into
   * your own prom-client `Registry`, add process metrics.
   * @throws {TypeError} on bad options, or options given once the exporter exists.
   */
  prometheusExporter(options?: PrometheusExporterOptions): PrometheusExporter {
    if (options !== undefined && this.#prometheus !== undefined) {
      throw new TypeError('prometheusExporter options apply when it is first made; it exists already');
    }
    this.#prometheus ??= new PrometheusExporter(this, options);
    return this.#prometheus;
  }

  /** The runtime's kernel watchdog (one per runtime): finds kernels whose input waits while they do not beat. */
  kernelWatchdog(): KernelWatchdog {
    this.#watchdog ??= new KernelWatchdog(
      () => this.kernels(),
      undefined,
      (stale, policy) => this.#recoverStale(stale.handle, policy),
    );
    this.#watchdog.on('recovered', (r) =>
      this.log.warn(
        `watchdog replaced worker ${r.threadId}: '${r.kernel}' (${r.policy}); moved ${r.moved.length} kernels`,
      ),
    );
    return this.#watchdog;
  }

  /**
   * A kernel's handler never returns: only replacing its worker thread stops it. The worker's other kernels are
   * put under the runtime's watchdog supervisor first (unless supervised already), so they restart on a live
   * worker with their queues; the stuck kernel restarts too, or, under `'fail'`, stays Failed.
   */
  async #recoverStale(stale: KernelHandle, policy: 'restart' | 'fail'): Promise<WatchdogRecovery | undefined> {
    const threadId = this.#threadOf.get(stale);
    const worker = this.#pools.flatMap((pool) => pool.threads).find((thread) => thread.threadId === threadId);
    // Already being replaced (every kernel of a stuck worker looks stale: one recovery covers them all).
    if (threadId === undefined || worker === undefined || this.#deadThreads.has(threadId)) return undefined;
    if (this.#shutdown !== undefined) return undefined;
    const hosted = [...this.#threadOf].flatMap(([kernel, thread]) => (thread === threadId ? [kernel] : []));
    // The kernel whose handler is stuck is the one inside a batch; the others only wait for the worker.
    const handle = hosted.find((kernel) => kernel.inBatch) ?? stale;
    const moved = hosted.filter((kernel) => kernel !== handle);
    this.#watchdogSupervisor ??= this.supervisor({
      name: 'watchdog',
      maxRestarts: 1000,
      windowMs: 60_000,
      backoff: { initialMs: 0 },
    });
    // Direct kernels move (restart elsewhere), and so do dma ones (their restart attaches fresh replicas).
    const movable = (kernel: KernelHandle): boolean =>
      kernel.transfer.strategy === 'direct' || kernel.transfer.reopen !== undefined;
    for (const other of moved) if (!other.supervised && movable(other)) this.#watchdogSupervisor.supervise(other);
    if (policy === 'fail' || !movable(handle)) handle.superviseWith(undefined);
    else if (!handle.supervised) this.#watchdogSupervisor.supervise(handle);
    this.#deadThreads.add(threadId);
    await worker.terminate();
    return { kernel: handle.name, policy, threadId, moved: moved.map((other) => other.name) };
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

  /** The cluster this runtime is a node of (`builder().cluster({...})`), or undefined. */
  get cluster(): ClusterNode | undefined {
    return this.#cluster;
  }

  /**
   * Joins a cluster (what the builder's `.cluster()` does): the runtime becomes a node, its named kernels are
   * registered cluster-wide and served to other nodes. Loads the NATS client only now.
   * @throws {ClusterUnreachableError | ClusterAuthError | ClusterUnavailableError} when it cannot join.
   */
  async joinCluster(options: ClusterOptions): Promise<ClusterNode> {
    if (this.#shutdown !== undefined) throw new RuntimeShutDownError('join a cluster');
    if (this.#cluster !== undefined) throw new TypeError(`already a node of cluster '${this.#cluster.cluster}'`);
    const { ClusterNode } = await import('../cluster/cluster-node.js');
    const port: ClusterRuntimePort = {
      backend: this.backend,
      localKernel: (name) => this.#kernels.get(name),
      localKernels: () => [...this.#kernels.values()],
      watchKernels: (listener) => {
        this.#kernelWatchers.add(listener);
        return () => this.#kernelWatchers.delete(listener);
      },
      deadLetter: (letter) => this.deadLetters.publish(letter),
    };
    this.#cluster = await ClusterNode.join(port, options);
    return this.#cluster;
  }

  /**
   * The kernel named `name`, wherever it runs: the local handle when it runs here (no network), else — in a
   * cluster — a reference to it on its node, with the same `send`/`trySend`/`call`/`receive`/`status`/`metrics`.
   * @throws {KernelNotFoundError} outside a cluster when no live kernel has the name;
   * {@link ClusterNameUnknownError} in a cluster when no node hosts it.
   */
  ref<InIn = unknown, OutView = unknown>(name: string): KernelRef<InIn, OutView> {
    const local = this.#kernels.get(name);
    if (local !== undefined) return local as unknown as KernelRef<InIn, OutView>;
    if (this.#cluster === undefined) throw new KernelNotFoundError(name, 'no live kernel is launched under this name');
    return this.#cluster.kernel<InIn, OutView>(name);
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
   * Shuts down (→ Stopping → Stopped): terminates every kernel (handling what is queued, as each was launched
   * to), then stops the worker pool, and reports the runtime's life in figures. Idempotent. After it resolves no
   * worker thread is left and the process can exit. For a graceful stop, {@link RingKernelRuntime.drain} first.
   */
  shutdown(): Promise<ShutdownReport> {
    this.#shutdown ??= (async () => {
      const started = performance.now();
      this.#lifecycle.send({ type: 'STOP' });
      this.#applyAdmission();
      this.#signalHandlers?.();
      // Leave the cluster first: other nodes stop sending here before the kernels go.
      await this.#cluster?.leave().catch(() => undefined);
      // No restarts from here on: a kernel that fails while shutting down stays failed.
      for (const supervisor of this.#supervisors) supervisor.retire();
      // A restart under way finishes (or, waiting out its backoff, gives up) before the kernels are terminated.
      await Promise.all([...this.#supervisors].map((supervisor) => supervisor.settled()));
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
      this.#degradation?.stop();
      await Promise.all(this.#pools.map((pool) => pool.destroy()));
      await this.#cuda?.destroy();
      this.#cudaMemory?.close();
      await this.tracing?.shutdown();
      await this.#bridge.close();
      this.#lifecycle.send({ type: 'STOPPED' });
      this.#lifecycle.stop();
      const now = performance.now();
      return {
        uptimeMs: Math.round(now - this.#builtAt),
        kernelsLaunched: this.#launched,
        terminated: this.#terminated,
        failed: this.#failed,
        restarts: this.#restarts,
        messagesProcessed: this.#ended.processed,
        messagesFailed: this.#ended.failed,
        messagesDropped: this.#ended.dropped,
        deadLetters: this.deadLetters.total,
        deadLettersByReason: this.deadLetters.counts(),
        shedMessages: this.#shed,
        circuitTrips: this.circuitBreakers().reduce((sum, breaker) => sum + breaker.stats().trips, 0),
        healthChecks: this.#health?.checksRun ?? 0,
        watchdogRecoveries: this.#watchdog?.recoveries ?? 0,
        migratedKernels: this.#migrations,
        checkpoints: this.#checkpoints,
        drained: this.#drained,
        durationMs: Math.round(now - started),
      };
    })();
    return this.#shutdown;
  }

  /** Draining → Stopping → Stopped (the seed's name for {@link RingKernelRuntime.shutdown}). */
  completeShutdown(): Promise<ShutdownReport> {
    return this.shutdown();
  }

  /**
   * Opt-in graceful stop on SIGINT / SIGTERM: the first signal drains (up to `drainTimeoutMs`), then completes
   * the shutdown and hands the report to `onReport`; the process then exits when nothing else keeps it alive.
   * Returns a function that removes the handlers (removed by shutdown too).
   *
   * @example
   * runtime.shutdownOnSignals({ drainTimeoutMs: 10_000, onReport: (report) => console.log(report) });
   */
  shutdownOnSignals(
    options: {
      readonly signals?: readonly NodeJS.Signals[];
      readonly drainTimeoutMs?: number;
      readonly onReport?: (report: ShutdownReport) => void;
    } = {},
  ): () => void {
    const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
    const drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
    if (!Array.isArray(signals) || signals.length === 0)
      throw new TypeError('options.signals must be a non-empty array');
    if (typeof drainTimeoutMs !== 'number' || !(drainTimeoutMs >= 0)) {
      throw new RangeError(`options.drainTimeoutMs must be a non-negative number, got ${drainTimeoutMs}`);
    }
    this.#signalHandlers?.();
    const onSignal = (): void => {
      remove();
      void (async () => {
        if (this.state().value === 'Running' || this.state().value === 'Draining') await this.drain(drainTimeoutMs);
        const report = await this.completeShutdown();
        options.onReport?.(report);
      })();
    };
    const remove = (): void => {
      for (const signal of signals) process.off(signal, onSignal);
      if (this.#signalHandlers === remove) this.#signalHandlers = undefined;
    };
    for (const signal of signals) process.on(signal, onSignal);
    this.#signalHandlers = remove;
    return remove;
  }

  /** Shuts the runtime down (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}
