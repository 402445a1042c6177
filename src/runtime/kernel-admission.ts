import { NotAcceptingWorkError } from '../errors/runtime-errors.js';
import type { Refusal } from './kernel-handle-options.js';
import type { RuntimeLifecycleState } from './runtime-lifecycle.js';

/** A kernel as admission sees it: the lowest priority it admits, and how it reports a refused message. */
export interface AdmittingKernel {
  admit(minPriority: number, refusal: Refusal | undefined): void;
  /** Work not yet done: queued input, waiting sends, calls awaiting answers, non-empty link rings. */
  readonly pendingWork: number;
}

/** What admission needs from the runtime. */
export interface AdmissionPort {
  /** The runtime's lifecycle state now. */
  state(): RuntimeLifecycleState;
  /** The live kernels. */
  kernels(): Iterable<AdmittingKernel>;
}

/** What every kernel admits: the lowest priority, and how a refusal is reported. */
interface Admitted {
  readonly minPriority: number;
  readonly refusal: Refusal | undefined;
}

const EVERYTHING: Admitted = { minPriority: 0, refusal: undefined };

/**
 * What the runtime's kernels admit. Running: everything above load shedding's floor (the degradation manager's,
 * through {@link KernelAdmission.shedBelow}); Draining and after: nothing, each refused message dead-lettered as
 * `not-accepting-work`. One priority compare on each kernel's send path carries it.
 */
export class KernelAdmission {
  readonly #port: AdmissionPort;
  #admitted: Admitted = EVERYTHING;
  /** Load shedding's floor, kept apart so a drain's "nothing" does not forget it. */
  #shedding: Admitted = EVERYTHING;
  #shed = 0;

  constructor(port: AdmissionPort) {
    this.#port = port;
  }

  /** Messages refused by load shedding. */
  get shed(): number {
    return this.#shed;
  }

  /** A kernel just launched admits what every kernel admits now. */
  admitNew(kernel: AdmittingKernel): void {
    kernel.admit(this.#admitted.minPriority, this.#admitted.refusal);
  }

  /** Load shedding's floor (the degradation manager's `shedBelow`); `refuse` builds a shed message's error. */
  shedBelow(minPriority: number, refuse: ((kernel: string, priority: number) => Error) | undefined): void {
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
    this.apply();
  }

  /**
   * Waits, looking every 2 ms, until no kernel has work left or `timeoutMs` has passed (the runtime's drain, once
   * new work is refused): the work left then, and how long it waited.
   */
  async workDone(timeoutMs: number): Promise<{ readonly pendingWork: number; readonly waitedMs: number }> {
    const started = performance.now();
    let pendingWork = 0;
    for (;;) {
      pendingWork = 0;
      for (const kernel of this.#port.kernels()) pendingWork += kernel.pendingWork;
      if (pendingWork === 0 || performance.now() - started >= timeoutMs) break;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    return { pendingWork, waitedMs: Math.round(performance.now() - started) };
  }

  /** Applies the admission the runtime's state calls for to every live kernel (after a change of either). */
  apply(): void {
    const state = this.#port.state();
    this.#admitted =
      state === 'Running'
        ? this.#shedding
        : {
            minPriority: 256,
            refusal: (kernel) => ({
              error: new NotAcceptingWorkError(`send to kernel '${kernel}'`, this.#port.state()),
              reason: 'not-accepting-work',
            }),
          };
    for (const kernel of this.#port.kernels()) kernel.admit(this.#admitted.minPriority, this.#admitted.refusal);
  }
}
