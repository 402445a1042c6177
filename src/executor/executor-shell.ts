import { threadId } from 'node:worker_threads';
import { type Actor, createActor } from 'xstate';
import type { SerializedWebGpuError } from '../errors/webgpu-errors.js';
import type { AnyKernelDefinition } from '../kernel/kernel-definition.js';
import { kernelLifecycle } from '../kernel/kernel-lifecycle.js';
import { lifecycleInspectionOf } from '../kernel/lifecycle-inspection.js';
import { ControlBlock } from '../wire/control-block.js';
import type { FrameRingMemory } from '../wire/frame-ring.js';
import { type ControlPort, executorPort } from './control-line.js';
import { kernelModuleDetail, loadKernel } from './kernel-module.js';
import {
  type AttachFailure,
  type AttachResult,
  type AttachStage,
  type AttachTask,
  type ControlCommand,
  type DeadLetterReason,
  type LifecycleCommand,
  lifecycleEventOf,
  lifecycleRefusal,
  serializeError,
  type TerminationMode,
  terminationModeOf,
  type WorkerReport,
} from './protocol.js';

/**
 * A kernel an executor runs, resident on its rings: what the shell's commands reach. Only the control plane goes
 * through it (a command, a checkpoint, a link), never a message.
 *
 * @example
 * class HostedKernel implements RunningKernel {
 *   snapshot() { return snapshotState(this.#definition, this.#state); }
 *   abort() { this.#aborted = true; }
 *   linkIn(memory) { this.#inputs.push(new FrameConsumer(memory)); }
 *   linkOut(memory, wake, types) { this.#links.push({ producer: new FrameProducer(memory, { alsoWake: wake }), types }); }
 *   terminating(mode) { this.#keepQueued = mode === 'keep'; }
 *   kick() { this.#input.interrupt(); }
 * }
 */
export interface RunningKernel {
  /**
   * SNAPSHOT: the kernel's state as bytes, taken between two batches (so it matches the handled cursors). A device
   * executor may answer once the batches it has in flight are done (a promise).
   */
  snapshot(): Uint8Array | Promise<Uint8Array>;
  /** ABORT: stop after the message in hand, dead-letter what is queued, end Failed (`termination was forced`). */
  abort(): void;
  /**
   * LINK_IN: also consume this ring (another kernel produces into it); `link` names the link on both ends (absent:
   * never fused). Throw to refuse it.
   */
  linkIn(memory: FrameRingMemory, link: number | undefined): void;
  /**
   * LINK_OUT: write outputs of these message types (all when undefined) to this ring instead of the host, and ring
   * the consuming kernel's doorbell `wake` after each frame. Throw to refuse it.
   */
  linkOut(
    memory: FrameRingMemory,
    wake: SharedArrayBuffer,
    types: readonly number[] | undefined,
    link: number | undefined,
  ): void;
  /**
   * TERMINATE was accepted (the lifecycle is Terminating): after the message in hand, end the queue the way `mode`
   * says — handle it (`drain`), dead-letter it (`discard`), or leave it in the rings for the next instance (`keep`).
   */
  terminating(mode: TerminationMode): void;
  /** A command changed what the kernel should do: a loop parked on its rings must look now. */
  kick(): void;
}

/**
 * A kernel an executor has prepared on its worker or device but not started: loaded, compiled, its memory
 * allocated — and nothing built over the rings or the ControlBlock yet, since a migration's new instance is
 * prepared while the old one still owns them.
 *
 * @example
 * const prepared: PreparedKernel = {
 *   restore: (bytes) => { state = restoreState(definition, bytes); },
 *   start: () => new HostedKernel(definition, shell, state).start(),
 *   discard: () => {},
 * };
 */
