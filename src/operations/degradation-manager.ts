import { EventEmitter } from 'node:events';
import { ArgumentTypeError, InvalidArgumentError } from '../errors/argument-errors.js';
import { LoadShedError } from '../errors/runtime-errors.js';
import { Priority } from '../kernel/priority.js';
import { PeriodicTask } from './periodic-task.js';

/** Degradation levels, from full service to emergency (the seed's `DegradationLevel`). */
export const DegradationLevel = {
  Normal: 'Normal',
  Light: 'Light',
  Moderate: 'Moderate',
  Severe: 'Severe',
  Critical: 'Critical',
} as const;
/** One of {@link DegradationLevel}'s values. */
export type DegradationLevel = (typeof DegradationLevel)[keyof typeof DegradationLevel];

const ORDER: readonly DegradationLevel[] = ['Normal', 'Light', 'Moderate', 'Severe', 'Critical'];

/** The measured signals that drive the level, each in 0…1. */
export interface DegradationSignals {
  /** The fullest kernel input queue: depth / capacity. */
  readonly queuePressure: number;
  /** The memory dashboard's pressure. */
  readonly memoryPressure: number;
  /** Failed / (processed + failed) across kernels since the last evaluation. */
  readonly errorRate: number;
  /** The share of circuit breakers that are open. */
  readonly openBreakers: number;
}

/** Where each signal starts Light, Moderate, Severe and Critical. */
export type DegradationThresholds = Readonly<
  Record<keyof DegradationSignals, readonly [number, number, number, number]>
>;

/** Options of `runtime.degradationManager()`. */
export interface DegradationOptions {
  /** Per signal, the values at which Light, Moderate, Severe and Critical begin (increasing). */
  readonly thresholds?: Partial<DegradationThresholds>;
  /**
   * A level is left only once every signal is below its threshold × (1 − hysteresis), so a signal hovering at a
   * threshold does not flap the level. 0…0.9, default 0.2.
   */
  readonly hysteresis?: number;
  /** The lowest priority admitted at each level (messages below are shed). */
  readonly admit?: Partial<Readonly<Record<DegradationLevel, number>>>;
}

/** The defaults: what each level sheds, and where each signal starts each level. */
export const DEFAULT_DEGRADATION: {
  readonly thresholds: DegradationThresholds;
  readonly hysteresis: number;
  readonly admit: Readonly<Record<DegradationLevel, number>>;
} = Object.freeze({
  thresholds: {
    queuePressure: [0.5, 0.7, 0.85, 0.95] as const,
    memoryPressure: [0.7, 0.8, 0.9, 0.97] as const,
    errorRate: [0.05, 0.1, 0.25, 0.5] as const,
    openBreakers: [0.01, 0.34, 0.67, 1] as const,
  },
  hysteresis: 0.2,
  admit: {
    Normal: Priority.Background,
    Light: Priority.Low,
    Moderate: Priority.Normal,
    Severe: Priority.High,
    Critical: Priority.Critical,
  },
});

/** A level change. */
export interface DegradationChange {
  readonly from: DegradationLevel;
  readonly to: DegradationLevel;
  readonly signals: DegradationSignals;
}

/** What the manager needs from its runtime. */
export interface DegradationHost {
  /** Measures the signals now. */
  measure(): DegradationSignals;
  /** Sets the lowest priority every kernel admits; `refuse` builds a refused message's error. */
  shedBelow(minPriority: number, refuse: ((kernel: string, priority: number) => Error) | undefined): void;
}

function checkOptions(options: DegradationOptions) {
  const hysteresis = options.hysteresis ?? DEFAULT_DEGRADATION.hysteresis;
  if (typeof hysteresis !== 'number' || !(hysteresis >= 0 && hysteresis <= 0.9)) {
    throw new InvalidArgumentError(
      'options.hysteresis',
      `options.hysteresis must be a number in [0, 0.9], got ${hysteresis}`,
    );
  }
  const thresholds = { ...DEFAULT_DEGRADATION.thresholds, ...options.thresholds };
  for (const [signal, values] of Object.entries(thresholds)) {
    if (!Array.isArray(values) || values.length !== 4 || !values.every((v, k) => v > (k === 0 ? 0 : values[k - 1]))) {
      throw new InvalidArgumentError(
        `options.thresholds.${signal}`,
        `options.thresholds.${signal} must be four increasing positive numbers, got ${JSON.stringify(values)}`,
      );
    }
  }
  const admit = { ...DEFAULT_DEGRADATION.admit, ...options.admit };
  for (const [level, priority] of Object.entries(admit)) {
    if (!ORDER.includes(level as DegradationLevel))
      throw new ArgumentTypeError(`options.admit.${level}`, `options.admit.${level} is not a level`);
    if ((priority & 0xff) !== priority) {
      throw new InvalidArgumentError(
        `options.admit.${level}`,
        `options.admit.${level} must be a priority in [0, 255], got ${priority}`,
      );
    }
  }
  return { hysteresis, thresholds: thresholds as DegradationThresholds, admit };
}

