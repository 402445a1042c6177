import type { KernelTransfer } from '../bridge/transfer-bridge.js';
import { copyQueuedFrames, type KernelCheckpoint } from '../devices/checkpoint.js';
import type { MigratableKernel } from '../devices/kernel-migrator.js';
import { type ErrorCodeString, ErrorNumber, errorNumberOf } from '../errors/codes.js';
import { CudaDeviceLostError } from '../errors/cuda-errors.js';
import { HandlerFailedError, InvalidStateError, KernelFailedError } from '../errors/runtime-errors.js';
import { reviveWebGpuError } from '../errors/webgpu-errors.js';
import type { WorkerReport } from '../executor/protocol.js';
import { COMMAND_TARGET, type LifecycleCommand, lifecycleAccepts } from '../kernel/kernel-lifecycle.js';
import type { KernelSupervision } from '../supervision/supervisor.js';
import type { HostSpanWriter } from '../telemetry/host-span-writer.js';
import { LifecycleTransition } from '../telemetry/span-record.js';
import { type ControlBlock, ErrorCode, TERMINATE_FINISH, TERMINATE_NOW } from '../wire/control-block.js';
import { KernelStatus, type KernelStatusName } from '../wire/kernel-status.js';
import { ControlChannel } from './control-channel.js';
import type { KernelHandle } from './kernel-handle.js';
import type { KernelFailureListener, KernelHandleInit, LinkCommand } from './kernel-handle-options.js';
import { type DormantInstance, dropDormant, queuedIn, sendState } from './kernel-migration.js';
import { type OrphanedKernel, recoverInputs, salvageInput } from './kernel-recovery.js';

/** How long a forced kernel gets to stop after the message in hand before the host marks it Failed itself. */
const FORCE_GRACE_MS = 1000;

/** What a kernel's instance control needs from its handle. */
export interface InstanceOwner {
  /** The handle, as the runtime's callbacks (reattach, interrupted, a supervisor's listener) take it. */
  readonly handle: KernelHandle;
  readonly name: string;
  readonly instanceId: number;
  readonly control: ControlBlock;
  readonly init: KernelHandleInit;
  /** Undefined when tracing is off. */
  readonly tracer: HostSpanWriter | undefined;
  /** Resolves when the kernel has ended (Terminated or Failed). */
  readonly exited: Promise<void>;
  /** The error the kernel failed with, once it has failed for good. */
  failure(): Error | undefined;
  /** How the kernel ended; undefined while it runs (or waits for its next instance). */
  exitStatus(): 'Terminated' | 'Failed' | undefined;
  status(): KernelStatusName;
  transfer(): KernelTransfer;
  /** The rings reach the instance another way now (a dma kernel's fresh replicas, a migration's target). */
  useTransfer(transfer: KernelTransfer): void;
  /**
   * The instance failed, or the kernel must be failed: the kernel ends Failed (supervised, it is suspended
   * instead). `salvage`: nothing consumes its input any more, so what is queued is dead-lettered with that reason.
   */
  fail(error: Error, salvage?: 'kernel-failed' | 'discarded-on-terminate'): void;
  /** The instance reported its exit and the kernel has ended with `status`. */
  ended(status: 'Terminated' | 'Failed'): void;
  /** The instance of a kernel that had ended already has left its worker: its rings may go back for reuse. */
  instanceGone(): void;
  /** A new instance runs (a restart, a migration's swap): the kernel has not ended after all. */
  reopened(): void;
  /** Traffic resumes into the new instance: waiting sends are written, waiting calls and receives read. */
  resumeTraffic(): void;
  /** The kernel is being terminated: from now on it takes no new message. */
  stopTaking(): void;
  /** The message of the kernel's last error, for its metrics. */
  lastError(message: string): void;
  /** The host call `messageId` fails with `error` (its request was dead-lettered). */
  rejectCall(messageId: number, error: Error): void;
  /**
   * Reads what waits in the output ring into the handle's own queue (calls answered, the rest kept for
   * `receive()`), so that a draining instance never waits on a reader.
   */
  collectOutputs(): void;
}

