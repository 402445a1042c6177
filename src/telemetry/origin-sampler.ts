import { ArgumentTypeError, InvalidArgumentError } from '../errors/argument-errors.js';
/** The samplers `OTEL_TRACES_SAMPLER` names (the OpenTelemetry specification's list, less the Jaeger ones). */
export const SAMPLER_NAMES = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

/** One of {@link SAMPLER_NAMES}. */
export type SamplerName = (typeof SAMPLER_NAMES)[number];

/**
 * Decides, once, at a message's origin, whether it is traced: the host's `send`/`call` asks; everything downstream
 * (the kernel's processing, kernel-to-kernel hops, the response) follows the sampled flag the envelope carries and
 * decides nothing. Parent-based samplers follow the caller's active span when there is one; the root decision is
 * `always_on`, `always_off` or a ratio. The ratio is a countdown: the number of roots to skip before the next
 * sampled one is drawn from the geometric distribution, which gives every message the same independent odds as a
 * draw per message, at the cost of one decrement per unsampled message. It is decided before any id exists (an
 * unsampled message costs no id generation), unlike the SDK's TraceIdRatioBased sampler, which hashes the trace id:
 * the fraction is the same; only the cross-process consistency of a trace-id hash is lost, which no consumer of
 * these ids needs (every downstream hop obeys the envelope's sampled flag).
 *
 * @example
 * const sampler = new OriginSampler('parentbased_traceidratio', 0.01);
 * sampler.sampleRoot(); // true about once in 100
 * sampler.sampleChild(true); // true: a sampled parent's children are sampled
 */
export class OriginSampler {
  /** The sampler's `OTEL_TRACES_SAMPLER` name. */
  readonly name: SamplerName;
  /** The root ratio in [0, 1]: 1 for always_on, 0 for always_off. */
  readonly ratio: number;
  readonly #parentBased: boolean;
  /** Roots to let pass before the next sampled one (a geometric draw: the same odds as a draw per message). */
  #skip = 0;
  readonly #logMiss: number;

  /** @throws {RangeError} when `ratio` is outside [0, 1]; {@link TypeError} for an unknown sampler. */
  constructor(name: SamplerName, ratio = 1) {
    if (!SAMPLER_NAMES.includes(name)) {
      throw new ArgumentTypeError(
        'sampler',
        `sampler must be one of ${SAMPLER_NAMES.join(', ')}, got ${JSON.stringify(name)}`,
      );
    }
    if (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1)) {
      throw new InvalidArgumentError('sampler', `sampler ratio must be a number in [0, 1], got ${ratio}`);
    }
    this.name = name;
    this.#parentBased = name.startsWith('parentbased_');
    const root = this.#parentBased ? name.slice('parentbased_'.length) : name;
    this.ratio = root === 'always_on' ? 1 : root === 'always_off' ? 0 : ratio;
    this.#logMiss = Math.log1p(-this.ratio);
    this.#skip = this.#nextSkip();
  }

  /** Failures before the next success of a Bernoulli(ratio) sequence: Geometric(ratio), by inversion. */
  #nextSkip(): number {
    const ratio = this.ratio;
    if (ratio >= 1) return 0;
    if (ratio <= 0) return Number.POSITIVE_INFINITY;
    return Math.floor(Math.log(1 - Math.random()) / this.#logMiss);
  }

  /** True when nothing can ever be sampled (tracing may as well be off). */
  get samplesNothing(): boolean {
    return this.ratio === 0 && !this.#parentBased;
  }

  /** A message with no active parent span: sampled? */
  sampleRoot(): boolean {
    // A countdown instead of a random draw per message: one decrement on the unsampled path.
    if (this.#skip > 0) {
      this.#skip--;
      return false;
    }
    this.#skip = this.#nextSkip();
    return this.ratio > 0;
  }

  /** A message sent inside a valid parent span whose sampled flag is `parentSampled`: sampled? */
  sampleChild(parentSampled: boolean): boolean {
    return this.#parentBased ? parentSampled : this.sampleRoot();
  }
}
