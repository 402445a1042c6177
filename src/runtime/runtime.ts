import { createActor } from 'xstate';
import type { BackendProbe, BackendType } from '../backends/backend-type.js';
import type { ResolvedWebGpuOptions } from '../backends/webgpu/webgpu-adapter.js';
import type { MirrorStats } from '../bridge/dma-mirror.js';
import { TransferBridge } from '../bridge/transfer-bridge.js';
import type { TransferStrategyChoice } from '../bridge/transfer-strategy.js';
import type { ClusterNode } from '../cluster/cluster-node.js';
import type { ClusterOptions } from '../cluster/cluster-options.js';
import type { KernelRef } from '../cluster/cluster-ports.js';
import { KernelMigrator, type MigrationReport } from '../devices/kernel-migrator.js';
import type { DeviceSelector, LoadBalancingStrategy, MultiGpuCoordinator } from '../devices/multi-gpu-coordinator.js';
import { type GpuTopology, measureHostLink } from '../devices/topology.js';
import { InvalidArgumentError } from '../errors/argument-errors.js';
import {
  InvalidStateError,
  KernelNotFoundError,
  NotAcceptingWorkError,
  RuntimeShutDownError,
} from '../errors/runtime-errors.js';
import type { KernelDefinition } from '../kernel/kernel-definition.js';
import type { CircuitBreaker, CircuitBreakerOptions } from '../operations/circuit-breaker.js';
import type { DegradationLevel, DegradationManager, DegradationOptions } from '../operations/degradation-manager.js';
import type { HealthChecker } from '../operations/health-checker.js';
import type { KernelWatchdog, WatchdogRecovery } from '../operations/kernel-watchdog.js';
import { type InspectionObserver, LifecycleInspector } from '../operations/lifecycle-inspector.js';
import { GpuMemoryDashboard } from '../operations/memory-dashboard.js';
import type { PrometheusExporter, PrometheusExporterOptions } from '../operations/prometheus-exporter.js';
import { Supervisor, type SupervisorOptions } from '../supervision/supervisor.js';
import { NOOP_OBSERVABILITY, type ObservabilityContext } from '../telemetry/observability-context.js';
import type { RuntimeTracing } from '../telemetry/runtime-tracing.js';
import type { KernelStatusName } from '../wire/kernel-status.js';
import { RuntimeBuilder } from './builder.js';
import { ClusterMembership } from './cluster-membership.js';
import type { RuntimeConfig } from './config.js';
import { DeadLetterStream, unknownKernelLetter } from './dead-letters.js';
import { type DeviceMemoryReport, DeviceRegistry, type LostCudaDevice } from './device-registry.js';
import { KernelAdmission } from './kernel-admission.js';
import type { KernelHandle } from './kernel-handle.js';
import type { CallOptions, Dim3, KernelMetrics, SendOptions } from './kernel-handle-options.js';
import { KernelLauncher, type LaunchOptions, ringBytes } from './kernel-launcher.js';
import { connectKernels } from './kernel-links.js';
import { KernelRegistry } from './kernel-registry.js';
import { LaunchWaiters } from './launch-waiters.js';
import { LoadMeter } from './load-meter.js';
import { createLogger, type RuntimeLogger } from './logger.js';
import type { PresetName } from './presets.js';
import { type RuntimeLifecycleState, runtimeLifecycle } from './runtime-lifecycle.js';
import { RuntimeOperations } from './runtime-operations.js';
import { RuntimeStatistics, type ShutdownReport } from './runtime-statistics.js';
import { SignalShutdown } from './signal-shutdown.js';
import { replaceStuckWorker } from './stuck-worker-recovery.js';
import { WorkerPools } from './worker-pools.js';

/** How long a shutdown waits for a stuck kernel's worker to go (its queue is dead-lettered then). */
const SALVAGE_WAIT_MS = 2_000;

export type { LostCudaDevice } from './device-registry.js';
export type { LaunchOptions } from './kernel-launcher.js';
export type { ShutdownReport } from './runtime-statistics.js';

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

