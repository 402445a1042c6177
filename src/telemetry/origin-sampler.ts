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
 * `always_on`, `always_off` or a ratio. The ratio draws `Math.random()` (before any id exists, so an unsampled
 * message costs no id generation) rather than hashing the trace id as the SDK's TraceIdRatioBased sampler does:
 * the fraction is the same; only the cross-process consistency of a trace-id hash is lost, which no consumer of
 * these ids needs (every downstream hop obeys the flag).
 */
export class OriginSampler {
  readonly name: SamplerName;
  /** The root ratio in [0, 1]: 1 for always_on, 0 for always_off. */
  readonly ratio: number;
  readonly #parentBased: boolean;

  /**
   * @throws {RangeError} when `ratio` is outside [0, 1].
   * @example
   * new OriginSampler('parentbased_traceidratio', 0.01).sampleRoot(); // true about once in 100
   */
  constructor(name: SamplerName, ratio = 1) {
    if (!SAMPLER_NAMES.includes(name)) {
      throw new TypeError(`sampler must be one of ${SAMPLER_NAMES.join(', ')}, got ${JSON.stringify(name)}`);
    }
    if (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1)) {
      throw new RangeError(`sampler ratio must be a number in [0, 1], got ${ratio}`);
    }
    this.name = name;
    this.#parentBased = name.startsWith('parentbased_');
    const root = this.#parentBased ? name.slice('parentbased_'.length) : name;
    this.ratio = root === 'always_on' ? 1 : root === 'always_off' ? 0 : ratio;
  }

  /** True when nothing can ever be sampled (tracing may as well be off). */
  get samplesNothing(): boolean {
    return this.ratio === 0 && !this.#parentBased;
  }

  /** A message with no active parent span: sampled? */
  sampleRoot(): boolean {
    const ratio = this.ratio;
    return ratio >= 1 || (ratio > 0 && Math.random() < ratio);
  }

  /** A message sent inside a valid parent span whose sampled flag is `parentSampled`: sampled? */
  sampleChild(parentSampled: boolean): boolean {
    return this.#parentBased ? parentSampled : this.sampleRoot();
  }
}
