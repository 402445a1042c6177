import type { NodeMoveOptions, NodeMoveReport } from '../cluster/kernel-move.js';
import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../errors/argument-errors.js';
import { MigrationError, type MigrationPhase, PlacementError } from '../errors/device-errors.js';
import { InvalidStateError } from '../errors/runtime-errors.js';
import { TimeoutError } from '../errors/value-errors.js';

/** Options of {@link KernelMigrator.migrateKernel}. */
export interface MigrationOptions {
  /**
   * **Test-only fault injection**: throw at the end of this phase (`swap`: at its start, before the old instance
   * stops; `resume`: after it, so the kernel is already on the target), to exercise the rollback (real failures — a
   * `snapshot` or `restore` hook that throws, a target without room — roll back the same way). Not for production.
   */
  readonly failAt?: MigrationPhase;
  /**
   * Longest wait, ms, for the kernel's worker to answer the quiesce and the checkpoint (a handler or a `snapshot`
   * hook that runs long). Past it the migration fails with a `TimeoutError` as cause and rolls back: the kernel is
   * re-activated at its source as soon as its worker gets to it. Default: the runtime's `terminationTimeout`.
   */
  readonly timeoutMs?: number;
}

/** What a migration did, and what it cost. */
export interface MigrationReport {
  readonly kernel: string;
  readonly from: number;
  readonly to: number;
  /** The state's bytes (the kernel's `snapshot` hook or v8 serialization): what was actually moved. */
  readonly stateBytes: number;
  /** Bytes moved between devices: the state (queued frames stay where they are, see `bytesCarried`). */
  readonly bytesMoved: number;
  /**
   * Frames queued for the kernel at the swap (its input ring and its kernel-to-kernel input rings), handed to the
   * new instance. On the CPU backend every device shares host memory, so they are carried *in place*: the new
   * instance consumes the same rings, nothing is copied. A GPU backend would copy them (and count them in
   * `bytesMoved`).
   */
  readonly messagesCarried: number;
  readonly bytesCarried: number;
  /**
   * How long the kernel took no input: from the quiesce to the resume (the new instance active), ms. `prepare`
   * comes before it.
   */
  readonly pauseMs: number;
  /** Time spent in each phase, ms. */
  readonly phases: Readonly<Record<MigrationPhase, number>>;
  /** Whether the kernel was active (and so was re-activated on the target). */
  readonly wasActive: boolean;
}

/** A migration's new instance, attached dormant on the target device (the kernel's own type of it). */
export interface DormantTarget {
  readonly threadId: number;
  readonly device: number;
}

/**
 * What the migrator needs of a kernel: its state and place, and each step of the kernel's side of the migration
 * protocol (a `KernelHandle` implements it).
 */
export interface MigratableKernel {
  readonly name: string;
  readonly device: number;
  readonly status: string;
  readonly awaitingRestart: boolean;
  /** prepare: a new instance attached dormant on `device`. */
  prepareMove(device: number): Promise<DormantTarget>;
  /** quiesce: paused between batches; whether it was active. */
  quiesce(): Promise<boolean>;
  resumeAfterQuiesce(): Promise<void>;
  /** checkpoint: the state's bytes. */
  snapshotState(): Promise<Uint8Array>;
  /** transfer: the state to the dormant instance; restore: `restored` settles once it is rebuilt. */
  transferState(dormant: DormantTarget, state: Uint8Array): { restored: Promise<void> };
  /** rollback: the dormant instance dropped. */
  discardMove(dormant: DormantTarget): void;
  /** swap (and resume): the dormant instance takes the rings over; what was queued there was carried. */
  completeMove(
    dormant: DormantTarget,
    resume: boolean,
  ): Promise<{ carried: { frames: number; bytes: number }; activated: Promise<void> }>;
}