export interface PreparedKernel {
  /** The state a checkpoint took (at launch, or a migration's RESTORE), instead of a fresh one. May throw. */
  restore(bytes: Uint8Array): void;
  /**
   * Starts the kernel over its rings (after {@link ExecutorShell.launched}: Launched) and returns it running.
   * Throws when it cannot start; the shell then discards it and reports the kernel Failed.
   */
  start(): RunningKernel;
  /** Lets go of whatever `prepare` took (device memory, pinned pages): the kernel will never start. */
  discard(): void;
  /** What the attach reports besides the thread (how a CUDA image was made, say). */
  readonly attachInfo?: AttachInfo | undefined;
}

/** What an attach reports besides the thread and a failure. */
export type AttachInfo = Omit<AttachResult, 'threadId' | 'failure'>;

/**
 * A backend's executor, as the one attach step drives it: the CPU worker host, the CUDA device thread, and every
 * backend after them implement this and nothing else of the host ↔ executor protocol. The shell does the rest —
 * loading the kernel's module, the lifecycle machine, command dispatch, the dormant RESTORE / START / DISCARD
 * protocol of a migration, dead-letter and exit reports, and one typed failure for everything that can go wrong.
 *
 * @example
 * // The Piscina task module of a backend's executor thread:
 * export default function attach(task: AttachTask): Promise<AttachResult> {
 *   return attachKernel(task, {
 *     prepare(definition, shell) {
 *       const kernel = new HostedGpuKernel(definition, shell); // compiles, allocates; does not launch
 *       return { restore: (bytes) => kernel.restore(bytes), start: () => kernel.launch(), discard: () => kernel.release() };
 *     },
 *     failureDetail: (error) => (error instanceof GpuError ? { operation: error.operation } : {}),
 *   });
 * }
 */
export interface ExecutorBackend {
  /** Prepares one kernel (see {@link PreparedKernel}). May throw: the attach then fails at its `prepare` stage. */
  prepare(definition: AnyKernelDefinition, shell: ExecutorShell): PreparedKernel | Promise<PreparedKernel>;
  /** Typed details of an error the backend raised, for the host to rebuild it (errors cross threads as data). */
  failureDetail?(error: unknown): Partial<AttachFailure>;
}

/**
 * The one attach step of every executor: loads the kernel's module, checks the definition is the one the host
 * launched, prepares it with the backend, restores a checkpoint's state, then starts it — or, for a migration's
 * new instance (`task.dormant`), waits for RESTORE / START / DISCARD. Never throws: whatever fails comes back as
 * `failure`, with the stage it failed at, and the kernel's port is closed.
 *
 * @example
 * export default (task: AttachTask) => attachKernel(task, cpuBackend);
 */
export async function attachKernel(task: AttachTask, backend: ExecutorBackend): Promise<AttachResult> {
  let stage: AttachStage = 'load';
  let prepared: PreparedKernel | undefined;
  const port = executorPort(task.port);
  try {
    const definition = await loadKernel(task.kernelId, task.moduleUrl);
    stage = 'prepare';
    const shell = new ExecutorShell(task, port);
    prepared = await backend.prepare(definition, shell);
    if (task.restoreState !== undefined) {
      stage = 'restore';
      prepared.restore(task.restoreState);
    }
    stage = 'start';
    if (task.dormant) shell.awaitStart(prepared);
    else shell.listen(prepared.start());
    return { threadId, ...prepared.attachInfo };
  } catch (error) {
    prepared?.discard();
    port.close();
    const detail = { ...backend.failureDetail?.(error), ...kernelModuleDetail(error) };
    return { threadId, failure: { ...detail, error: serializeError(error), stage } };
  }
}

/**
 * The control shell around one kernel on its executor: the kernel's lifecycle actor (whose state the ControlBlock
 * mirrors), its control port, and every report the host reads from it. A backend's kernel is built with one and
 * reports through it; it never touches the port itself.
 */