/**
 * Graceful degradation under load (the seed's `DegradationManager`): a level from Normal to Critical, driven by
 * measured signals — queue pressure, memory pressure, error rate, open circuit breakers — against thresholds
 * that are evaluated, with hysteresis. Each level sheds by priority: messages below the level's lowest admitted
 * priority are refused at `send` with {@link LoadShedError} (code RK_LOAD_SHED), counted per level, and
 * dead-lettered (`load-shed`). By default Light sheds Background, Moderate everything below Normal, Severe below
 * High, Critical all but Critical. Evaluate on an interval (`start`) or by hand (`evaluate`).
 *
 * @example
 * const degradation = runtime.degradationManager({ hysteresis: 0.25 });
 * degradation.on('change', ({ from, to }) => log.warn(`degradation ${from} → ${to}`));
 * degradation.start(250);
 * handle.trySend(job, Priority.Low); // shed from Light on
 */
export class DegradationManager extends EventEmitter<{ change: [DegradationChange] }> {
  readonly #host: DegradationHost;
  readonly #thresholds: DegradationThresholds;
  readonly #hysteresis: number;
  readonly #admit: Readonly<Record<DegradationLevel, number>>;
  readonly #shed: Record<DegradationLevel, number> = { Normal: 0, Light: 0, Moderate: 0, Severe: 0, Critical: 0 };
  #level: DegradationLevel = 'Normal';
  #signals: DegradationSignals = { queuePressure: 0, memoryPressure: 0, errorRate: 0, openBreakers: 0 };
  readonly #periodic = new PeriodicTask(() => this.evaluate());

  /** @internal — use `runtime.degradationManager()`. */
  constructor(host: DegradationHost, options: DegradationOptions = {}) {
    super();
    const checked = checkOptions(options);
    this.#host = host;
    this.#thresholds = checked.thresholds;
    this.#hysteresis = checked.hysteresis;
    this.#admit = checked.admit;
  }

  /** The current level. */
  level(): DegradationLevel {
    return this.#level;
  }

  /** The signals of the last evaluation. */
  signals(): DegradationSignals {
    return this.#signals;
  }

  /** The lowest priority admitted at the current level. */
  minPriority(): number {
    return this.#admit[this.#level];
  }

  /** Messages shed so far, per level. */
  shedCounts(): Readonly<Record<DegradationLevel, number>> {
    return { ...this.#shed };
  }

  /**
   * Measures the signals (a test or a caller may override some), moves the level — up at once, down only past
   * the hysteresis margin — and applies its shedding. Returns the level.
   */
  evaluate(override: Partial<DegradationSignals> = {}): DegradationLevel {
    const signals = { ...this.#host.measure(), ...override };
    this.#signals = signals;
    const target = this.#levelOf(signals, 1);
    const current = ORDER.indexOf(this.#level);
    let next = target;
    if (target < current) {
      // Going down: stay at any level whose threshold some signal still holds within the margin.
      next = Math.max(target, Math.min(current, this.#levelOf(signals, 1 - this.#hysteresis)));
    }
    const to = ORDER[next] as DegradationLevel;
    if (to !== this.#level) {
      const from = this.#level;
      this.#level = to;
      this.#apply();
      this.emit('change', { from, to, signals });
    }
    return to;
  }

  /** The interval it evaluates on, ms, while started; undefined when stopped. */
  get intervalMs(): number | undefined {
    return this.#periodic.intervalMs;
  }

  /** Evaluates every `intervalMs` until {@link DegradationManager.stop}. The timer does not keep the process alive. */
  start(intervalMs: number): void {
    this.#periodic.start(intervalMs);
  }

  /** Stops periodic evaluation (the level and its shedding stay as they are). */
  stop(): void {
    this.#periodic.stop();
  }

  /** The highest level any signal reaches, with thresholds scaled by `scale`. */
  #levelOf(signals: DegradationSignals, scale: number): number {
    let level = 0;
    for (const name of Object.keys(this.#thresholds) as (keyof DegradationSignals)[]) {
      const value = signals[name];
      this.#thresholds[name].forEach((threshold, k) => {
        if (value >= threshold * scale) level = Math.max(level, k + 1);
      });
    }
    return level;
  }

  #apply(): void {
    const level = this.#level;
    const minPriority = this.#admit[level];
    this.#host.shedBelow(
      minPriority,
      minPriority === 0
        ? undefined
        : (kernel, priority) => {
            this.#shed[level]++;
            return new LoadShedError(kernel, priority, minPriority, level);
          },
    );
  }
}
