import { availableParallelism } from 'node:os';
import { ArgumentTypeError, InvalidArgumentError } from '../errors/argument-errors.js';
import { FrameHeader } from '../wire/frame-header.js';
import { LOG_LEVELS, type LogLevel } from './logger.js';

/**
 * Runtime settings, with the seed's names and defaults.
 *
 * Memory: each kernel owns two rings (input and output) and a 128-byte ControlBlock. A ring holds
 * `queueCapacity` frames of its message type — for a fixed-size schema that is exactly
 * `queueCapacity × (96 + size, padded to 8)` bytes (4096 × 160 B = 640 KiB for a 64-byte message), not
 * `queueCapacity × defaultMessageSize` (which would be 256 MiB). Only raw-bytes kernels (`BytesMessage`) use
 * `defaultMessageSize`: their rings hold at least two maximum-size frames. Ring memory is reserved, not touched:
 * pages become resident as the ring wraps through them, so 1000 idle kernels cost little RSS (see
 * docs/benchmarks.md, `idle1000.rssMB`).
 */
export interface RuntimeConfig {
  /** Frames each kernel queue holds (input and output alike), unless a launch says otherwise. Default 4096. */
  readonly defaultQueueCapacity: number;
  /** Largest frame, header included, for raw-bytes kernels, in bytes. Default 65792 (64 KiB + 256). */
  readonly defaultMessageSize: number;
  /**
   * How often, in µs, a bridge that cannot be woken polls its rings. The CPU backend's `direct` strategy is woken
   * through the rings' eventcounts and never polls; the native DMA mirror uses this. Default 100.
   */
  readonly bridgePollInterval: number;
  /** How long, in ms, a kernel may take to terminate before it is forced (and marked Failed). Default 5000. */
  readonly terminationTimeout: number;
  /** Record telemetry (counters, latency histograms). Default true; when false, handler latency is not sampled. */
  readonly enableTelemetry: boolean;
  /** Worker threads hosting kernels. Default: the machine's cores (`os.availableParallelism()`). */
  readonly workers: number;
  /** Kernels one worker may host. Default 4096. */
  readonly maxKernelsPerWorker: number;
  /** What the runtime logs to stderr (control-plane events only). Default `'warn'`. */
  readonly logLevel: LogLevel;
  /**
   * Devices the runtime exposes. On the CPU backend each is a *virtual device*: a group of the `workers` (split
   * as evenly as can be, so `workers` must be at least `devices`) with its own worker pool and memory budget, for
   * placement and migration (see `runtime.gpuTopology()`). Default 1.
   */
  readonly devices: number;
  /**
   * Each device's memory budget in MiB, against which its kernels' rings and control blocks are counted. Default 0:
   * the machine's memory divided evenly among the devices.
   */
  readonly deviceMemoryMB: number;
  /**
   * The old generation of each worker thread's heap, in MiB (the kernels' state lives there): the most it may hold
   * (Node's `resourceLimits.maxOldGenerationSizeMb`). It also bounds how far V8 lets that heap grow between full
   * collections: below 2 GiB V8 grows it by 1.3–2× its live size, from 2 GiB on by 4×, so a worker that launches
   * and ends kernels all day holds about half the memory it would under Node's default (up to 4 GiB). A worker
   * whose kernels' state outgrows it dies (its kernels fail, supervised ones restart elsewhere): raise it for
   * kernels with large state. 0: Node's default. Default 1024.
   */
  readonly workerHeapMB: number;
  /**
   * The young generation of each worker thread's heap, in MiB (Node's `resourceLimits.maxYoungGenerationSizeMb`:
   * two semi-spaces and a third for large objects): where each message's short-lived objects are made and
   * collected. 0: Node's default (48 on 64-bit machines, to which V8 grows it under steady allocation). Default 24.
   */
  readonly workerYoungHeapMB: number;
}

/** The defaults, as the seed gives them. */
export const DEFAULT_RUNTIME_CONFIG: RuntimeConfig = Object.freeze({
  defaultQueueCapacity: 4096,
  defaultMessageSize: 65_792,
  bridgePollInterval: 100,
  terminationTimeout: 5_000,
  enableTelemetry: true,
  workers: availableParallelism(),
  maxKernelsPerWorker: 4096,
  logLevel: 'warn',
  devices: 1,
  deviceMemoryMB: 0,
  workerHeapMB: 1024,
  workerYoungHeapMB: 24,
});

function integer(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') {
    throw new ArgumentTypeError(`config.${name}`, `config.${name} must be a number, got ${typeof value}`);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(
      `config.${name}`,
      `config.${name} must be an integer in [${min}, ${max}], got ${value}`,
    );
  }
  return value;
}

/** A heap limit: 0 (Node's default) or an integer in [min, max]. */
function heapLimit(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') {
    throw new ArgumentTypeError(`config.${name}`, `config.${name} must be a number, got ${typeof value}`);
  }
  if (value !== 0 && (!Number.isInteger(value) || value < min || value > max)) {
    throw new InvalidArgumentError(
      `config.${name}`,
      `config.${name} must be 0 (Node's default) or an integer in [${min}, ${max}] MiB, got ${value}`,
    );
  }
  return value;
}

/**
 * Merges a partial config over the defaults and validates every field.
 * @throws {ArgumentTypeError | InvalidArgumentError} (a `TypeError` / `RangeError`, code RK_INVALID_ARGUMENT) naming
 * the field, on an unknown key or a bad value.
 */
export function resolveConfig(partial: Partial<RuntimeConfig> = {}): RuntimeConfig {
  if (typeof partial !== 'object' || partial === null)
    throw new ArgumentTypeError('config', 'config must be an object');
  for (const key of Object.keys(partial)) {
    if (!(key in DEFAULT_RUNTIME_CONFIG)) {
      throw new ArgumentTypeError(`config.${key}`, `config.${key} is not a runtime setting`);
    }
  }
  const merged = { ...DEFAULT_RUNTIME_CONFIG, ...partial };
  integer('defaultQueueCapacity', merged.defaultQueueCapacity, 1, 1 << 20);
  integer('defaultMessageSize', merged.defaultMessageSize, FrameHeader.SIZE, 1 << 26);
  integer('bridgePollInterval', merged.bridgePollInterval, 1, 10_000_000);
  integer('terminationTimeout', merged.terminationTimeout, 1, 3_600_000);
  integer('workers', merged.workers, 1, 1024);
  integer('maxKernelsPerWorker', merged.maxKernelsPerWorker, 1, 1 << 20);
  integer('devices', merged.devices, 1, 64);
  integer('deviceMemoryMB', merged.deviceMemoryMB, 0, 1 << 30);
  // Below these a worker cannot load its modules; past them V8 takes no more.
  heapLimit('workerHeapMB', merged.workerHeapMB, 64, 1 << 20);
  heapLimit('workerYoungHeapMB', merged.workerYoungHeapMB, 3, 1024);
  if (merged.workers < merged.devices) {
    throw new InvalidArgumentError(
      'config.workers',
      `config.workers (${merged.workers}) must be at least config.devices (${merged.devices}): each device needs a worker`,
    );
  }
  if (!LOG_LEVELS.includes(merged.logLevel)) {
    throw new ArgumentTypeError(
      'config.logLevel',
      `config.logLevel must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(merged.logLevel)}`,
    );
  }
  if (typeof merged.enableTelemetry !== 'boolean') {
    throw new ArgumentTypeError(
      'config.enableTelemetry',
      `config.enableTelemetry must be a boolean, got ${typeof merged.enableTelemetry}`,
    );
  }
  return Object.freeze(merged);
}
