import { BACKEND_TYPES, type BackendType, selectBackend } from '../backends/backend-type.js';
import { BackendUnavailableError } from '../errors/runtime-errors.js';
import { RuntimeTracing } from '../telemetry/runtime-tracing.js';
import { resolveTracingOptions, type TracingOptions } from '../telemetry/tracing-options.js';
import { type RuntimeConfig, resolveConfig } from './config.js';
import { RingKernelRuntime } from './runtime.js';

/**
 * Builds a {@link RingKernelRuntime}: pick a backend (or let it choose the best available, falling back to the
 * CPU), a device and settings.
 *
 * @example
 * const runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 2 }).build();
 */
export class RuntimeBuilder {
  #backend: BackendType | undefined;
  #device = 0;
  #config: Partial<RuntimeConfig> = {};
  #tracing: TracingOptions | undefined;

  /** Asks for a backend; `build()` fails with `BackendUnavailableError` if it cannot run here. */
  backend(type: BackendType): this {
    if (!BACKEND_TYPES.includes(type)) {
      throw new TypeError(`backend must be one of ${BACKEND_TYPES.join(', ')}, got ${JSON.stringify(type)}`);
    }
    this.#backend = type;
    return this;
  }

  /** Picks the device (0 = the first). */
  device(id: number): this {
    if (!Number.isInteger(id) || id < 0) throw new RangeError(`device must be a non-negative integer, got ${id}`);
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
   * Unset options come from the `OTEL_*` environment; `OTEL_TRACES_EXPORTER=none` leaves tracing off.
   *
   * @example
   * const runtime = await RingKernelRuntime.builder().tracing({ serviceName: 'checkout' }).build();
   */
  tracing(options: TracingOptions = {}): this {
    resolveTracingOptions(options);
    this.#tracing = options;
    return this;
  }

  /** Starts the runtime (its worker pool). */
  async build(): Promise<RingKernelRuntime> {
    const config = resolveConfig(this.#config);
    const { backend, probes } = selectBackend(this.#backend);
    if (backend === 'cpu' && this.#device !== 0) {
      throw new BackendUnavailableError('cpu', `device ${this.#device} does not exist; the CPU backend has device 0`);
    }
    const tracing = this.#tracing === undefined ? undefined : RuntimeTracing.create(this.#tracing);
    return new RingKernelRuntime({ backend, probes, device: this.#device, config, tracing });
  }
}