/** The runtime's side of a migration. */
export interface MigrationHost<K = MigratableKernel> {
  /** The default of {@link MigrationOptions.timeoutMs}. */
  readonly defaultTimeoutMs: number;
  /** @throws unless the runtime is Running (no migrations while draining or shutting down). */
  checkAccepting(operation: string): void;
  kernel(name: string): K;
  /** The kernel's side of the migration protocol (the runtime's handles carry it, off their public type). */
  migratable(kernel: K): MigratableKernel;
  deviceCount(): number;
  /** Free memory budget on a device, bytes. */
  freeBytes(device: number): number;
  /** Bytes the kernel owns (rings, control block), which move with it. */
  bytesOf(handle: K): number;
  /** The kernel now runs on `dormant`'s worker (bookkeeping: hosted counts, migrations, checkpoints, the log). */
  migrated(handle: K, from: number, dormant: DormantTarget, report: MigrationReport): void;
  /** The runtime's cluster node, once it joined one: moves kernels to other nodes. */
  cluster?(): NodeMover | undefined;
}

/** What a move to another node needs of the runtime's cluster node. */
export interface NodeMover {
  moveKernel(name: string, node: string, options?: NodeMoveOptions): Promise<NodeMoveReport>;
}

const PHASES: readonly MigrationPhase[] = ['prepare', 'quiesce', 'checkpoint', 'transfer', 'restore', 'swap', 'resume'];

/**
 * Moves live kernels between devices: prepare (before the kernel pauses: a new instance attached on the target,
 * dormant — its worker loads the kernel's module — touching neither rings nor ControlBlock), quiesce (the kernel
 * finishes its batch and takes no more input; senders keep writing into its queue), checkpoint (its state, between
 * batches), transfer (the target's memory budget checked, the state handed to the target's worker), restore (the
 * dormant instance rebuilds the state), swap (the old instance stops after writing its outputs; the new one takes over the same rings where the old
 * one's handlers got to, and the kernel's links are wired to it — so senders and kernel-to-kernel producers now
 * reach the new home), resume (re-activated if it was active). Nothing is lost or handled twice and order is
 * kept, because the queue never moves and the state is taken exactly at the handled cursor.
 *
 * A failure before the swap rolls back: the dormant instance is discarded and the kernel re-activated where it
 * was, with its state and queue ({@link MigrationError}, `rolledBack: true`). Once the old instance has stopped
 * (the swap) the migration is committed.
 *
 * @example
 * const report = await runtime.kernelMigrator().migrateKernel('scorer', 0, 3);
 * console.log(`moved ${report.bytesMoved} B, carried ${report.messagesCarried} messages, paused ${report.pauseMs} ms`);
 */
export class KernelMigrator<K = MigratableKernel> {
  readonly #host: MigrationHost<K>;
  /** Kernels being migrated: one migration per kernel at a time. */
  readonly #moving = new Set<MigratableKernel>();

  /** @internal — use `runtime.kernelMigrator()`. */
  constructor(host: MigrationHost<K>) {
    this.#host = host;
  }