/** Input to the runtime's constructor. */
export interface RuntimeInit {
  /** Start at once (Initializing → Running); default true. */
  readonly start?: boolean;
  /** The builder preset applied, if any. */
  readonly preset?: PresetName | undefined;
  readonly backend: BackendType;
  readonly probes: readonly BackendProbe[];
  readonly device: number;
  /** The WebGPU adapters a WebGPU backend's device thread opens its devices on. */
  readonly webgpu?: ResolvedWebGpuOptions | undefined;
  readonly config: RuntimeConfig;
  /** Tracing, when the builder turned it on. */
  readonly tracing?: RuntimeTracing | undefined;
  /** Where the kernels' lifecycle inspection events go (the builder's `inspect`). */
  readonly inspect?: InspectionObserver | undefined;
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
  /** The executor threads: a worker pool per device, the CUDA device thread, which kernel each one hosts. */
  readonly #workers: WorkerPools<KernelHandle>;
  /** The devices: their memory, load, topology, losses, and where launches go. */
  readonly #devices: DeviceRegistry;
  /** Launches (and relaunches) kernels. */
  readonly #launcher: KernelLauncher;
  #migrator: KernelMigrator<KernelHandle> | undefined;
  /** The runtime's life in figures, for its shutdown report and health checks. */
  readonly #statistics = new RuntimeStatistics();
  /** What the kernels admit (drain, load shedding). */
  readonly #admission = new KernelAdmission({
    state: () => this.state().value,
    kernels: () => this.#kernels.values(),
  });
  readonly #load = new LoadMeter();
  readonly #kernels = new Map<string, KernelHandle>();
  /** Who waits for a kernel to be launched under a name ({@link RingKernelRuntime.whenLaunched}). */
  readonly #launchWaiters = new LaunchWaiters<KernelHandle>();
  /** Supervises the kernels the watchdog moves off a replaced worker. */
  #watchdogSupervisor: Supervisor | undefined;
  readonly #inspector: LifecycleInspector | undefined;
  #shutdown: Promise<ShutdownReport> | undefined;
  /** Kernels forced out of a stuck handler whose queues are dead-lettered once their worker has gone. */
  readonly #salvaging = new Set<Promise<void>>();
  readonly #lifecycle = createActor(runtimeLifecycle).start();
  #drained: boolean | undefined;
  /** Circuit breakers, degradation manager, health checker, Prometheus exporter, watchdog: made on first use. */
  readonly #operations: RuntimeOperations;
  readonly #memory = new GpuMemoryDashboard();
  /** The opt-in graceful stop on SIGINT / SIGTERM. */
  readonly #signals = new SignalShutdown(this);
  readonly #supervisors = new Set<Supervisor>();
  /** The runtime as a node of a cluster (`builder().cluster()`), once it joins one. */
  readonly #cluster: ClusterMembership;

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
    return new RuntimeBuilder((init) => new RingKernelRuntime(init));
  }

  /** @internal — use {@link RingKernelRuntime.builder}. */
  constructor(init: RuntimeInit) {
    this.backend = init.backend;
    this.device = init.device;
    this.config = init.config;
    this.backendProbes = init.probes;
    this.preset = init.preset;
    this.#inspector = init.inspect === undefined ? undefined : new LifecycleInspector(init.inspect);
    this.log = createLogger(init.config.logLevel);
    this.deadLetters.on('deadLetter', (letter) =>
      this.log.debug(`dead letter from '${letter.kernel}' (${letter.reason}): ${letter.error.message}`),
    );
    this.tracing = init.tracing;
    this.tracing?.joinRuntime(this.#memory, this.log);
    this.#bridge = new TransferBridge(init.backend, init.config.bridgePollInterval);
    this.#workers = new WorkerPools(init.config.maxKernelsPerWorker, {
      oldMB: init.config.workerHeapMB,
      youngMB: init.config.workerYoungHeapMB,
    });
    this.#devices = new DeviceRegistry(init.backend, init.config, this.#workers, {
      kernels: () => this.#kernels.values(),
      bytesOf: (kernel) => this.#memory.bytesOf(kernel),
      deviceOfKernel: (name) => this.kernel(name).device,
      log: this.log,
    });
    const runtime = this;
    this.#launcher = new KernelLauncher({
      config: init.config,
      backend: init.backend,
      webgpu: init.webgpu ?? { allowFallback: false, nativeBackend: 'default', deviceBackends: [] },
      log: this.log,
      tracing: init.tracing,
      inspector: this.#inspector,
      deadLetters: this.deadLetters,
      bridge: this.#bridge,
      workers: this.#workers,
      devices: this.#devices,
      get shuttingDown() {
        return runtime.#shutdown !== undefined;
      },
      checkAccepting: (operation) => this.#checkAccepting(operation),
      liveKernel: (name) => this.#kernels.get(name),
      nameHeldElsewhere: (name) => this.cluster?.holderElsewhere(name),
      joined: (handle, threadId, allocations) => {
        this.#admission.admitNew(handle);
        this.#statistics.launched();
        this.#memory.record(handle, allocations);
        this.#kernels.set(handle.name, handle);
        this.#workers.hosts(handle, threadId);
        this.#launchWaiters.launched(handle.name, handle);
        this.#cluster.kernelEvent('launched', handle);
      },
      ended: (handle) => this.#release(handle),
      interrupted: (handle) => this.#interrupted(handle),
      stuck: (handle, salvaged) => {
        this.#salvaging.add(salvaged);
        void salvaged.then(() => this.#salvaging.delete(salvaged));
        void this.#recoverStale(handle, 'fail');
      },
      restarted: (handle, threadId) => {
        this.#workers.hosts(handle, threadId);
        this.#statistics.restarted();
      },
      checkpointed: () => this.#statistics.checkpointed(),
    });
    this.#cluster = new ClusterMembership({
      backend: init.backend,
      localKernel: (name) => this.#kernels.get(name),
      localKernels: () => [...this.#kernels.values()],
      deadLetter: (letter) => this.deadLetters.publish(letter),
      launch: (kernelId, options) => this.launch(kernelId, options as LaunchOptions),
      launchHere: (kernel, options) => this.#launcher.launch(kernel, options),
    });
    this.#operations = new RuntimeOperations({
      runtime: this,
      log: this.log,
      kernels: () => this.kernels(),
      degradation: (breakers) => ({
        measure: () =>
          this.#load.measure({
            kernels: this.#kernels.values(),
            breakers: breakers(),
            memoryPressure: this.#memory.memoryPressure(),
          }),
        shedBelow: (minPriority, refuse) => this.#admission.shedBelow(minPriority, refuse),
      }),
      recoverStale: (stale, policy) => this.#recoverStale(stale.handle, policy),
    });
    if (init.start !== false) this.#lifecycle.send({ type: 'START' });
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
      throw new InvalidArgumentError(
        'timeoutMs',
        `drain timeout must be a non-negative number of ms, got ${timeoutMs}`,
      );
    }
    const state = this.state().value;
    if (state === 'Stopping' || state === 'Stopped') throw new RuntimeShutDownError('drain');
    if (state !== 'Draining') this.#lifecycle.send({ type: 'DRAIN' });
    this.#admission.apply();
    const { pendingWork, waitedMs } = await this.#admission.workDone(timeoutMs);
    this.#drained = pendingWork === 0;
    return { drained: this.#drained, pendingWork, waitedMs };
  }

  /**
   * The runtime's degradation manager (one per runtime, made with `options` on first use): a level from Normal
   * to Critical driven by queue pressure, memory pressure, error rate and open breakers, shedding messages by
   * priority.
   */
  degradationManager(options: DegradationOptions = {}): DegradationManager {
    return this.#operations.degradationManager(options);
  }

  /** The degradation level: the manager's, or Normal when there is none. */
  degradationLevel(): DegradationLevel {
    return this.#operations.degradationLevel();
  }

  /** The runtime's memory dashboard (one per runtime): its rings and control blocks by kind, and pressure. */
  gpuMemoryDashboard(): GpuMemoryDashboard {
    return this.#memory;
  }

  /**
   * Launches a kernel: allocates its ControlBlock and rings, attaches it to a worker (which loads the kernel's
   * module and starts its lifecycle actor) and resolves with its handle, status Launched — resident, not yet
   * consuming (`activate()` it, or pass `autoActivate`).
   *
   * In a cluster, `options.node` places the launch on that node (`'least-loaded'`: the live node listing the fewest
   * kernels) and resolves with a reference once the kernel is registered there; see `docs/cluster.md`.
   *
   * @throws {KernelNotFoundError} for an unknown kernel id; {@link InvalidStateError} when a live kernel already
   * has the launch's name; `TypeError`/`RangeError` on bad sizes or options; with `node`, `ClusterNodeUnknownError`
   * or `ClusterPlacementError`.
   */
  launch<InIn, InView, OutIn, OutView, State>(
    kernel: string | KernelDefinition<InIn, InView, OutIn, OutView, State>,
    options: LaunchOptions & { readonly node: string },
  ): Promise<KernelRef<InIn, OutView>>;
  launch<InIn, InView, OutIn, OutView, State>(
    kernel: string | KernelDefinition<InIn, InView, OutIn, OutView, State>,
    options?: LaunchOptions,
  ): Promise<KernelHandle<InIn, OutView>>;
  launch<InIn, InView, OutIn, OutView, State>(
    kernel: string | KernelDefinition<InIn, InView, OutIn, OutView, State>,
    gridSize: Dim3,
    blockSize?: Dim3,
    options?: LaunchOptions,
  ): Promise<KernelHandle<InIn, OutView>>;
  launch<InIn, InView, OutIn, OutView, State>(
    kernel: string | KernelDefinition<InIn, InView, OutIn, OutView, State>,
    sizesOrOptions: Dim3 | LaunchOptions = 1,
    positionalBlockSize: Dim3 = 1,
    positionalOptions: LaunchOptions = {},
  ): Promise<KernelHandle<InIn, OutView> | KernelRef<InIn, OutView>> {
    const byOptions = typeof sizesOrOptions === 'object' && !Array.isArray(sizesOrOptions);
    const options = (byOptions ? sizesOrOptions : positionalOptions) as LaunchOptions & { node?: unknown };
    if (options?.node !== undefined) {
      const sized = byOptions
        ? options
        : { gridSize: sizesOrOptions as Dim3, blockSize: positionalBlockSize, ...options };
      return this.#cluster.launchOn(kernel, sized);
    }
    return this.#launcher.launch(kernel, sizesOrOptions, positionalBlockSize, positionalOptions);
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
    return this.#devices.topology();
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
  deviceMemory(): DeviceMemoryReport[] {
    return this.#devices.memory();
  }

  /**
   * The runtime's multi-device coordinator (one per runtime; `strategy` applies on first use): places launches
   * that name no device.
   *
   * @example
   * runtime.multiGpuCoordinator().setStrategy(LoadBalancingStrategy.RoundRobin);
   */
  multiGpuCoordinator(strategy?: LoadBalancingStrategy | DeviceSelector): MultiGpuCoordinator {
    return this.#devices.coordinator(strategy);
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
    return this.#devices.lostDevices();
  }

  /**
   * The runtime's kernel migrator (one per runtime): moves live kernels between devices, or to another node of
   * the runtime's cluster, with their state and queue, nothing lost, rolled back on failure.
   *
   * @example
   * const report = await runtime.kernelMigrator().migrateKernel('scorer', 0, 1);
   * await runtime.kernelMigrator().moveToNode('scorer', 'gpu-node-2');
   */
  kernelMigrator(): KernelMigrator<KernelHandle> {
    this.#migrator ??= new KernelMigrator<KernelHandle>({
      defaultTimeoutMs: this.config.terminationTimeout,
      checkAccepting: (operation) => this.#checkAccepting(operation),
      kernel: (name) => this.kernel(name),
      migratable: (handle) => handle.migration,
      deviceCount: () => this.#devices.count,
      freeBytes: (device) => this.#devices.freeBytes(device),
      bytesOf: (handle) => this.#memory.bytesOf(handle),
      migrated: (handle, from, dormant, report) => this.#migrated(handle, from, dormant.threadId, report),
      cluster: () => this.cluster,
    });
    return this.#migrator;
  }

  #migrated(handle: KernelHandle, from: number, threadId: number, report: MigrationReport): void {
    this.#workers.hosts(handle, threadId);
    this.#statistics.migrated();
    this.log.info(
      `kernel '${handle.name}' migrated from device ${from} to ${report.to} (worker ${threadId}): ${report.bytesMoved} B moved, ${report.messagesCarried} messages carried, paused ${report.pauseMs.toFixed(2)} ms`,
    );
  }

  /** A supervised kernel's instance failed: it leaves its worker, and counts as a failure for health checks. */
  #interrupted(handle: KernelHandle): void {
    this.log.info(
      `kernel '${handle.name}' failed (${handle.metrics().lastError?.message ?? 'unknown'}); its supervisor decides`,
    );
    this.#workers.left(handle);
    this.#statistics.failedNow();
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
      this.#cluster.kernelEvent('ended', handle);
    }
    this.#memory.release(handle);
    this.#operations.kernelEnded(handle);
    this.#statistics.ended(handle);
    this.tracing?.detachKernel(handle.instanceId);
    this.#workers.left(handle);
    if (handle.status === 'Failed') {
      const why = handle.metrics().lastError?.message ?? 'unknown';
      // A KernelFailedError's message already names the kernel: said once.
      const prefix = `kernel '${handle.name}' failed: `;
      this.log.error(why.startsWith(prefix) ? why : `${prefix}${why}`);
    }
  }

  /** How many kernels failed in the last `ms` milliseconds (for health checks). */
  recentFailures(ms: number): number {
    return this.#statistics.recentFailures(ms);
  }

  /** The runtime's health checker (one per runtime), with its built-in checks registered. */
  healthChecker(): HealthChecker {
    return this.#operations.healthChecker();
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
    await connectKernels(source, target, options.queueCapacity, {
      defaultQueueCapacity: this.config.defaultQueueCapacity,
      ring: (codec, capacity, integrity) => this.#launcher.ring(codec, capacity, integrity, 0),
      record: (consumer, owner, memory) =>
        this.#memory.record(consumer, [{ kind: 'ring', owner, bytes: ringBytes(memory) }]),
    });
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
    return this.#operations.circuitBreaker(name, options);
  }

  /** Every circuit breaker made with {@link RingKernelRuntime.circuitBreaker}. */
  circuitBreakers(): CircuitBreaker[] {
    return this.#operations.circuitBreakers();
  }

  /**
   * The runtime's Prometheus exporter (one per runtime). `options` apply when it is first made: register into
   * your own prom-client `Registry`, add process metrics.
   * @throws {TypeError} on bad options, or options given once the exporter exists.
   */
  prometheusExporter(options?: PrometheusExporterOptions): PrometheusExporter {
    return this.#operations.prometheusExporter(options);
  }

  /**
   * Your own spans around the runtime's: `startSpan(name, attributes?)` on the runtime's tracer, and messages sent
   * while one is active (`withSpan`, `startActiveSpan`) become its children. A no-op when tracing is off.
   */
  observabilityContext(): ObservabilityContext {
    return this.tracing?.observability() ?? NOOP_OBSERVABILITY;
  }

  /** The runtime's kernel watchdog (one per runtime): finds kernels whose input waits while they do not beat. */
  kernelWatchdog(): KernelWatchdog<KernelHandle> {
    return this.#operations.kernelWatchdog();
  }

  /** The watchdog found `stale`: its worker is replaced (see {@link replaceStuckWorker}). */
  #recoverStale(stale: KernelHandle, policy: 'restart' | 'fail'): Promise<WatchdogRecovery | undefined> {
    const runtime = this;
    return replaceStuckWorker(stale, policy, {
      get shuttingDown() {
        return runtime.#shutdown !== undefined;
      },
      workers: this.#workers,
      supervisor: () => {
        this.#watchdogSupervisor ??= this.supervisor({
          name: 'watchdog',
          maxRestarts: 1000,
          windowMs: 60_000,
          backoff: { initialMs: 0 },
        });
        return this.#watchdogSupervisor;
      },
    });
  }

  /**
   * The live kernel launched under `name`: at once if there is one, else when one is launched (kernels that are
   * spawned as actors launch in no set order). Rejects with {@link RuntimeShutDownError} if the runtime shuts
   * down first.
   *
   * @example
   * const alerts = await runtime.whenLaunched('alerts');
   * await runtime.connect(stats, alerts);
   */
  whenLaunched(name: string): Promise<KernelHandle> {
    const live = this.#kernels.get(name);
    if (live !== undefined) return Promise.resolve(live);
    if (this.#shutdown !== undefined) return Promise.reject(new RuntimeShutDownError(`wait for kernel '${name}'`));
    return this.#launchWaiters.wait(name);
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
    return this.#cluster.node;
  }

  /**
   * Joins a cluster (what the builder's `.cluster()` does): the runtime becomes a node, its named kernels are
   * registered cluster-wide and served to other nodes. Loads the NATS client only now.
   * @throws {ClusterUnreachableError | ClusterAuthError | ClusterUnavailableError} when it cannot join.
   */
  async joinCluster(options: ClusterOptions): Promise<ClusterNode> {
    if (this.#shutdown !== undefined) throw new RuntimeShutDownError('join a cluster');
    return this.#cluster.join(options);
  }

  /**
   * The kernel named `name`, wherever it runs: the local handle when it runs here (no network), else — in a
   * cluster — a reference to it on its node, with the same `send`/`trySend`/`call`/`receive`/`status`/`metrics`.
   * @throws {KernelNotFoundError} outside a cluster when no live kernel has the name;
   * {@link ClusterNameUnknownError} in a cluster when no node hosts it.
   */
  ref<InIn = unknown, OutView = unknown>(name: string): KernelRef<InIn, OutView> {
    return this.#cluster.ref<InIn, OutView>(name);
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
      this.deadLetters.publish(unknownKernelLetter(name, message, error));
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
      // Nothing more will launch: whoever waits for a kernel by name learns it now.
      this.#launchWaiters.shutDown();
      this.#lifecycle.send({ type: 'STOP' });
      this.#admission.apply();
      this.#signals.remove();
      // Leave the cluster first: other nodes stop sending here before the kernels go.
      await this.#cluster.leave();
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
      this.#operations.stop();
      await this.#workers.destroy();
      // The stuck kernels' workers are gone with the pool: their queues are dead-lettered before the report.
      if (this.#salvaging.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, SALVAGE_WAIT_MS);
        });
        await Promise.race([Promise.all(this.#salvaging), bound]);
        clearTimeout(timer);
      }
      this.#launcher.releasePooledRings();
      this.#devices.close();
      await this.tracing?.shutdown();
      await this.#bridge.close();
      this.#lifecycle.send({ type: 'STOPPED' });
      this.#lifecycle.stop();
      return this.#statistics.report(
        {
          deadLetters: this.deadLetters.total,
          deadLettersByReason: this.deadLetters.counts(),
          shedMessages: this.#admission.shed,
          ...this.#operations.counts(),
          drained: this.#drained,
        },
        started,
      );
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
    return this.#signals.install(options);
  }

  /** Shuts the runtime down (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}