/** How often a draining terminate reads the outputs nobody else reads (see `InstanceOwner.collectOutputs`). */
const OUTPUT_COLLECT_MS = 2;

/**
 * A kernel's hold on its instance in a worker (or on a device): the control-port RPC and the lifecycle commands
 * sent over it, the instance's reports (dead letters, inspection events, its exit), kernel-to-kernel links, and
 * the cold paths that replace the instance — a supervisor's stop and restart, a migration's dormant instance and
 * swap, a checkpoint's pause. The handle keeps the data plane; this holds what happens between two instances.
 */
export class KernelInstance implements MigratableKernel, KernelSupervision {
  readonly #owner: InstanceOwner;
  /** The control-port RPC with the current instance (rebound when a supervisor restarts or a migration moves it). */
  readonly #channel: ControlChannel;
  /** A forced termination failed the kernel while its worker still held the rings: salvage them once it goes. */
  #salvageOnLeave: (() => void) | undefined;
  /** The current instance has left its worker (reported its exit, or its thread died). */
  #left = false;
  /** The device hosting the current instance. */
  #device: number;
  #migrations = 0;
  /** Dormant instances dropped on purpose (their port's close is not a worker's death). */
  readonly #discarded = new WeakSet<DormantInstance>();
  /** Kernel-to-kernel links, replayed into a restarted instance. */
  readonly #links: LinkCommand[] = [];
  /** The supervisor's failure listener; while set, a failure suspends the kernel instead of ending it. */
  #supervisor: KernelFailureListener | undefined;
  /** The instance has left its worker and the handle waits for a restart (or to be given up). */
  #suspended = false;
  /** Whether the user last activated (not deactivated) the kernel, so a restarted instance is activated too. */
  #activeWanted = false;
  /** Settles when a suspended kernel is restarted (or rejects when it is given up): commands wait for it. */
  #resumed: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | undefined;
  /** Settles the wait for a graceful stop-for-restart. */
  #onInstanceExit: (() => void) | undefined;