  /**
   * Migrates the kernel `kernel` (launch name or handle) from device `source` to device `target`.
   * @throws {PlacementError} when the kernel is not on `source` or `target` is not a device (nothing was done);
   * `RuntimeShutDownError` / `NotAcceptingWorkError` unless the runtime is Running; {@link InvalidStateError}
   * unless the kernel is Launched, Active or Deactivated (not waiting for its supervisor to restart it).
   * @throws {MigrationError} when a phase failed: rolled back unless the failure came at the swap.
   */
  async migrateKernel(
    kernel: string | K,
    source: number,
    target: number,
    options: MigrationOptions = {},
  ): Promise<MigrationReport> {
    this.#host.checkAccepting('migrate a kernel');
    const owner = typeof kernel === 'string' ? this.#host.kernel(kernel) : kernel;
    const handle = this.#host.migratable(owner);
    const devices = this.#host.deviceCount();
    for (const [what, id] of [
      ['source', source],
      ['target', target],
    ] as const) {
      if (!Number.isInteger(id) || id < 0 || id >= devices) {
        throw new PlacementError(`${what} device ${id} does not exist (devices 0…${devices - 1})`);
      }
    }
    if (handle.device !== source) {
      throw new PlacementError(`kernel '${handle.name}' runs on device ${handle.device}, not ${source}`);
    }
    if (source === target) throw new PlacementError(`kernel '${handle.name}' is already on device ${target}`);
    const status = handle.status;
    if (handle.awaitingRestart || (status !== 'Launched' && status !== 'Active' && status !== 'Deactivated')) {
      throw new InvalidStateError(handle.name, 'migrate', handle.awaitingRestart ? 'Failed' : status, 'Active');
    }
    if (options.failAt !== undefined && !PHASES.includes(options.failAt)) {
      throw new ArgumentTypeError(
        'options.failAt',
        `options.failAt must be one of ${PHASES.join(', ')}, got ${JSON.stringify(options.failAt)}`,
      );
    }
    const timeoutMs = options.timeoutMs ?? this.#host.defaultTimeoutMs;
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0)) {
      throw new InvalidArgumentError(
        'options.timeoutMs',
        `options.timeoutMs must be a positive number of ms, got ${describeValue(timeoutMs)}`,
      );
    }
    if (this.#moving.has(handle)) throw new PlacementError(`kernel '${handle.name}' is already being migrated`);
    this.#moving.add(handle);
    try {
      return await this.#migrate(owner, handle, source, target, options.failAt, timeoutMs);
    } finally {
      this.#moving.delete(handle);
    }
  }

  /**
   * Moves the kernel launched here as `name` to node `node` of the runtime's cluster (or `'least-loaded'`: the
   * live node hosting the fewest kernels): it finishes what is already queued here, is paused and checkpointed,
   * launched there from its state, and takes over there — the messages sent meanwhile (held, in order per sender),
   * its unreceived outputs and its registry entry with it. Senders on every node keep using the name: their
   * references (`runtime.ref(name)`) follow it, at-least-once kernels keep their guarantee. A local handle of the
   * kernel held on this node ends with its instance here; address it by `runtime.ref(name)` instead.
   *
   * @throws {InvalidArgumentError} unless the runtime is a node of a cluster; `ClusterNodeUnknownError` when
   * `node` is no live node; `KernelNotFoundError` when no live kernel by that name runs on this node;
   * `InvalidStateError` when it is already moving or not Launched, Active or Deactivated.
   * @throws {MigrationError} when a step failed (the target died, did not answer within `timeoutMs`, could not
   * launch it): `rolledBack` is true when the kernel runs on here with nothing lost.
   * @example
   * const report = await runtime.kernelMigrator().moveToNode('sensors/eu/avg', 'node-b');
   * console.log(`moved to ${report.to}: ${report.stateBytes} B of state, paused ${report.pauseMs.toFixed(1)} ms`);
   * await runtime.ref('sensors/eu/avg').send({ sensor: 1, value: 20 }); // now through NATS, to node-b
   */
  async moveToNode(name: string, node: string, options?: NodeMoveOptions): Promise<NodeMoveReport> {
    this.#host.checkAccepting('move a kernel');
    const cluster = this.#host.cluster?.();
    if (cluster === undefined) {
      throw new InvalidArgumentError(
        'node',
        'moveToNode moves a kernel to another node of a cluster, and this runtime is not a node of one (builder().cluster({...}))',
      );
    }
    return cluster.moveKernel(name, node, options);
  }

  async #migrate(
    owner: K,
    handle: MigratableKernel,
    source: number,
    target: number,
    failAt: MigrationPhase | undefined,
    timeoutMs: number,
  ): Promise<MigrationReport> {
    const phases: Record<MigrationPhase, number> = {
      prepare: 0,
      quiesce: 0,
      checkpoint: 0,
      transfer: 0,
      restore: 0,
      swap: 0,
      resume: 0,
    };
    let phase: MigrationPhase = 'prepare';
    let mark = performance.now();
    let paused = mark;
    const done = (next: MigrationPhase): void => {
      if (failAt === phase) throw new Error(`fault injected at the end of phase ${phase} (test only)`);
      const now = performance.now();
      phases[phase] = now - mark;
      mark = now;
      phase = next;
    };
    let wasActive = false;
    let quiesced: Promise<boolean> | undefined;
    let timedOut = false;
    const within = async <T>(promise: Promise<T>): Promise<T> => {
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          timedOut = true;
          reject(new TimeoutError(`the ${phase} of kernel '${handle.name}' for its migration`, timeoutMs));
        }, timeoutMs);
      });
      try {
        return await Promise.race([promise, expired]);
      } finally {
        clearTimeout(timer);
      }
    };
    let dormant: DormantTarget | undefined;
    let stateBytes = 0;
    try {
      // Before the pause: the target's worker loads the kernel's module, and the instance waits there, dormant.
      dormant = await handle.prepareMove(target);
      done('quiesce');
      paused = performance.now();
      // Pipelined: the port keeps order, so the snapshot is taken once the kernel has stopped taking input.
      quiesced = handle.quiesce();
      quiesced.catch(() => {});
      const snapshot = handle.snapshotState();
      snapshot.catch(() => {}); // awaited below, unless the quiesce fails first
      wasActive = await within(quiesced);
      done('checkpoint');
      const state = await within(snapshot);
      stateBytes = state.byteLength;
      done('transfer');
      const needed = this.#host.bytesOf(owner);
      const free = this.#host.freeBytes(target);
      if (needed > free) {
        throw new PlacementError(`device ${target} has ${free} bytes of budget free, the kernel needs ${needed}`);
      }
      // The state goes to the target's worker (transferred, on the CPU: the devices share memory; a GPU backend
      // copies it, and the queue, into device memory here).
      const { restored } = handle.transferState(dormant, state);
      done('restore');
      await restored;
      done('swap');
      // The swap's fault is injected before its commit point (past it, there is nothing left to roll back to).
      if (failAt === 'swap') throw new Error('fault injected at the start of phase swap (test only)');
    } catch (error) {
      if (dormant !== undefined) handle.discardMove(dormant);
      let rolledBack = true;
      if (timedOut) {
        // The worker is still busy with the kernel's handler (or hook): it re-activates when it gets to it.
        void quiesced?.then((active) => (active ? handle.resumeAfterQuiesce() : undefined)).catch(() => {});
      } else {
        try {
          if (wasActive) await handle.resumeAfterQuiesce();
        } catch {
          rolledBack = false; // the source failed meanwhile: nothing to go back to
        }
      }
      throw new MigrationError(handle.name, phase, error, rolledBack);
    }
    // The commit point: the old instance stops. If it will not (a handler that never returns), the kernel fails.
    let carried: { frames: number; bytes: number };
    try {
      const moved = await handle.completeMove(dormant, wasActive);
      carried = moved.carried;
      phases.swap = performance.now() - mark;
      mark = performance.now();
      phase = 'resume';
      await moved.activated;
      if (failAt === 'resume') throw new Error('fault injected at the end of phase resume (test only)');
    } catch (error) {
      throw new MigrationError(handle.name, phase, error, false);
    }
    const now = performance.now();
    phases.resume = now - mark;
    const report: MigrationReport = {
      kernel: handle.name,
      from: source,
      to: target,
      stateBytes,
      bytesMoved: stateBytes,
      messagesCarried: carried.frames,
      bytesCarried: carried.bytes,
      pauseMs: now - paused,
      phases,
      wasActive,
    };
    this.#host.migrated(owner, source, dormant, report);
    return report;
  }
}
