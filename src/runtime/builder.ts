import { BACKEND_TYPES, type BackendType, selectBackend } from '../backends/backend-type.js';
import { checkWebGpuAdapterOptions, type WebGpuAdapterOptions } from '../backends/webgpu/webgpu-adapter.js';
import { type ClusterOptions, resolveClusterOptions } from '../cluster/cluster-options.js';
import { ArgumentTypeError, InvalidArgumentError } from '../errors/argument-errors.js';
import { BackendUnavailableError, KernelModuleError } from '../errors/runtime-errors.js';
import { isKernelWorker } from '../kernel/kernel-definition.js';
import type { InspectionObserver } from '../operations/lifecycle-inspector.js';
import { RuntimeTracing } from '../telemetry/runtime-tracing.js';
import { resolveTracingOptions, type TracingOptions } from '../telemetry/tracing-options.js';
import { type RuntimeConfig, resolveConfig } from './config.js';
import { PRESETS, type PresetSettings } from './presets.js';
import type { RingKernelRuntime, RuntimeInit } from './runtime.js';

/**
 * Builds a {@link RingKernelRuntime}: pick a backend (or let it choose the best available, falling back to the
 * CPU), a device and settings.
 *
 * @example
 * const runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 2 }).build();
 */
export class RuntimeBuilder {
  /** Makes the runtime: the builder knows only its type, so the runtime module is the only one to import the other. */
  readonly #create: (init: RuntimeInit) => RingKernelRuntime;
  #backend: BackendType | undefined;
  #webgpu: WebGpuAdapterOptions = {};
  #device = 0;
  #config: Partial<RuntimeConfig> = {};
  #start = true;
  #preset: PresetSettings | undefined;
  #tracing: TracingOptions | undefined;
  #inspect: InspectionObserver | undefined;
  #cluster: ClusterOptions | undefined;

  /** @internal — use {@link RingKernelRuntime.builder}. */
  constructor(create: (init: RuntimeInit) => RingKernelRuntime) {
    this.#create = create;
  }

  /**
   * The development preset: fast start, verbose logs, every message traced where affordable — up to 20 000
   * traces/s and what the exporter thread carries; past that whole traces are left out and counted (see
   * {@link PRESETS}).
   */
  development(): this {
    this.#preset = PRESETS.development;
    return this;
  }

  /**
   * The production preset: health checks, a restarting watchdog, load shedding, 10 % trace sampling, graceful
   * shutdown ({@link PRESETS}).
   */
  production(): this {
    this.#preset = PRESETS.production;
    return this;
  }

  /** The high-performance preset: maximum throughput, minimal overhead, tracing off ({@link PRESETS}). */
  highPerformance(): this {
    this.#preset = PRESETS.highPerformance;
    return this;
  }

  /** `build()` leaves the runtime Initializing: it accepts no work until `runtime.start()`. */
  deferStart(): this {
    this.#start = false;
    return this;
  }

  /**
   * Asks for a backend; `build()` fails with `BackendUnavailableError` if it cannot run here. For WebGPU
   * (`'webgpu'`, or the seed's `'wgpu'`), `options` choose the adapter: a software (fallback) adapter such as
   * Mesa's lavapipe is taken only with `allowFallback: true`.
   *
   * @example
   * await RingKernelRuntime.builder().backend('webgpu', { allowFallback: true }).build();
   */
  backend(type: BackendType, options?: WebGpuAdapterOptions): this {
    if (!BACKEND_TYPES.includes(type)) {
      throw new ArgumentTypeError(
        'backend',
        `backend must be one of ${BACKEND_TYPES.join(', ')}, got ${JSON.stringify(type)}`,
      );
    }
    if (options !== undefined) {
      checkWebGpuAdapterOptions(options, 'backend options');
      this.#webgpu = options;
    }
    this.#backend = type === 'wgpu' ? 'webgpu' : type;
    return this;
  }

  /** Picks the device (0 = the first). */
  device(id: number): this {
    if (!Number.isInteger(id) || id < 0) {
      throw new InvalidArgumentError('device', `device must be a non-negative integer, got ${id}`);
    }
    this.#device = id;
    return this;
  }

