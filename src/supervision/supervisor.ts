import { ArgumentTypeError, InvalidArgumentError } from '../errors/argument-errors.js';
import { CudaDeviceLostError } from '../errors/cuda-errors.js';
import { KernelFailedError, RestartLimitError } from '../errors/runtime-errors.js';
import type { KernelDefinition } from '../kernel/kernel-definition.js';
import type { KernelHandle } from '../runtime/kernel-handle.js';
import type { Dim3, KernelFailureListener } from '../runtime/kernel-handle-options.js';
import type { LaunchOptions } from '../runtime/runtime.js';

/**
 * A kernel's side of supervision, what a supervisor does to a kernel it watches (a handle gives it as its
 * `supervision`; the kernel's instance control implements it).
 */
export interface KernelSupervision {
  /** Whether a supervisor watches the kernel. */
  readonly supervised: boolean;
  /**
   * Puts the kernel under a supervisor (or takes it out, with `undefined`): from now on a failure of its instance
   * suspends the kernel — queued input kept, calls and receives still waiting — and calls `listener`, which must
   * answer with {@link KernelSupervision.restart} or {@link KernelSupervision.abandon}.
   */
  superviseWith(listener: KernelFailureListener | undefined): void;
  /**
   * Stops the kernel's instance for a restart of its supervisor's group: it finishes the message in hand and
   * writes the outputs it made, then leaves its worker; its queued input stays in the rings for the next
   * instance. Resolves once it has left (at once when it already has).
   */
  stopForRestart(): Promise<void>;
  /**
   * Attaches a fresh instance of the suspended kernel: fresh state (the definition's `init`), the same rings
   * and ControlBlock, resuming where the last instance's handlers got to, wired again to its links, and
   * activated again if it was active. What was queued meanwhile is handled by the new instance; calls still
   * waiting get their responses from it.
   */
  restart(): Promise<void>;
  /**
   * Gives the suspended kernel up: it becomes Failed for good, its waiting calls, receives and sends reject, and
   * what is still queued for it is dead-lettered (reason `kernel-failed`), or — `quiet` — dropped as the user's
   * own terminate without drain would.
   */
  abandon(error: Error, quiet?: boolean): void;
}

/** Which children a supervisor restarts when one of them fails (Erlang/OTP's strategies). */
export const RestartStrategy = {
  /** Restart only the child that failed. */
  OneForOne: 'one-for-one',
  /** Restart every child: they depend on one another. */
  OneForAll: 'one-for-all',
  /** Restart the child that failed and every child started after it (later stages depend on earlier ones). */
  RestForOne: 'rest-for-one',
} as const;
/** One of {@link RestartStrategy}'s values. */
export type RestartStrategy = (typeof RestartStrategy)[keyof typeof RestartStrategy];

/** How long a supervisor waits before each restart: `initialMs × factor^(n−1)` for the n-th within the window. */
export interface BackoffOptions {
  /** Delay before the first restart in a window, ms. Default 10. */
  readonly initialMs?: number;
  /** The longest delay, ms. Default 1000. */
  readonly maxMs?: number;
  /** Growth per restart. Default 2. */
  readonly factor?: number;
}

/** What a supervisor needs of the runtime: launching the kernels it supervises (`RingKernelRuntime` implements it). */
export interface SupervisorHost {
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
}

/** Options of {@link RingKernelRuntime.supervisor} and {@link Supervisor.supervisor}. */
export interface SupervisorOptions {
  /** For events, errors and logs. Default `supervisor-<n>`. */
  readonly name?: string;
  /** Default {@link RestartStrategy.OneForOne}. */
  readonly strategy?: RestartStrategy;
  /**
   * Restarts allowed within `windowMs` (a sliding window: each restart counts until it is `windowMs` old). One
   * more failure within the window escalates to the parent supervisor, or gives the children up. Default 3.
   */
  readonly maxRestarts?: number;
  /** The sliding window, ms. Default 5000. */
  readonly windowMs?: number;
  /** Delay before restarts. */
  readonly backoff?: BackoffOptions;
}

/** Where a supervisor is: restarting children, handed its failure to its parent, gave up, or stopped. */
export type SupervisorStatus = 'running' | 'restarting' | 'escalated' | 'failed' | 'stopped';

