import { EventEmitter } from 'node:events';
import { totalmem } from 'node:os';
import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../errors/argument-errors.js';

/** What a block of runtime memory holds. */
export type MemoryKind = 'ring' | 'control-block' | 'telemetry' | 'device-buffer';

/** One allocation the runtime made. */
export interface MemoryAllocation {
  readonly kind: MemoryKind;
  /** Who owns it: a kernel's name, or a link's `from→to`. */
  readonly owner: string;
  readonly bytes: number;
}

/** A memory pressure level: Normal below the first threshold, then each alert level in turn. */
export type MemoryPressureLevel = 'Normal' | MemoryPressureAlert;
/** The alert levels (the seed's `MemoryPressureAlert`). */
export type MemoryPressureAlert = 'Elevated' | 'High' | 'Critical';

/** An alert, raised by {@link GpuMemoryDashboard.check} when pressure crosses a level, or by hand. */
export interface MemoryAlertEvent {
  readonly level: MemoryPressureAlert;
  readonly pressure: number;
  readonly message: string;
  readonly at: Date;
}

const LEVELS: readonly MemoryPressureAlert[] = ['Elevated', 'High', 'Critical'];

/**
 * The runtime's memory, by kind (the seed's `GpuMemoryDashboard`, covering CPU-backend memory too): rings and
 * control blocks now; telemetry rings and device buffers as those parts register them. Every allocation the
 * runtime makes for a kernel is recorded at launch and released when the kernel ends. `memoryPressure()` is the
 * total against a budget (default: the machine's memory), in 0…1; levels with alerts at 0.70 / 0.85 / 0.95.
 *
 * @example
 * const dashboard = runtime.gpuMemoryDashboard();
 * dashboard.on('alert', (alert) => log.warn(alert.message));
 * if (dashboard.memoryPressure() > 0.9) dashboard.triggerAlert('High');
 */
export class GpuMemoryDashboard extends EventEmitter<{ alert: [MemoryAlertEvent] }> {
  readonly #allocations = new Map<object, MemoryAllocation[]>();
  #budget: number;
  #thresholds: readonly [number, number, number] = [0.7, 0.85, 0.95];
  #level: MemoryPressureLevel = 'Normal';
  #alerts = 0;

  /** @internal — use `runtime.gpuMemoryDashboard()`. */
  constructor(budgetBytes: number = totalmem()) {
    super();
    this.#budget = budgetBytes;
  }

  /** Records what an owner (a kernel handle, a link) allocated. @internal */
  record(owner: object, allocations: readonly MemoryAllocation[]): void {
    const list = this.#allocations.get(owner) ?? [];
    list.push(...allocations);
    this.#allocations.set(owner, list);
  }

  /** Forgets an owner's allocations (it ended; its memory goes with its last reference). @internal */
  release(owner: object): void {
    this.#allocations.delete(owner);
  }

  /** Bytes an owner (a kernel handle) has allocated now: for per-device budgets. */
  bytesOf(owner: object): number {
    let bytes = 0;
    for (const allocation of this.#allocations.get(owner) ?? []) bytes += allocation.bytes;
    return bytes;
  }

  /** Every live allocation. */
  allocations(): MemoryAllocation[] {
    return [...this.#allocations.values()].flat();
  }

  /** Bytes by kind, and in all. */
  totals(): Readonly<Record<MemoryKind, number>> & { readonly total: number } {
    const totals = { ring: 0, 'control-block': 0, telemetry: 0, 'device-buffer': 0, total: 0 };
    for (const allocation of this.allocations()) {
      totals[allocation.kind] += allocation.bytes;
      totals.total += allocation.bytes;
    }
    return totals;
  }

  /** The budget pressure is measured against, bytes. */
  get budgetBytes(): number {
    return this.#budget;
  }

  /** Sets the budget. @throws {RangeError} unless a positive number of bytes. */
  setBudget(bytes: number): void {
    if (typeof bytes !== 'number' || !(bytes > 0) || !Number.isFinite(bytes)) {
      throw new InvalidArgumentError(
        'bytes',
        `setBudget: bytes (the memory budget) must be a positive number of bytes, got ${describeValue(bytes)}`,
      );
    }
    this.#budget = bytes;
  }

  /**
   * Sets the pressures at which Elevated, High and Critical begin.
   * @throws {RangeError} unless three increasing numbers in (0, 1].
   */
  setThresholds(thresholds: readonly [number, number, number]): void {
    const [a, b, c] = thresholds;
    if (!(a > 0 && a < b && b < c && c <= 1)) {
      throw new InvalidArgumentError(
        'thresholds',
        `setThresholds: thresholds must be three increasing numbers in (0, 1], got ${JSON.stringify(thresholds)}`,
      );
    }
    this.#thresholds = [a, b, c];
  }

  /** Allocated bytes against the budget, 0…1 (capped at 1). */
  memoryPressure(): number {
    return Math.min(1, this.totals().total / this.#budget);
  }

  /** The level the current pressure is at. */
  level(): MemoryPressureLevel {
    const pressure = this.memoryPressure();
    let level: MemoryPressureLevel = 'Normal';
    this.#thresholds.forEach((threshold, k) => {
      if (pressure >= threshold) level = LEVELS[k] as MemoryPressureAlert;
    });
    return level;
  }

  /** Alerts raised so far (by checks and by hand). */
  get alertsRaised(): number {
    return this.#alerts;
  }

  /** Measures the pressure; raises an alert when it has risen to a higher level since the last check. */
  check(): MemoryPressureLevel {
    const level = this.level();
    const rank = (l: MemoryPressureLevel): number => (l === 'Normal' ? 0 : LEVELS.indexOf(l) + 1);
    if (level !== 'Normal' && rank(level) > rank(this.#level)) this.triggerAlert(level);
    this.#level = level;
    return level;
  }

  /** Raises an alert to every listener. */
  triggerAlert(level: MemoryPressureAlert, message?: string): MemoryAlertEvent {
    if (!LEVELS.includes(level))
      throw new ArgumentTypeError(
        'level',
        `triggerAlert: level must be one of ${LEVELS.join(', ')}, got ${describeValue(level)}`,
      );
    const pressure = this.memoryPressure();
    const event: MemoryAlertEvent = {
      level,
      pressure,
      message:
        message ??
        `memory pressure ${(pressure * 100).toFixed(1)} % (${this.totals().total} of ${this.#budget} bytes): ${level}`,
      at: new Date(),
    };
    this.#alerts++;
    this.emit('alert', event);
    return event;
  }
}