  constructor(owner: InstanceOwner) {
    this.#owner = owner;
    const init = owner.init;
    this.#device = init.device;
    this.#channel = new ControlChannel(init.name, {
      report: (report) => this.#report(report),
      closed: (threadId) => this.#instanceClosed(threadId),
    });
    this.#channel.bind(init.port, init.threadId);
  }

  /** The kernel's name. */
  get name(): string {
    return this.#owner.name;
  }

  /** The kernel's lifecycle state. */
  get status(): KernelStatusName {
    return this.#owner.status();
  }

  /** Whether the kernel waits for its supervisor to restart it (it cannot migrate meanwhile). */
  get awaitingRestart(): boolean {
    return this.#suspended;
  }

  /** The worker thread hosting the current instance. */
  get threadId(): number {
    return this.#channel.threadId;
  }

  /** The device hosting the current instance. */
  get device(): number {
    return this.#device;
  }

  /** Times the kernel was migrated between devices. */
  get migrations(): number {
    return this.#migrations;
  }

  /** Whether the current instance has left its worker. */
  get left(): boolean {
    return this.#left;
  }

  /** Whether a supervisor watches the kernel. */
  get supervised(): boolean {
    return this.#supervisor !== undefined;
  }

  /** Whether the instance has stopped and the kernel waits for its supervisor to restart it (or give it up). */
  get suspended(): boolean {
    return this.#suspended;
  }

  /** The kernel's kernel-to-kernel links. */
  get links(): readonly LinkCommand[] {
    return this.#links;
  }

  /** Puts the kernel under a supervisor (or takes it out, with `undefined`). */
  superviseWith(listener: KernelFailureListener | undefined): void {
    this.#supervisor = listener;
  }

  /** The launch's attach activated the instance (`autoActivate`): a restarted one is brought back to Active. */
  activatedAtAttach(): void {
    this.#activeWanted = true;
  }

  /**
   * Sends a lifecycle command to the instance and resolves when it has taken it. A command to a kernel between
   * two instances goes to the next one, once it is attached. `wanted`: the command is the user's (what a
   * restarted instance is brought back to), not a pause of a checkpoint's or a migration's.
   */
  command(command: LifecycleCommand, operation: string, drain = true, wanted = true): Promise<void> {
    const owner = this.#owner;
    const failure = owner.failure();
    if (failure !== undefined) return Promise.reject(failure);
    const resumed = this.#resumed;
    if (this.#suspended && resumed !== undefined) {
      return resumed.promise.then(() => this.command(command, operation, drain, wanted));
    }
    const status = owner.status();
    // Activating an Active kernel leaves it so (launch activates by default; code that activates anyway works).
    if (command === 'ACTIVATE' && status === 'Active' && !this.#suspended) {
      if (wanted) this.#activeWanted = true;
      return Promise.resolve();
    }
    if (!lifecycleAccepts(status, command)) {
      return Promise.reject(new InvalidStateError(owner.name, operation, status, COMMAND_TARGET[command]));
    }
    const done = this.#channel
      .request(command === 'TERMINATE' ? { command, drain, keep: false } : { command })
      .then(() => {
        if (command !== 'TERMINATE' && wanted) this.#activeWanted = command === 'ACTIVATE';
      });
    // Activate and deactivate are lifecycle spans of their own; terminate's span covers the whole of terminate().
    const tracer = owner.tracer;
    if (tracer !== undefined && command !== 'TERMINATE') {
      const span = tracer.beginLifecycle();
      const transition = command === 'ACTIVATE' ? LifecycleTransition.ACTIVATE : LifecycleTransition.DEACTIVATE;
      if (span !== undefined) {
        done.then(
          () => tracer.endLifecycle(span, transition, owner.instanceId, 0),
          (error: unknown) => tracer.endLifecycle(span, transition, owner.instanceId, errorNumberFrom(error)),
        );
      }
    }
    return done;
  }

  /**
   * Terminates the kernel (see `KernelHandle.terminate`), a lifecycle span of its own when traced: it takes no
   * more messages, the instance gets the command, then the termination word; past `terminationTimeout` the kernel
   * is forced, and failed should it not stop even then.
   */
  async terminate(drain: boolean): Promise<void> {
    const owner = this.#owner;
    const tracer = owner.tracer;
    const span = tracer?.beginLifecycle();
    if (span === undefined) return this.#terminate(drain);
    try {
      await this.#terminate(drain);
      tracer?.endLifecycle(span, LifecycleTransition.TERMINATE, owner.instanceId, 0);
    } catch (error) {
      tracer?.endLifecycle(span, LifecycleTransition.TERMINATE, owner.instanceId, errorNumberFrom(error));
      throw error;
    }
  }

  async #terminate(drain: boolean): Promise<void> {
    const owner = this.#owner;
    // A kernel the user terminates has ended on purpose: no supervisor restarts it.
    this.#supervisor = undefined;
    owner.stopTaking();
    if (this.#suspended) {
      this.abandon(
        new KernelFailedError(owner.name, 'terminated while waiting for its supervisor to restart it'),
        true,
      );
      return;
    }
    // A drain writes outputs until the queue is empty: were they left in a full ring nobody reads, the instance
    // would wait for room until `terminationTimeout` and fail. The host takes them meanwhile, for `receive()`.
    const collector = drain ? setInterval(() => owner.collectOutputs(), OUTPUT_COLLECT_MS) : undefined;
    try {
      const command = this.command('TERMINATE', 'terminate', drain);
      // The word stops a batch in progress after the message in hand; the command says what to do next (and so
      // does the discard word, for a device executor that acts on the words before the command arrives).
      owner.control.requestTermination(TERMINATE_FINISH, !drain);
      // The command's answer is timed too: a handler that never returns never reads it.
      if (await this.#exitWithin(owner.init.terminationTimeout, command)) return;
    } finally {
      clearInterval(collector);
    }
    const timeout = owner.init.terminationTimeout;
    // Forced: the kernel stops after the message in hand and dead-letters the rest; if its worker never gets that
    // far (a handler that never returns), the kernel is failed anyway.
    owner.control.requestTermination(TERMINATE_NOW);
    this.#channel.post({ seq: this.#channel.seq(), command: 'ABORT' });
    if (await this.#exitWithin(FORCE_GRACE_MS)) return;
    const error = new KernelFailedError(owner.name, `did not terminate within ${timeout} ms`);
    (error as { cause?: unknown }).cause = { code: ErrorCode.TerminationTimeout };
    // Its handler never returns: the worker still holds the rings, so its queue is dead-lettered once the worker
    // has gone (replaced now, or with the pool at shutdown).
    const salvaged = new Promise<void>((resolve) => {
      this.#salvageOnLeave = resolve;
    });
    // The worker is replaced while the kernel still counts as placed on it (its neighbours move with their
    // queues); it goes asynchronously, after the kernel has failed with this error.
    owner.init.onStuckTermination?.(owner.handle, salvaged);
    owner.fail(error);
  }

  /** Sends a kernel-to-kernel wiring command, kept and wired again into every restarted instance. */
  async link(command: LinkCommand): Promise<void> {
    if (this.#suspended) {
      this.#links.push(command); // wired when the supervisor restarts the kernel
      return;
    }
    await this.#sendLink(command);
    this.#links.push(command);
  }

  #sendLink(command: LinkCommand): Promise<void> {
    const failure = this.#owner.failure();
    if (failure !== undefined) return Promise.reject(failure);
    return this.#channel.request(command);
  }

  /** Stops the instance for a restart of its supervisor's group (see {@link KernelSupervision.stopForRestart}). */
  async stopForRestart(): Promise<void> {
    const owner = this.#owner;
    if (this.#suspended || owner.failure() !== undefined || owner.exitStatus() !== undefined) return;
    this.#enterSuspension();
    const exited = new Promise<void>((resolve) => {
      this.#onInstanceExit = resolve;
    });
    this.#channel.post({ seq: this.#channel.seq(), command: 'TERMINATE', drain: false, keep: true });
    // The queue stays in the rings for the next instance (a device executor reads that from the discard word).
    owner.control.requestTermination(TERMINATE_FINISH, true);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), owner.init.terminationTimeout);
    });
    try {
      if (await Promise.race([exited.then(() => true), timedOut])) return;
    } finally {
      clearTimeout(timer);
      this.#onInstanceExit = undefined;
    }
    // The instance does not stop (a handler that never returns): it cannot be restarted, only given up.
    const error = new KernelFailedError(
      owner.name,
      `did not stop for a restart within ${owner.init.terminationTimeout} ms`,
    );
    (error as { cause?: unknown }).cause = { code: ErrorCode.TerminationTimeout };
    owner.control.requestTermination(TERMINATE_NOW);
    this.#channel.post({ seq: this.#channel.seq(), command: 'ABORT' });
    this.abandon(error);
    throw error;
  }

  /** Attaches a fresh instance of the suspended kernel (see {@link KernelSupervision.restart}). */
  async restart(): Promise<void> {
    const owner = this.#owner;
    if (!this.#suspended || owner.failure() !== undefined) {
      throw new InvalidStateError(owner.name, 'restart', owner.status(), 'Launched');
    }
    // A dma kernel's replicas held what the dead instance was given: they go (the output replica's frames are
    // carried home first), the input ring resumes at the handled cursor, and fresh replicas start from there.
    const transfer = owner.transfer();
    const reopen = transfer.reopen;
    if (reopen !== undefined) transfer.release();
    recoverInputs(this.orphaned);
    if (reopen !== undefined) owner.useTransfer(reopen());
    owner.control.resetForRestart();
    const control = owner.init.openControl();
    let threadId: number;
    try {
      ({ threadId, device: this.#device } = await owner.init.reattach(owner.handle, control));
    } catch (error) {
      control.host.close();
      throw error;
    }
    this.#channel.bind(control.host, threadId);
    this.#left = false;
    owner.reopened();
    this.#suspended = false;
    const resumed = this.#resumed;
    this.#resumed = undefined;
    for (const link of this.#links) await this.#sendLink(link);
    if (this.#activeWanted) await this.command('ACTIVATE', 'activate');
    owner.resumeTraffic();
    resumed?.resolve();
  }

  /** Gives the suspended kernel up (see {@link KernelSupervision.abandon}). */
  abandon(error: Error, quiet = false): void {
    this.#supervisor = undefined;
    if (this.#owner.failure() !== undefined) return;
    const wasSuspended = this.#suspended;
    this.#suspended = false;
    this.#resumed?.reject(error);
    this.#resumed = undefined;
    this.#owner.fail(error, wasSuspended ? (quiet ? 'discarded-on-terminate' : 'kernel-failed') : undefined);
  }

  /** Takes a checkpoint between batches (see `KernelHandle.checkpoint`). */
  async checkpoint(kernelId: string): Promise<KernelCheckpoint> {
    const owner = this.#owner;
    const wasActive = await this.quiesce();
    try {
      const state = await this.snapshotState();
      const queued = copyQueuedFrames(owner.init.input);
      owner.init.onCheckpoint();
      return Object.freeze({ kernelId, name: owner.name, takenAt: new Date(), state, queued });
    } finally {
      if (wasActive) await this.resumeAfterQuiesce();
    }
  }

  /** Pauses an active kernel between batches without changing what the user asked for; whether it was active. */
  async quiesce(): Promise<boolean> {
    if (this.#owner.status() !== 'Active') return false;
    await this.command('DEACTIVATE', 'quiesce', true, false);
    return true;
  }

  /** Ends a {@link KernelInstance.quiesce}: activates the kernel again if the user still wants it active. */
  async resumeAfterQuiesce(): Promise<void> {
    if (this.#activeWanted && this.#owner.status() !== 'Active') await this.command('ACTIVATE', 'resume', true, false);
  }

  /** Asks the instance for its state's bytes (between batches). */
  snapshotState(): Promise<Uint8Array> {
    const owner = this.#owner;
    const failure = owner.failure();
    if (failure !== undefined) return Promise.reject(failure);
    if (owner.exitStatus() !== undefined || this.#suspended) {
      return Promise.reject(new InvalidStateError(owner.name, 'checkpoint', owner.status(), 'Active'));
    }
    return this.#channel.snapshot();
  }

  /** Attaches a migration's new instance, dormant, on `device` (see `KernelHandle.prepareMove`). */
  async prepareMove(device: number): Promise<DormantInstance> {
    const owner = this.#owner;
    const control = owner.init.openControl();
    // A dma CUDA kernel's rings are replicas in its device's memory: the new instance gets its own on the target.
    const transferMove = owner.transfer().moveTo?.(device);
    try {
      const threadId = await owner.init.attachDormant(owner.handle, control, device, transferMove?.devicePointers);
      return { port: control.host, threadId, device, transferMove };
    } catch (error) {
      control.host.close();
      transferMove?.abort();
      throw error;
    }
  }

  /** Hands the state to the dormant instance (see `KernelHandle.transferState`). */
  transferState(dormant: DormantInstance, state: Uint8Array): { restored: Promise<void> } {
    const init = this.#owner.init;
    return sendState(this.#owner.name, dormant, state, {
      discarded: this.#discarded,
      onWorkerExit: (threadId) => init.onWorkerExit(threadId),
    });
  }

  /** Drops a dormant instance that will not be used (a migration rolling back). */
  discardMove(dormant: DormantInstance): void {
    dropDormant(dormant, this.#discarded);
  }

  /** The migration's swap (see `KernelHandle.completeMove`). */
  async completeMove(
    dormant: DormantInstance,
    resume: boolean,
  ): Promise<{ carried: { frames: number; bytes: number }; activated: Promise<void> }> {
    const owner = this.#owner;
    try {
      await this.stopForRestart(); // throws (kernel Failed) when the old instance will not stop
    } catch (error) {
      dormant.transferMove?.abort();
      throw error;
    }
    recoverInputs(this.orphaned);
    const carried = this.queuedInPlace();
    if (dormant.transferMove !== undefined) {
      // The old instance has stopped: its device's mirror carries the last outputs home, and the target's takes
      // the rings over from the host's, queue included, before the new instance starts.
      owner.useTransfer(dormant.transferMove.commit());
    }
    owner.control.resetForRestart(false);
    this.#channel.bind(dormant.port, dormant.threadId);
    this.#left = false;
    this.#device = dormant.device;
    this.#migrations++;
    const request = (message: object): Promise<void> => this.#channel.request(message);
    // Pipelined, one round trip in all: the port keeps order, so the links are in place before the activation
    // lets the new instance take input.
    // The new instance's worker may die before it answers: then the kernel has no instance left and fails (its
    // queue dead-lettered, nothing lost silently).
    const started = new Promise<void>((resolve, reject) => {
      const onClose = (): void => {
        owner.init.onWorkerExit(dormant.threadId);
        reject(new KernelFailedError(owner.name, 'its new instance exited before it started'));
      };
      dormant.port.once('close', onClose);
      request({ command: 'START' }).then(() => {
        dormant.port.off('close', onClose);
        resolve();
      }, reject);
    });
    // Handled now: should the new instance never start, its unanswered wiring is refused when it ends.
    const wired = Promise.all(this.#links.map((link) => request(link)));
    wired.catch(() => {});
    const activated = resume && this.#activeWanted ? request({ command: 'ACTIVATE' }) : Promise.resolve();
    activated.catch(() => {}); // awaited by the caller
    try {
      await started;
    } catch (error) {
      this.abandon(error as Error);
      throw error;
    }
    await wired;
    owner.reopened();
    this.#suspended = false;
    const resumed = this.#resumed;
    this.#resumed = undefined;
    owner.resumeTraffic();
    resumed?.resolve();
    return { carried, activated };
  }

  /** Frames (and their bytes) queued now in the input ring and every kernel-to-kernel input ring. */
  queuedInPlace(): { frames: number; bytes: number } {
    return queuedIn([this.#owner.init.input, ...this.orphaned.linkInputs]);
  }

  /** The instance failed while supervised: the kernel waits for its supervisor's decision, queue kept. */
  suspend(error: Error): void {
    const owner = this.#owner;
    this.#enterSuspension();
    // The instance is gone: the host is the only writer of the status word until the next one attaches.
    owner.control.setActive(false);
    owner.control.setStatus(KernelStatus.Failed);
    owner.control.recordError(ErrorCode.KernelFailed);
    owner.lastError(error.message);
    // Commands in flight will never be answered by that instance.
    this.#channel.rejectReplies(error);
    this.#channel.unref();
    owner.init.onInterrupted(owner.handle);
    (this.#supervisor as KernelFailureListener)(owner.handle, error);
  }

  /**
   * The kernel has ended: the port no longer holds the process open, and a command still waiting was never taken
   * by the instance and never will be (the worker answered every command it took before its exit report, the
   * port keeps order): each is refused with the error `refusal` makes.
   */
  ended(refusal: () => Error): void {
    this.#channel.unref();
    // Built only when a command waits: an error (and its stack) at every exit costs churn dearly.
    if (this.#channel.waiting) this.#channel.rejectAll(refusal());
  }

  /** The kernel failed for good: the commands waiting reject with its failure. */
  failed(error: Error): void {
    this.#channel.rejectAll(error);
  }

  /** The kernel's rings and records for its recovery (kernel-recovery.ts), when its instance has gone. */
  get orphaned(): OrphanedKernel {
    const owner = this.#owner;
    return {
      name: owner.name,
      control: owner.control,
      input: owner.init.input,
      linkInputs: this.#links.flatMap((link) => (link.command === 'LINK_IN' ? [link.memory] : [])),
      onDeadLetter: (letter) => owner.init.onDeadLetter(letter),
      rejectCall: (messageId, error) => owner.rejectCall(messageId, error),
    };
  }

  /** From now on the instance is gone (or going) and the handle waits for the next one. */
  #enterSuspension(): void {
    this.#suspended = true;
    let resolve!: () => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {}); // nobody need be waiting
    this.#resumed = { promise, resolve, reject };
  }

  /** The instance's port closed without an exit report: its worker is gone (process.exit in a handler, a crash). */
  #instanceClosed(threadId: number): void {
    const owner = this.#owner;
    this.#left = true;
    if (owner.exitStatus() !== undefined) {
      // Ended already (a forced termination failed it): now that its worker has let go, what it never handled is
      // dead-lettered, and its rings may go.
      if (this.#salvageOnLeave !== undefined) {
        salvageInput(this.orphaned, 'kernel-failed');
        this.#salvageOnLeave();
        this.#salvageOnLeave = undefined;
      }
      owner.instanceGone();
      return;
    }
    if (this.#suspended) {
      this.#onInstanceExit?.(); // died while stopping for a restart: stopped all the same
      return;
    }
    owner.init.onWorkerExit(threadId);
    owner.fail(new KernelFailedError(owner.name, 'its worker thread exited'), 'kernel-failed');
  }

  #report(report: Extract<WorkerReport, { type: 'deadLetter' | 'exit' | 'inspect' }>): void {
    const owner = this.#owner;
    switch (report.type) {
      case 'inspect':
        owner.init.onInspect?.(report.event);
        return;
      case 'deadLetter': {
        const letter = report.letter;
        owner.lastError(`${letter.error.name}: ${letter.error.message}`);
        owner.init.onDeadLetter({ kernel: owner.name, ...letter, at: new Date() });
        // A call whose handler failed is answered by its dead letter, whether or not the error reply on the output
        // ring gets there (it may be held for room when the kernel fails; a late one is ignored).
        if (letter.reason === 'handler-error' && report.request === true) {
          owner.rejectCall(letter.messageId, new HandlerFailedError(owner.name, letter.error));
        }
        return;
      }
      case 'exit':
        // The instance has left its worker: it touches the rings no more.
        this.#left = true;
        if (report.deviceLost !== undefined) owner.init.onDeviceLost?.(this.#device, report.deviceLost);
        if (this.#suspended) {
          // Stopped for a restart: the handle lives on, waiting for the next instance.
          this.#channel.unref();
          this.#onInstanceExit?.();
          return;
        }
        if (report.status === 'Failed') {
          // The instance has exited: nothing consumes the input any more, so an unsupervised kernel's queue is
          // dead-lettered (a supervised one keeps it for the next instance).
          const reason = report.reason ?? 'unknown';
          owner.fail(
            report.webgpu !== undefined
              ? reviveWebGpuError(report.webgpu)
              : report.deviceLost === undefined
                ? new KernelFailedError(owner.name, reason)
                : new CudaDeviceLostError(this.#device, report.deviceLost, `kernel '${owner.name}' failed: ${reason}`),
            'kernel-failed',
          );
          return;
        }
        // Failed from the host side meanwhile (forced, or its worker gone): already ended and counted; its rings
        // may go now that the instance has left.
        if (owner.exitStatus() !== undefined) {
          owner.instanceGone();
          return;
        }
        owner.ended(report.status);
        return;
    }
  }

  /**
   * Whether the instance has exited within `ms` (after `first` settles, when given: a command it must answer; its
   * rejection is thrown).
   */
  async #exitWithin(ms: number, first?: Promise<void>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const exited = this.#owner.exited;
    try {
      return await Promise.race([(first ?? Promise.resolve()).then(() => exited).then(() => true), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The numeric code of an error, for a span record (HandlerFailed for errors without a ringkernel code). */
export function errorNumberFrom(error: unknown): number {
  const code = (error as { code?: unknown } | undefined)?.code;
  const number = typeof code === 'string' ? errorNumberOf(code as ErrorCodeString) : 0;
  return number === 0 ? ErrorNumber.HandlerFailed : number;
}