  /** Overrides settings; the rest keep their defaults. Validated here, with messages naming the field. */
  config(partial: Partial<RuntimeConfig>): this {
    resolveConfig({ ...this.#config, ...partial });
    this.#config = { ...this.#config, ...partial };
    return this;
  }

  /**
   * Turns on OpenTelemetry tracing: a span around every sampled message (send/call on the host, processing in the
   * kernel, each kernel-to-kernel hop, receive) and every lifecycle transition, exported over OTLP/HTTP by default.
   * Unset options come from the `OTEL_*` environment; `OTEL_TRACES_EXPORTER=none` leaves tracing off. Overrides
   * a preset's tracing.
   *
   * @example
   * const runtime = await RingKernelRuntime.builder().tracing({ serviceName: 'checkout' }).build();
   */
  tracing(options: TracingOptions = {}): this {
    resolveTracingOptions(options);
    this.#tracing = options;
    return this;
  }

  /**
   * Sends the inspection events of every kernel's lifecycle actor — which runs in a worker thread — to `observer`,
   * an XState inspection observer (`@statelyai/inspect`'s `inspector.inspect`, or a function), as if the actors
   * were local: each kernel shows as an actor named after it, with its snapshots and the events it received, beside
   * your own machines. CPU kernels; lifecycle events only, never per message.
   *
   * @example
   * const inspector = createBrowserInspector();
   * const runtime = await RingKernelRuntime.builder().inspect(inspector.inspect).build();
   */
  inspect(observer: InspectionObserver): this {
    if (typeof observer !== 'function' && typeof (observer as { next?: unknown })?.next !== 'function') {
      throw new ArgumentTypeError(
        'observer',
        'inspect must be an XState inspection observer: a function or an object with next()',
      );
    }
    this.#inspect = observer;
    return this;
  }

  /**
   * Makes the runtime a node of a cluster over NATS: its named kernels are registered cluster-wide and served to
   * other nodes, and `runtime.ref(name)` reaches kernels on any node. The NATS client (`@nats-io/transport-node`,
   * `@nats-io/jetstream`, `@nats-io/kv`) is loaded only then. Options are checked here; `build()` connects.
   *
   * @example
   * const runtime = await RingKernelRuntime.builder()
   *   .cluster({ servers: 'nats://127.0.0.1:4222', node: 'edge-1', cluster: 'sensors' })
   *   .build();
   */
  cluster(options: ClusterOptions): this {
    resolveClusterOptions(options);
    this.#cluster = options;
    return this;
  }

  /** Builds the runtime (its worker pool) and starts it (Running), unless {@link RuntimeBuilder.deferStart}. */
  async build(): Promise<RingKernelRuntime> {
    if (isKernelWorker()) {
      // A kernel's module builds a runtime when imported: each worker would build one, whose workers build one…
      throw new KernelModuleError(
        undefined,
        "a runtime is being built inside one of ringkernel's kernel workers, while it imports a kernel's module: that module builds a runtime when it is imported. Define kernels in modules of their own that only define them, and build the runtime in the program's entry module",
      );
    }
    // Explicit settings override the preset's, whichever was called first.
    const config = resolveConfig({ ...this.#preset?.config, ...this.#config });
    const { backend, probes } = await selectBackend(this.#backend, this.#webgpu);
    if (backend === 'cpu' && this.#device !== 0) {
      throw new BackendUnavailableError('cpu', `device ${this.#device} does not exist; the CPU backend has device 0`);
    }
    const tracingOptions = this.#tracing ?? presetTracing(this.#preset);
    const tracing = tracingOptions === undefined ? undefined : RuntimeTracing.create(tracingOptions);
    await tracing?.ready();
    const runtime = this.#create({
      backend,
      probes,
      webgpu: {
        allowFallback: this.#webgpu.allowFallback ?? false,
        nativeBackend: this.#webgpu.nativeBackend ?? 'default',
        deviceBackends: this.#webgpu.deviceBackends ?? [],
      },
      device: this.#device,
      config,
      tracing,
      start: this.#start,
      preset: this.#preset?.name,
      inspect: this.#inspect,
    });
    const preset = this.#preset;
    if (preset !== undefined) applyPreset(runtime, preset);
    if (this.#cluster !== undefined) {
      try {
        await runtime.joinCluster(this.#cluster);
      } catch (error) {
        await runtime.shutdown();
        throw error;
      }
    }
    return runtime;
  }
}

/** A preset's tracing; the `OTEL_TRACES_SAMPLER*` variables, when set, choose the sampler instead. */
function presetTracing(preset: PresetSettings | undefined): TracingOptions | undefined {
  if (preset?.tracing === undefined) return undefined;
  if (process.env.OTEL_TRACES_SAMPLER !== undefined) return {};
  return preset.tracing;
}

/** Starts the operations a preset asks for. */
function applyPreset(runtime: RingKernelRuntime, preset: PresetSettings): void {
  if (preset.healthCheckIntervalMs !== undefined) runtime.healthChecker().start(preset.healthCheckIntervalMs);
  if (preset.watchdog !== undefined) {
    const watchdog = runtime.kernelWatchdog();
    watchdog.setHeartbeatTimeout(preset.watchdog.heartbeatTimeoutMs);
    watchdog.setPolicy(preset.watchdog.policy);
    watchdog.start(preset.watchdog.intervalMs);
  }
  if (preset.degradationIntervalMs !== undefined) runtime.degradationManager().start(preset.degradationIntervalMs);
  if (preset.gracefulShutdownDrainMs !== undefined) {
    runtime.shutdownOnSignals({ drainTimeoutMs: preset.gracefulShutdownDrainMs });
  }
}