/** What a supervisor tells its listeners ({@link Supervisor.on}). */
export type SupervisorEvent =
  | { readonly type: 'child-failed'; readonly supervisor: string; readonly child: string; readonly error: Error }
  | {
      readonly type: 'restarting';
      readonly supervisor: string;
      /** Names of the children being restarted, in start order. */
      readonly children: readonly string[];
      /** The restart's number within the current window (1, 2, …). */
      readonly attempt: number;
      readonly delayMs: number;
    }
  | { readonly type: 'restarted'; readonly supervisor: string; readonly children: readonly string[] }
  /** The budget is spent and the failure went to the parent supervisor. */
  | { readonly type: 'escalated'; readonly supervisor: string; readonly error: RestartLimitError }
  /** The supervisor gave up: its kernels are terminated, the failed ones Failed, their queues dead-lettered. */
  | { readonly type: 'failed'; readonly supervisor: string; readonly error: Error }
  /**
   * One kernel cannot be restarted anywhere (its CUDA device is lost and it cannot move): it alone is given up,
   * Failed with its queue dead-lettered; the rest of the tree runs on.
   */
  | { readonly type: 'child-given-up'; readonly supervisor: string; readonly child: string; readonly error: Error };

/** A child: a kernel, or a supervisor of its own subtree. */
type Child =
  | { readonly kind: 'kernel'; readonly handle: KernelHandle }
  | { readonly kind: 'supervisor'; readonly supervisor: Supervisor };

let supervisorCount = 0;

function check(options: SupervisorOptions): Required<Omit<SupervisorOptions, 'backoff'>> & {
  backoff: Required<BackoffOptions>;
} {
  if (typeof options !== 'object' || options === null)
    throw new ArgumentTypeError('options', 'options must be an object');
  const name = options.name ?? `supervisor-${++supervisorCount}`;
  if (typeof name !== 'string' || name.length === 0)
    throw new ArgumentTypeError('options.name', 'options.name must be a non-empty string');
  const strategy = options.strategy ?? RestartStrategy.OneForOne;
  if (!Object.values(RestartStrategy).includes(strategy)) {
    throw new ArgumentTypeError(
      'options.strategy',
      `options.strategy must be one of ${Object.values(RestartStrategy).join(', ')}, got ${JSON.stringify(strategy)}`,
    );
  }
  const maxRestarts = options.maxRestarts ?? 3;
  if (!Number.isInteger(maxRestarts) || maxRestarts < 0) {
    throw new InvalidArgumentError(
      'options.maxRestarts',
      `options.maxRestarts must be a non-negative integer, got ${maxRestarts}`,
    );
  }
  const windowMs = options.windowMs ?? 5000;
  if (!Number.isFinite(windowMs) || windowMs <= 0) {
    throw new InvalidArgumentError('options.windowMs', `options.windowMs must be a positive number, got ${windowMs}`);
  }
  const backoff = options.backoff ?? {};
  const initialMs = backoff.initialMs ?? 10;
  const maxMs = backoff.maxMs ?? 1000;
  const factor = backoff.factor ?? 2;
  if (!Number.isFinite(initialMs) || initialMs < 0) {
    throw new InvalidArgumentError(
      'options.backoff.initialMs',
      `options.backoff.initialMs must be a non-negative number, got ${initialMs}`,
    );
  }
  if (!Number.isFinite(maxMs) || maxMs < initialMs) {
    throw new InvalidArgumentError(
      'options.backoff.maxMs',
      `options.backoff.maxMs must be a number >= initialMs (${initialMs}), got ${maxMs}`,
    );
  }
  if (!Number.isFinite(factor) || factor < 1) {
    throw new InvalidArgumentError(
      'options.backoff.factor',
      `options.backoff.factor must be a number >= 1, got ${factor}`,
    );
  }
  return { name, strategy, maxRestarts, windowMs, backoff: { initialMs, maxMs, factor } };
}

/**
 * Restarts kernels that fail, by a strategy, within a restart budget — Erlang/OTP supervision for persistent
 * kernels. A restarted kernel keeps its handle, its name, its rings and its links: what was queued for it, and
 * what is sent while it restarts, is handled by the new instance (which starts with fresh state from its
 * `init`); calls still waiting get their answers from it. Only the message whose handler was running when the
 * kernel failed is not retried (it is dead-lettered), so one poison message cannot fail every restart in turn.
 *
 * The budget is a sliding window: more than `maxRestarts` restarts within `windowMs` escalate to the parent
 * supervisor, which restarts this whole subtree (its own budget permitting), or, at the top, give the kernels up
 * (Failed, queues dead-lettered). Restarts wait an exponential backoff.
 *
 * A kernel fails when its worker dies, or — launched with `onHandlerError: 'fail'` — when its handler throws.
 *
 * @example
 * const supervisor = runtime.supervisor({ strategy: RestartStrategy.RestForOne, maxRestarts: 5, windowMs: 10_000 });
 * const parse = await supervisor.launch('parse', 1, 1, { autoActivate: true, onHandlerError: 'fail' });
 * const store = await supervisor.launch('store', 1, 1, { autoActivate: true });
 * await runtime.connect(parse, store);
 * supervisor.on((event) => console.log(event.type, event.supervisor));
 */