export class ExecutorShell {
  /** The attach task: the kernel's rings, ControlBlock, options. */
  readonly task: AttachTask;
  /** The kernel's ControlBlock. */
  readonly control: ControlBlock;
  /** The kernel's control port (its own MessagePort, or its share of the worker's control line). */
  readonly #port: ControlPort;
  readonly #actor: Actor<typeof kernelLifecycle>;
  #running: RunningKernel | undefined;
  #exited = false;
  readonly #onCommand = (command: ControlCommand): void => this.#command(command);

  /** `port`: the task's control port, as the executor reaches it (see `executorPort`). */
  constructor(task: AttachTask, port: ControlPort = executorPort(task.port)) {
    this.task = task;
    this.#port = port;
    this.control = new ControlBlock(task.controlBlock);
    this.#actor = createActor(kernelLifecycle, {
      input: { controlBlock: this.control },
      // The runtime's `inspect` option: lifecycle events only (a handful per kernel), never per message.
      ...(task.inspect === true
        ? { inspect: (event) => port.postMessage({ type: 'inspect', event: lifecycleInspectionOf(event) }) }
        : {}),
    });
  }

  /** The lifecycle state (`Launched`, `Active`, `Deactivated`, `Terminating`, `Terminated`, `Failed`). */
  get state(): string {
    return String(this.#actor.getSnapshot().value);
  }

  /** Whether the termination under way handles the queue (`drain`) rather than dead-letters or keeps it. */
  get draining(): boolean {
    return this.#actor.getSnapshot().context.drain;
  }

  /**
   * The kernel is resident over its rings: starts its lifecycle (Created → Launched), and on to Active in the
   * same macrostep when the launch asked for an active kernel (`autoActivate`), as an ACTIVATE command would.
   */
  launched(): void {
    this.#actor.start();
    this.#actor.send(this.task.activate === true ? { type: 'LAUNCHED', activate: true } : { type: 'LAUNCHED' });
  }

  /** Terminating → Terminated: the queue has been ended the way the termination asked. */
  drained(): void {
    if (this.state === 'Terminating') this.#actor.send({ type: 'DRAINED' });
  }

  /** Posts a report to the host. `transfer`: buffers to move rather than copy. */
  report(report: WorkerReport, transfer: readonly ArrayBuffer[] = []): void {
    this.#port.postMessage(report, transfer);
  }

  /**
   * Reports one dead letter. `request`: the message was the host's `call` (its request frame on the kernel's own
   * input), so the letter answers it; a kernel-to-kernel frame never is (its ids are another producer's).
   */
  deadLetter(
    reason: DeadLetterReason,
    error: unknown,
    message: {
      readonly messageId: number;
      readonly correlationId: number;
      readonly typeId: number;
      readonly payload: Uint8Array;
    },
    request?: boolean,
  ): void {
    const letter = {
      reason,
      error: serializeError(error),
      messageId: message.messageId,
      correlationId: message.correlationId,
      typeId: message.typeId,
      payload: message.payload,
    };
    this.report(request === undefined ? { type: 'deadLetter', letter } : { type: 'deadLetter', request, letter });
  }

  /**
   * The kernel has left its executor: marks the ControlBlock terminated, reports the exit (Terminated, or Failed
   * with `failure` as the reason), stops the lifecycle and closes the port. Once.
   */
  exit(failure?: string, deviceLost?: string, webgpu?: SerializedWebGpuError): void {
    if (this.#exited) return;
    this.#exited = true;
    if (failure === undefined) {
      this.drained();
      this.control.markTerminated();
      this.report({ type: 'exit', status: 'Terminated' });
    } else {
      this.#actor.send({ type: 'FAIL', reason: failure });
      this.control.markTerminated();
      this.report({
        type: 'exit',
        status: 'Failed',
        reason: failure,
        ...(deviceLost === undefined ? {} : { deviceLost }),
        ...(webgpu === undefined ? {} : { webgpu }),
      });
    }
    this.#actor.stop();
    this.#port.off('message', this.#onCommand);
    this.#port.close();
  }

  /** Dispatches the host's commands to a started kernel. @internal */
  listen(running: RunningKernel): void {
    this.#running = running;
    this.#port.on('message', this.#onCommand);
  }

  /**
   * A migration's new instance: holds the prepared kernel until the host says RESTORE (the state), START (take
   * the rings over: the old instance has left them) or DISCARD (the migration rolled back). @internal
   */
  awaitStart(prepared: PreparedKernel): void {
    const port = this.#port;
    const onCommand = (command: ControlCommand): void => {
      if (command.command === 'RESTORE') {
        let report: WorkerReport = { type: 'restored', seq: command.seq };
        try {
          prepared.restore(command.bytes);
        } catch (error) {
          report = { type: 'restored', seq: command.seq, error: serializeError(error) };
        }
        this.report(report);
      } else if (command.command === 'DISCARD') {
        port.off('message', onCommand);
        this.#exited = true;
        prepared.discard();
        port.close();
      } else if (command.command === 'START') {
        port.off('message', onCommand);
        let running: RunningKernel;
        try {
          running = prepared.start();
        } catch (error) {
          // It never took the rings over: its exit and the refusal are all the host needs (the ControlBlock is
          // still the old instance's, so it is left alone).
          this.#exited = true;
          prepared.discard();
          if (this.#actor.getSnapshot().status === 'active') this.#actor.stop();
          this.report({ type: 'exit', status: 'Failed', reason: serializeError(error).message });
          this.report({ type: 'reply', seq: command.seq, ok: false, state: 'Created', target: 'Launched' });
          port.close();
          return;
        }
        this.listen(running);
        this.report({ type: 'reply', seq: command.seq, ok: true });
      }
    };
    port.on('message', onCommand);
  }

  #command(command: ControlCommand): void {
    const running = this.#running;
    if (running === undefined || this.#exited) return;
    switch (command.command) {
      case 'SNAPSHOT': {
        // Between batches (commands arrive on the event loop): the state matches the handled cursors exactly.
        const seq = command.seq;
        const answer = (bytes: Uint8Array): void => {
          this.report({ type: 'snapshot', seq, bytes }, [bytes.buffer as ArrayBuffer]);
        };
        const refuse = (error: unknown): void => {
          this.report({ type: 'snapshot', seq, error: serializeError(error) });
        };
        try {
          const bytes = running.snapshot();
          if (bytes instanceof Uint8Array) answer(bytes);
          else bytes.then(answer, refuse);
        } catch (error) {
          refuse(error);
        }
        return;
      }
      case 'START':
      case 'DISCARD':
      case 'RESTORE':
        return; // a dormant instance's commands (awaitStart)
      case 'ABORT':
        running.abort();
        break;
      case 'LINK_IN':
      case 'LINK_OUT':
        try {
          if (command.command === 'LINK_IN') running.linkIn(command.memory, command.link);
          else running.linkOut(command.memory, command.wake, command.types, command.link);
        } catch {
          this.report({ type: 'reply', seq: command.seq, ok: false, state: 'linked', target: 'linked' });
          return;
        }
        break;
      default:
        if (!this.#lifecycle(command, running)) return;
    }
    this.report({ type: 'reply', seq: command.seq, ok: true });
    // Whatever the kernel's loop is parked on, make it look at the new state.
    running.kick();
  }

  /** ACTIVATE, DEACTIVATE, TERMINATE: into the lifecycle machine, or refused when its state does not take it. */
  #lifecycle(command: LifecycleCommand, running: RunningKernel): boolean {
    const mode = command.command === 'TERMINATE' ? terminationModeOf(command) : undefined;
    const event = lifecycleEventOf(command, mode === 'drain');
    const snapshot = this.#actor.getSnapshot();
    if (!snapshot.can(event)) {
      this.report(lifecycleRefusal(command, snapshot.value));
      return false;
    }
    if (mode !== undefined) running.terminating(mode);
    this.#actor.send(event);
    return true;
  }
}
