import { ArgumentTypeError, InvalidArgumentError } from '../errors/argument-errors.js';
import { PlacementError } from '../errors/device-errors.js';
import type { DeviceInfo } from './topology.js';

/**
 * How {@link MultiGpuCoordinator} picks a device among those that satisfy a placement's requirements.
 *
 * @example
 * runtime.multiGpuCoordinator().setStrategy(LoadBalancingStrategy.ComputeCapability);
 */
export const LoadBalancingStrategy = {
  /** The lowest-numbered device that fits. */
  FirstAvailable: 'FirstAvailable',
  /** Each placement the next device in turn (that fits). */
  RoundRobin: 'RoundRobin',
  /** The device with the lowest measured load score (see {@link DeviceLoad.score}). The default. */
  LeastLoaded: 'LeastLoaded',
  /** The device with the most free memory budget. */
  MemoryBased: 'MemoryBased',
  /** The device with the most compute units (CPU: worker threads); ties go to the one hosting fewer kernels. */
  ComputeCapability: 'ComputeCapability',
} as const;
export type LoadBalancingStrategy = (typeof LoadBalancingStrategy)[keyof typeof LoadBalancingStrategy];

/** A device's load, measured when a placement is made. */
export interface DeviceLoad {
  readonly device: DeviceInfo;
  /** Kernels it hosts. */
  readonly kernels: number;
  /** Frames waiting in its kernels' input rings, and what those rings hold at most. */
  readonly queuedFrames: number;
  readonly queueCapacity: number;
  /**
   * Event-loop utilization of its worker threads since the previous measurement, 0…1 (Node's
   * `worker.performance.eventLoopUtilization`): a kernel handling messages keeps it up, an idle (parked) one does not.
   */
  readonly utilization: number;
  /** Ring and control-block bytes its kernels own (the memory dashboard), and its budget. */
  readonly memoryUsedBytes: number;
  readonly memoryBudgetBytes: number;
  /**
   * LeastLoaded's score: utilization + queue pressure (queued / capacity) + 0.01 × kernels per compute unit —
   * measured work first, the kernel count only to spread idle kernels.
   */
  readonly score: number;
}

/** What a placement needs. */
export interface PlacementRequirements {
  /** Bytes the kernel will own on the device (rings, control block); the device's free budget must cover them. */
  readonly memoryBytes?: number;
  /** At least this many compute units. */
  readonly minComputeUnits?: number;
  /** On the same device as this live kernel (a chatty pair). */
  readonly colocateWith?: string;
  /** Devices the kernel must not go to (the runtime passes the CUDA devices lost to a sticky error). */
  readonly excludeDevices?: readonly number[];
}

/** A custom strategy: picks one of `candidates` (those that satisfy the requirements) and returns its id. */
export type DeviceSelector = (candidates: readonly DeviceLoad[], requirements: PlacementRequirements) => number;

/** Where the coordinator reads devices and loads from (the runtime). */
export interface DeviceLoadSource {
  loads(): DeviceLoad[];
  /** The device of the live kernel named `name`. @throws when there is none. */
  deviceOfKernel(name: string): number;
}

/**
 * Places kernels on devices: filters the devices by a placement's requirements (free memory budget, compute
 * units, co-location), then picks one by its strategy from loads measured at that moment. `runtime.launch` asks it
 * unless the launch names a `device`.
 *
 * @example
 * const coordinator = runtime.multiGpuCoordinator();
 * coordinator.setStrategy(LoadBalancingStrategy.MemoryBased);
 * const device = coordinator.selectDevice({ memoryBytes: 64 << 20 });
 * await runtime.launch('scorer', 1, 1, { device });
 */
export class MultiGpuCoordinator {
  readonly #source: DeviceLoadSource;
  #strategy: LoadBalancingStrategy | DeviceSelector;
  #nextRoundRobin = 0;
  #placements = 0;

  /** @internal — use `runtime.multiGpuCoordinator()`. */
  constructor(source: DeviceLoadSource, strategy: LoadBalancingStrategy | DeviceSelector = 'LeastLoaded') {
    this.#source = source;
    this.#strategy = MultiGpuCoordinator.#check(strategy);
  }