export class Supervisor {
  /** The supervisor's name. */
  readonly name: string;
  /** Its restart strategy. */
  readonly strategy: RestartStrategy;
  /** Restarts allowed within {@link Supervisor.windowMs}. */
  readonly maxRestarts: number;
  /** The sliding window of the restart budget, ms. */
  readonly windowMs: number;
  /** The supervisor this one escalates to, if any. */
  readonly parent: Supervisor | undefined;
  readonly #runtime: SupervisorHost;
  readonly #backoff: Required<BackoffOptions>;
  readonly #children: Child[] = [];
  readonly #listeners = new Set<(event: SupervisorEvent) => void>();
  /** When each restart within the window happened (performance.now()), oldest first. */
  #restartTimes: number[] = [];
  #restarts = 0;
  #status: SupervisorStatus = 'running';
  /** Failures are handled one at a time, in order. */
  #queue: Promise<void> = Promise.resolve();
  /** Set once the supervisor no longer restarts anything (stopped, failed, or its runtime shutting down). */
  #retired = false;
  #wakeBackoff: (() => void) | undefined;

  /** @internal — use {@link RingKernelRuntime.supervisor} or {@link Supervisor.supervisor}. */
  constructor(runtime: SupervisorHost, options: SupervisorOptions = {}, parent?: Supervisor) {
    const checked = check(options);
    this.name = checked.name;
    this.strategy = checked.strategy;
    this.maxRestarts = checked.maxRestarts;
    this.windowMs = checked.windowMs;
    this.#backoff = checked.backoff;
    this.parent = parent;
    this.#runtime = runtime;
  }

  /** Where the supervisor is. */
  get status(): SupervisorStatus {
    return this.#status;
  }

  /** Restarts this supervisor has made (each restart of a group counts once). */
  get restarts(): number {
    return this.#restarts;
  }

  /** The children, in start order: kernel handles and child supervisors. */
  children(): (KernelHandle | Supervisor)[] {
    return this.#children.map((child) => (child.kind === 'kernel' ? child.handle : child.supervisor));
  }

  /**
   * Launches a kernel (as {@link RingKernelRuntime.launch}) under this supervisor. Start order matters for
   * {@link RestartStrategy.RestForOne}.
   */
  async launch<InIn, InView, OutIn, OutView, State>(
    kernel: string | KernelDefinition<InIn, InView, OutIn, OutView, State>,
    options?: LaunchOptions,
  ): Promise<KernelHandle<InIn, OutView>>;
  async launch<InIn, InView, OutIn, OutView, State>(
    kernel: string | KernelDefinition<InIn, InView, OutIn, OutView, State>,
    gridSize: Dim3,
    blockSize?: Dim3,
    options?: LaunchOptions,
  ): Promise<KernelHandle<InIn, OutView>>;
  async launch<InIn, InView, OutIn, OutView, State>(
    kernel: string | KernelDefinition<InIn, InView, OutIn, OutView, State>,
    sizesOrOptions: Dim3 | LaunchOptions = {},
    blockSize: Dim3 = 1,
    options: LaunchOptions = {},
  ): Promise<KernelHandle<InIn, OutView>> {
    this.#checkOpen('launch a kernel under');
    const handle =
      typeof sizesOrOptions === 'object' && !Array.isArray(sizesOrOptions)
        ? await this.#runtime.launch(kernel, sizesOrOptions as LaunchOptions)
        : await this.#runtime.launch(kernel, sizesOrOptions as Dim3, blockSize, options);
    this.supervise(handle as KernelHandle);
    return handle;
  }

  /**
   * Puts a kernel that is already running under this supervisor.
   * @throws {TypeError} when another supervisor already supervises it, or it is no longer running.
   */
  supervise(handle: KernelHandle): void {
    this.#checkOpen('supervise a kernel under');
    if (this.#children.some((child) => child.kind === 'kernel' && child.handle === handle)) return;
    const status = handle.status;
    if (status === 'Terminated' || status === 'Failed' || status === 'Terminating') {
      throw new ArgumentTypeError(
        'handle',
        `kernel '${handle.name}' is ${status}: only a running kernel can be supervised`,
      );
    }
    if (!handle.relaunch.here) {
      throw new ArgumentTypeError(
        'handle',
        `kernel '${handle.name}' uses the ${handle.transfer.strategy} transfer strategy, which a restart cannot re-attach`,
      );
    }
    const child: Child = { kind: 'kernel', handle };
    handle.supervision.superviseWith((_failed, error) => this.#childFailed(child, error));
    this.#children.push(child);
    // A kernel that ends for good (terminated by the user, or given up) leaves the supervisor.
    void handle.exitedUnheld.then(() => this.#remove(child));
  }

  /** A child supervisor: it escalates to this one when its own budget is spent. */
  supervisor(options: SupervisorOptions = {}): Supervisor {
    this.#checkOpen('start a supervisor under');
    const supervisor = new Supervisor(this.#runtime, options, this);
    this.#children.push({ kind: 'supervisor', supervisor });
    return supervisor;
  }

  /** Listens to the supervisor's events; returns the function that stops listening. */
  on(listener: (event: SupervisorEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves once every failure reported so far has been dealt with (restarted, escalated or given up). */
  settled(): Promise<void> {
    return this.#queue;
  }

  /**
   * Gracefully stops the subtree: no more restarts, then every kernel terminates (draining, as launched),
   * children in reverse start order, depth first.
   */
  async stop(): Promise<void> {
    this.retire();
    await this.#terminateAll(false);
    this.#status = 'stopped';
  }

  /**
   * Kills the subtree: no more restarts, then every kernel terminates at once without draining — what is queued
   * is dead-lettered — children in reverse start order, depth first.
   */
  async killTree(): Promise<void> {
    this.retire();
    await this.#terminateAll(true);
    this.#status = 'stopped';
  }

  /** Stops restarting anything in the subtree; failures from now on are final. @internal */
  retire(): void {
    if (this.#retired) return;
    this.#retired = true;
    this.#wakeBackoff?.();
    for (const child of this.#children) {
      if (child.kind === 'supervisor') child.supervisor.retire();
      else {
        child.handle.supervision.superviseWith(undefined);
        if (child.handle.awaitingRestart) child.handle.supervision.abandon(this.#givenUp(child.handle, 'was retired'));
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------------------

  #checkOpen(what: string): void {
    if (this.#retired)
      throw new ArgumentTypeError('supervisor', `cannot ${what} supervisor '${this.name}': it is ${this.#status}`);
  }

  #emit(event: SupervisorEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        process.emitWarning(`ringkernel: a supervisor listener threw: ${String(error)}`, 'RingKernelWarning');
      }
    }
  }

  #remove(child: Child): void {
    const at = this.#children.indexOf(child);
    if (at >= 0 && child.kind === 'kernel' && !child.handle.awaitingRestart) this.#children.splice(at, 1);
  }

  #childName(child: Child): string {
    return child.kind === 'kernel' ? child.handle.name : child.supervisor.name;
  }

  #givenUp(handle: KernelHandle, why: string): KernelFailedError {
    return new KernelFailedError(handle.name, `its supervisor '${this.name}' ${why}`);
  }

  /** A child failed (a kernel's instance, or a child supervisor out of budget): queue the decision. */
  #childFailed(child: Child, error: Error): void {
    this.#emit({ type: 'child-failed', supervisor: this.name, child: this.#childName(child), error });
    this.#queue = this.#queue
      .then(() => this.#handleFailure(child, error))
      .catch((failure: unknown) => this.#fail(failure instanceof Error ? failure : new Error(String(failure))));
  }

  async #handleFailure(child: Child, error: Error): Promise<void> {
    // Handed to the parent already: its decision covers every child of this subtree.
    if (!this.#children.includes(child) || this.#status === 'escalated') return;
    // Restarted meanwhile with an earlier failure's group (one-for-all, rest-for-one): nothing left to do.
    if (child.kind === 'kernel' && !child.handle.awaitingRestart) return;
    if (this.#retired) {
      if (child.kind === 'kernel') child.handle.supervision.abandon(this.#givenUp(child.handle, `is ${this.#status}`));
      return;
    }
    const now = performance.now();
    this.#restartTimes = this.#restartTimes.filter((at) => now - at < this.windowMs);
    if (this.#restartTimes.length >= this.maxRestarts) {
      await this.#escalate(new RestartLimitError(this.name, this.maxRestarts, this.windowMs, error));
      return;
    }
    this.#restartTimes.push(now);
    const attempt = this.#restartTimes.length;
    const { initialMs, maxMs, factor } = this.#backoff;
    const delayMs = Math.min(maxMs, initialMs * factor ** (attempt - 1));
    const group = this.#groupFor(child);
    const names = group.map((member) => this.#childName(member));
    this.#status = 'restarting';
    this.#emit({ type: 'restarting', supervisor: this.name, children: names, attempt, delayMs });
    // Stop the rest of the group, last started first, keeping what is queued for them.
    for (const member of [...group].reverse()) await this.#stopForRestart(member);
    await this.#sleep(delayMs);
    if (this.#retired) {
      for (const member of group) this.#abandon(member, `is ${this.#status}`);
      return;
    }
    for (const member of group) await this.#restartChild(member);
    this.#restarts++;
    this.#status = 'running';
    this.#emit({ type: 'restarted', supervisor: this.name, children: names });
  }

  /** The children the strategy restarts when `failed` fails, in start order. */
  #groupFor(failed: Child): Child[] {
    if (this.strategy === RestartStrategy.OneForOne) return [failed];
    if (this.strategy === RestartStrategy.OneForAll) return [...this.#children];
    return this.#children.slice(this.#children.indexOf(failed));
  }

  async #stopForRestart(child: Child): Promise<void> {
    if (child.kind === 'supervisor') {
      await child.supervisor.#stopAllForRestart();
      return;
    }
    try {
      await child.handle.supervision.stopForRestart();
    } catch {
      // It would not stop (a handler that never returns): it has been given up; the rest of the group goes on.
      this.#remove(child);
    }
  }

  async #stopAllForRestart(): Promise<void> {
    for (const child of [...this.#children].reverse()) await this.#stopForRestart(child);
  }

  async #restartChild(child: Child): Promise<void> {
    if (child.kind === 'supervisor') {
      await child.supervisor.#restartAll();
      return;
    }
    if (!child.handle.awaitingRestart) return;
    try {
      await child.handle.supervision.restart();
    } catch (error) {
      // No restart can succeed, here or from a parent: the device is gone for this process. Give this kernel up
      // alone rather than the whole tree.
      if (!(error instanceof CudaDeviceLostError)) throw error;
      child.handle.supervision.abandon(this.#givenUp(child.handle, `cannot restart it: ${error.message}`));
      this.#emit({ type: 'child-given-up', supervisor: this.name, child: child.handle.name, error });
    }
  }

  /** Restarted by the parent: every child anew, with a fresh budget. */
  async #restartAll(): Promise<void> {
    this.#restartTimes = [];
    for (const child of this.#children) await this.#restartChild(child);
    this.#restarts++;
    this.#status = 'running';
    this.#emit({ type: 'restarted', supervisor: this.name, children: this.#children.map((c) => this.#childName(c)) });
  }

  #abandon(child: Child, why: string): void {
    if (child.kind === 'supervisor') {
      for (const grandchild of child.supervisor.#children) child.supervisor.#abandon(grandchild, why);
    } else if (child.handle.awaitingRestart) {
      child.handle.supervision.abandon(this.#givenUp(child.handle, why));
    }
  }

  /** The budget is spent: the parent decides (it restarts this subtree or escalates in turn), else give up. */
  async #escalate(error: RestartLimitError): Promise<void> {
    const parent = this.parent;
    const entry =
      parent === undefined
        ? undefined
        : parent.#children.find((child) => child.kind === 'supervisor' && child.supervisor === this);
    if (parent === undefined || entry === undefined || parent.#retired) {
      await this.#fail(error);
      return;
    }
    this.#status = 'escalated';
    this.#emit({ type: 'escalated', supervisor: this.name, error });
    // Everything of this subtree stops, keeping its queues, until the parent restarts it or gives it up.
    await this.#stopAllForRestart();
    parent.#childFailed(entry, error);
  }

  /** Gives up: no more restarts; failed kernels are given up, running ones killed (queues dead-lettered). */
  async #fail(error: Error): Promise<void> {
    for (const child of this.#children) this.#abandon(child, `gave up: ${error.message}`);
    this.retire();
    this.#status = 'failed';
    await this.#terminateAll(true);
    this.#status = 'failed';
    this.#emit({ type: 'failed', supervisor: this.name, error });
  }

  async #terminateAll(kill: boolean): Promise<void> {
    for (const child of [...this.#children].reverse()) {
      if (child.kind === 'supervisor') {
        await child.supervisor.#terminateAll(kill);
        if (child.supervisor.#status !== 'failed') child.supervisor.#status = 'stopped';
        continue;
      }
      const handle = child.handle;
      if (handle.awaitingRestart) {
        handle.supervision.abandon(this.#givenUp(handle, kill ? 'killed its tree' : 'stopped'));
        continue;
      }
      try {
        await handle.terminate({ drain: !kill });
      } catch {
        // Already gone, or failed while terminating: either way it is no longer running.
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wakeBackoff = () => {
        this.#wakeBackoff = undefined;
        done();
      };
    });
  }
}