  static #check(strategy: LoadBalancingStrategy | DeviceSelector): LoadBalancingStrategy | DeviceSelector {
    if (typeof strategy === 'function') return strategy;
    if (!Object.values(LoadBalancingStrategy).includes(strategy)) {
      throw new ArgumentTypeError(
        'strategy',
        `strategy must be one of ${Object.values(LoadBalancingStrategy).join(', ')} or a function, got ${JSON.stringify(strategy)}`,
      );
    }
    return strategy;
  }

  /** The strategy in use (`'custom'` for a function). */
  get strategy(): LoadBalancingStrategy | 'custom' {
    return typeof this.#strategy === 'function' ? 'custom' : this.#strategy;
  }

  /** Placements made so far. */
  get placements(): number {
    return this.#placements;
  }

  /** Changes the strategy. @throws {ArgumentTypeError} (RK_INVALID_ARGUMENT) on an unknown one. */
  setStrategy(strategy: LoadBalancingStrategy | DeviceSelector): void {
    this.#strategy = MultiGpuCoordinator.#check(strategy);
  }

  /** Every device's load, measured now. */
  loads(): DeviceLoad[] {
    return this.#source.loads();
  }

  /**
   * The device for a placement.
   * @throws {PlacementError} when no device satisfies the requirements (or a custom strategy picks none of them).
   */
  selectDevice(requirements: PlacementRequirements = {}): number {
    const { memoryBytes = 0, minComputeUnits = 0, colocateWith, excludeDevices = [] } = requirements;
    if (typeof memoryBytes !== 'number' || !(memoryBytes >= 0)) {
      throw new InvalidArgumentError(
        'requirements.memoryBytes',
        `requirements.memoryBytes must be a non-negative number, got ${memoryBytes}`,
      );
    }
    if (typeof minComputeUnits !== 'number' || !(minComputeUnits >= 0)) {
      throw new InvalidArgumentError(
        'requirements.minComputeUnits',
        `requirements.minComputeUnits must be a non-negative number, got ${minComputeUnits}`,
      );
    }
    const loads = this.#source.loads();
    const pinned = colocateWith === undefined ? undefined : this.#source.deviceOfKernel(colocateWith);
    const candidates = loads.filter(
      (load) =>
        (pinned === undefined || load.device.id === pinned) &&
        !excludeDevices.includes(load.device.id) &&
        load.device.computeUnits >= minComputeUnits &&
        load.memoryBudgetBytes - load.memoryUsedBytes >= memoryBytes,
    );
    if (candidates.length === 0) {
      const why = [
        memoryBytes > 0 ? `${memoryBytes} bytes free` : '',
        minComputeUnits > 0 ? `${minComputeUnits} compute units` : '',
        pinned === undefined ? '' : `device ${pinned} (where '${colocateWith}' runs)`,
        excludeDevices.length === 0 ? '' : `is not one of ${excludeDevices.join(', ')}`,
      ].filter(Boolean);
      throw new PlacementError(`none of ${loads.length} devices has ${why.join(' and ') || 'room'}`);
    }
    const device = this.#pick(candidates, requirements, loads.length);
    this.#placements++;
    return device;
  }

  #pick(candidates: readonly DeviceLoad[], requirements: PlacementRequirements, deviceCount: number): number {
    const strategy = this.#strategy;
    const best = (better: (a: DeviceLoad, b: DeviceLoad) => boolean): number =>
      candidates.reduce((a, b) => (better(b, a) ? b : a)).device.id;
    switch (strategy) {
      case 'FirstAvailable':
        return best((a, b) => a.device.id < b.device.id);
      case 'RoundRobin': {
        // The first candidate at or after the cursor, cyclically.
        const start = this.#nextRoundRobin % deviceCount;
        const order = (id: number): number => (id - start + deviceCount) % deviceCount;
        const chosen = best((a, b) => order(a.device.id) < order(b.device.id));
        this.#nextRoundRobin = chosen + 1;
        return chosen;
      }
      case 'LeastLoaded':
        return best((a, b) => a.score < b.score || (a.score === b.score && a.device.id < b.device.id));
      case 'MemoryBased': {
        const free = (load: DeviceLoad): number => load.memoryBudgetBytes - load.memoryUsedBytes;
        return best((a, b) => free(a) > free(b) || (free(a) === free(b) && a.device.id < b.device.id));
      }
      case 'ComputeCapability':
        return best(
          (a, b) =>
            a.device.computeUnits > b.device.computeUnits ||
            (a.device.computeUnits === b.device.computeUnits &&
              (a.kernels < b.kernels || (a.kernels === b.kernels && a.device.id < b.device.id))),
        );
      default: {
        const chosen = strategy(candidates, requirements);
        if (!candidates.some((load) => load.device.id === chosen)) {
          throw new PlacementError(
            `the custom strategy chose ${JSON.stringify(chosen)}, not one of the candidate devices ${candidates.map((load) => load.device.id).join(', ')}`,
          );
        }
        return chosen;
      }
    }
  }
}
