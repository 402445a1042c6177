import { MessageChannel } from 'node:worker_threads';
import { type Relaunch, relaunchOf } from '../bridge/relaunch.js';
import type { KernelTransfer } from '../bridge/transfer-bridge.js';
import { copyQueuedFrames, type KernelCheckpoint } from '../devices/checkpoint.js';
import { InvalidArgumentError } from '../errors/argument-errors.js';
import { type ErrorCodeString, ErrorNumber, errorNumberOf } from '../errors/codes.js';
import { CudaDeviceLostError } from '../errors/cuda-errors.js';
import { StateSnapshotError } from '../errors/device-errors.js';
import { HandlerFailedError, InvalidStateError, KernelFailedError, QueueFullError } from '../errors/runtime-errors.js';
import { AbortedError, TimeoutError } from '../errors/value-errors.js';
import { reviveWebGpuError } from '../errors/webgpu-errors.js';
import {
  type DeadLetterReason,
  ERROR_REPLY_TYPE_ID,
  type SerializedError,
  type WorkerReport,
} from '../executor/protocol.js';
import type { DeviceBatchMetrics } from '../kernel/device-batch-metrics.js';
import { COMMAND_TARGET, type LifecycleCommand, lifecycleAccepts } from '../kernel/kernel-lifecycle.js';
import { LatencyHistogram } from '../kernel/latency-histogram.js';
import { checkPriority, invalidPriority, isPriority, Priority } from '../kernel/priority.js';
import { checkOptions, checkSignal, checkTimeout } from '../kernel/wait-options.js';
import type { DetachedSpan, HostSpanWriter } from '../telemetry/host-span-writer.js';
import { LifecycleTransition, SpanRecordKind, TRACE_FLAG_TRUNCATED } from '../telemetry/span-record.js';
import { type ControlBlock, ErrorCode, TERMINATE_FINISH, TERMINATE_NOW } from '../wire/control-block.js';
import type { Envelope } from '../wire/envelope.js';
import { spinFor } from '../wire/eventcount.js';
import { FrameConsumer } from '../wire/frame-consumer.js';
import { alignedFrameSize, FrameFlags, FrameHeader } from '../wire/frame-header.js';
import { FrameProducer } from '../wire/frame-producer.js';
import { createFrameRing, type FrameRingMemory } from '../wire/frame-ring.js';
import type { FrameView } from '../wire/frame-view.js';
import { KernelStatus, type KernelStatusName, kernelStatusName } from '../wire/kernel-status.js';
import { BytesMessage, type MessageCodec } from '../wire/message-schema.js';
import { RingOffset } from '../wire/ring-signal.js';
import { ControlChannel } from './control-channel.js';
import type {
  CallOptions,
  KernelFailureListener,
  KernelHandleInit,
  KernelMetrics,
  LinkCommand,
  ReceiveOptions,
  Refusal,
  SendOptions,
} from './kernel-handle-options.js';
import { type DormantInstance, dropDormant, queuedIn, sendState } from './kernel-migration.js';

export type { DormantInstance } from './kernel-migration.js';

import { type OrphanedKernel, recoverInputs, salvageInput } from './kernel-recovery.js';

export type {
  CallOptions,
  Dim3,
  KernelFailureListener,
  KernelHandleInit,
  KernelMetrics,
  ReceiveOptions,
  Refusal,
  SendOptions,
} from './kernel-handle-options.js';

interface PendingCall {
  /** performance.now() when the call (or receive) began. */
  readonly startedAt: number;
  readonly deadline: number;
  expire(): void;
  resolve(value: unknown): void;
  reject(error: Error): void;
  cleanup(): void;
}

interface PendingSend {
  readonly codec: MessageCodec<Uint8Array, unknown>;
  readonly bytes: Uint8Array;
  readonly envelope: Envelope;
  resolve(): void;
  reject(error: Error): void;
  cleanup(): void;
}

const RESOLVED = Promise.resolve();
/** The options of a send or call that gave none (no allocation per send). */
const NO_OPTIONS: SendOptions & CallOptions = Object.freeze({});
/** How long a forced kernel gets to stop after the message in hand before the host marks it Failed itself. */
const FORCE_GRACE_MS = 1000;
/** How long one wait of `for await (… of handle)` lasts before it looks again (it waits on, however long). */
const ITERATION_WAIT_MS = 60_000;
/** How long sends wait for room, with the kernel taking nothing in, before the host looks for a deadlock. */
const STALL_MS = 1000;
/** How long the host spins for a response before parking, in ms: a kernel usually answers well within it. */
const HOST_SPIN_MS = 0.05;
/** The same through the DMA mirror, whose two copies and kernel wake-up take longer than a direct answer. */
const HOST_SPIN_DMA_MS = 0.2;

/**
 * The host's end of one launched kernel. Sending writes straight into the kernel's input ring (no Promise
 * unless the ring is full); outputs are read from its output ring, responses matched to calls by correlation id.
 * Lifecycle commands go to the kernel's lifecycle actor in its worker; the status is read from the ControlBlock.
 *
 * @example
 * await using handle = await runtime.launch('averager', 1, 1);
 * await handle.activate();
 * handle.trySend({ value: 3 });
 * const { mean } = (await handle.call({ value: 5 })).toObject();
 */
export class KernelHandle<InIn = unknown, OutView = unknown> {
  /** The launch's name (the kernel id unless the launch gave another). */
  readonly name: string;
  /** The definition's id. */
  readonly kernelId: string;
  /** Numeric id: frames' destination, the ControlBlock's kernel_id. */
  readonly instanceId: number;
  readonly #init: KernelHandleInit;
  readonly #control: ControlBlock;
  #producer: FrameProducer;
  #consumer: FrameConsumer;
  /** The input ring (an empty stand-in once the kernel ended and its rings went back for reuse). */
  #inputMemory: FrameRingMemory;
  /** The current instance has left its worker (reported its exit, or its thread died). */
  #instanceLeft = false;
  #ringsReleased = false;
  /** Calls that gave up after their request was written: their responses, should they come, are dead letters. */
  readonly #abandoned = new Map<number, Error>();
  /**
   * Set the moment `terminate()` is called: from then on the kernel takes no new message, so nothing is written
   * into its input ring after the worker's last look at it (a frame written then would be neither handled nor
   * dead-lettered).
   */
  #closed = false;
  readonly #inputCodec: MessageCodec<InIn, unknown>;
  readonly #outputCodec: MessageCodec<unknown, OutView>;
  readonly #envelope: Envelope;
  /** Undefined when tracing is off: the hot paths test it once. */
  readonly #tracer: HostSpanWriter | undefined;
  /** The span of the request `#write`/`#enqueue` just sent, for `call` to end when the response comes. */
  #requestSpan: DetachedSpan | undefined;
  /** Kicks the DMA mirror after an input frame is published (undefined for `direct`). */
  #afterWrite: (() => void) | undefined;
  /** How the rings reach the instance; a `dma` CUDA kernel's changes when it migrates. */
  #transfer: KernelTransfer;
  /** How long the pump spins for output before it parks, ms. */
  readonly #spinMs: number;
  readonly #calls = new Map<number, PendingCall>();
  /** Every call and receive waiting, for the shared deadline timer. */
  readonly #deadlines = new Set<PendingCall>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  readonly #received: OutView[] = [];
  readonly #receivers: PendingCall[] = [];
  readonly #sends: PendingSend[] = [];
  /** Traced calls whose answer says the kernel's span was not recorded (cleared when the call's span ends). */
  readonly #truncatedCalls = new Set<number>();
  /** Round trip of calls answered with a result, host side: request written (or queued) to its response read. */
  readonly #callLatency = new LatencyHistogram();
  readonly #launchedAt = performance.now();
  readonly #exited: Promise<void>;
  /** Sends stalled for want of a reader: when the kernel last took input in (see #checkStall). */
  #stallMark: { received: number; since: number } | undefined;
  #stalled = false;
  #stalls = 0;
  /** Whether anyone asked this kernel to activate (a call to a kernel nobody will activate is refused at once). */
  #activationAsked = false;
  /** The terminate under way (or done), so that terminating twice waits for the one. */
  #terminating: Promise<void> | undefined;
  #markExited!: () => void;
  #nextMessageId: number;
  /** The device hosting the current instance. */
  #device: number;
  #migrations = 0;
  /** Dormant instances dropped on purpose (their port's close is not a worker's death). */
  readonly #discarded = new WeakSet<DormantInstance>();
  #sent = 0;
  #pumping = false;
  #sending = false;
  #failure: Error | undefined;
  #lastErrorMessage: string | undefined;
  #exitStatus: 'Terminated' | 'Failed' | undefined;
  /** The control-port RPC with the current instance (rebound when a supervisor restarts or a migration moves it). */
  readonly #channel: ControlChannel;
  /** Kernel-to-kernel links, replayed into a restarted instance. */
  readonly #links: LinkCommand[] = [];
  /** The supervisor's failure listener; while set, a failure suspends the kernel instead of ending it. */
  #supervisor: KernelFailureListener | undefined;
  /** The instance has left its worker and the handle waits for a restart (or to be given up). */
  #suspended = false;
  /** Whether the user last activated (not deactivated) the kernel, so a restarted instance is activated too. */
  #activeWanted = false;
  /**
   * The lowest priority the kernel admits now: 0 (everything) normally, raised by load shedding, above 255
   * (nothing) while the runtime accepts no work. One compare on the send path.
   */
  #minPriority = 0;
  #refusal: Refusal | undefined;
  /** Settles when a suspended kernel is restarted (or rejects when it is given up): commands wait for it. */
  #resumed: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | undefined;
  /** Settles the wait for a graceful stop-for-restart. */
  #onInstanceExit: (() => void) | undefined;
  readonly #onOutput = (frame: FrameView): void => this.#dispatch(frame);
  #hasOutput = (): boolean => this.#consumer.hasData();

  /** @internal — handles come from `runtime.launch`. */
  constructor(init: KernelHandleInit) {
    this.#init = init;
    this.name = init.name;
    this.kernelId = init.definition.id;
    this.instanceId = init.instanceId;
    this.#control = init.control;
    this.#inputCodec = init.definition.input;
    this.#outputCodec = init.definition.output;
    this.#producer = new FrameProducer(init.input);
    this.#inputMemory = init.input;
    this.#consumer = new FrameConsumer(init.output, { spin: 0 });
    this.#envelope = { messageId: 0, destination: init.instanceId, flags: 0 };
    this.#tracer = init.tracer;
    this.#transfer = init.transfer;
    this.#afterWrite = init.transfer.afterInputWrite;
    this.#spinMs = init.transfer.strategy === 'dma' ? HOST_SPIN_DMA_MS : HOST_SPIN_MS;
    const nudge = init.transfer.nudgeKernel;
    if (nudge !== undefined) {
      this.#hasOutput = () => {
        nudge();
        return this.#consumer.hasData();
      };
    }
    this.#nextMessageId = init.firstMessageId ?? 1;
    this.#device = init.device;
    this.#exited = new Promise((resolve) => {
      this.#markExited = resolve;
    });
    this.#channel = new ControlChannel(init.name, {
      report: (report) => this.#report(report),
      closed: (threadId) => this.#instanceClosed(threadId),
    });
    this.#channel.bind(init.port, init.threadId);
  }

  /** The instance's port closed without an exit report: its worker is gone (process.exit in a handler, a crash). */
  #instanceClosed(threadId: number): void {
    this.#instanceLeft = true;
    if (this.#exitStatus !== undefined) {
      // Ended already (a forced termination failed it): now that its worker has let go, its rings may go too.
      this.#releaseRings();
      return;
    }
    if (this.#suspended) {
      this.#onInstanceExit?.(); // died while stopping for a restart: stopped all the same
      return;
    }
    this.#init.onWorkerExit(threadId);
    this.#fail(new KernelFailedError(this.name, 'its worker thread exited'), 'kernel-failed');
  }

  /** The lifecycle state, read from the ControlBlock (no message). */
  get status(): KernelStatusName {
    return kernelStatusName(this.#control.status) ?? 'Failed';
  }

  /** The kernel's last heartbeat, µs since the epoch (it beats as it finishes batches; idle kernels do not). */
  get heartbeatUs(): number {
    return this.#control.heartbeatUs;
  }

  /** Resolves when the kernel has left its worker (Terminated or Failed). */
  get exited(): Promise<void> {
    return this.#exited;
  }

  /** Activates the kernel: it starts (or resumes) taking input. */
  activate(): Promise<void> {
    this.#activationAsked = true;
    return this.#command('ACTIVATE', 'activate');
  }

  /** Deactivates the kernel: it stays resident and stops taking input; what is sent meanwhile waits, in order. */
  deactivate(): Promise<void> {
    return this.#command('DEACTIVATE', 'deactivate');
  }

  /**
   * Terminates the kernel: it finishes the message in hand, then handles (`drain: true`, the launch's default)
   * or dead-letters (`drain: false`) what is still queued, and leaves its worker. Past `terminationTimeout` the
   * kernel is forced: pending input is dead-lettered and it is marked Failed (`KernelFailedError` with code
   * RK_TERMINATION_TIMEOUT as cause).
   */
  terminate(options: { readonly drain?: boolean } = {}): Promise<void> {
    // Once asked, a kernel terminates once: a second terminate (a stopped actor's, then shutdown's) waits for it.
    if (this.#terminating !== undefined) return this.#terminating;
    const terminating = this.#terminateTraced(options);
    this.#terminating = terminating;
    terminating.catch(() => {
      if (this.#terminating === terminating) this.#terminating = undefined;
    });
    return terminating;
  }

  async #terminateTraced(options: { readonly drain?: boolean }): Promise<void> {
    const span = this.#tracer?.beginLifecycle();
    if (span === undefined) return this.#terminate(options);
    try {
      await this.#terminate(options);
      this.#tracer?.endLifecycle(span, LifecycleTransition.TERMINATE, this.instanceId, 0);
    } catch (error) {
      this.#tracer?.endLifecycle(span, LifecycleTransition.TERMINATE, this.instanceId, errorNumberFrom(error));
      throw error;
    }
  }

  async #terminate(options: { readonly drain?: boolean }): Promise<void> {
    const drain = options.drain ?? this.#init.drainOnTerminate;
    // A kernel the user terminates has ended on purpose: no supervisor restarts it.
    this.#supervisor = undefined;
    // The kernel stops accepting now. Sends still waiting for room would be written after the worker's last
    // look at its queue (or into a ring nobody consumes any more): they are refused, each a dead letter.
    this.#closed = true;
    if (this.#failure === undefined) {
      this.#dropWaitingSends(
        new InvalidStateError(
          this.name,
          'send to',
          'Terminating',
          'Active',
          'and takes no more messages: this send was still waiting for room in its queue',
        ),
        'discarded-on-terminate',
      );
    }
    if (this.#suspended) {
      this.abandon(new KernelFailedError(this.name, 'terminated while waiting for its supervisor to restart it'), true);
      return;
    }
    const command = this.#command('TERMINATE', 'terminate', drain);
    // The word stops a batch in progress after the message in hand; the command says what to do next (and so
    // does the discard word, for a device executor that acts on the words before the command arrives).
    this.#control.requestTermination(TERMINATE_FINISH, !drain);
    await command;
    const timeout = this.#init.terminationTimeout;
    if (await this.#exitWithin(timeout)) return;
    // Forced: the kernel stops after the message in hand and dead-letters the rest; if its worker never gets that
    // far (a handler that never returns), the kernel is failed anyway.
    this.#control.requestTermination(TERMINATE_NOW);
    this.#channel.post({ seq: this.#channel.seq(), command: 'ABORT' });
    if (await this.#exitWithin(FORCE_GRACE_MS)) return;
    const error = new KernelFailedError(this.name, `did not terminate within ${timeout} ms`);
    (error as { cause?: unknown }).cause = { code: ErrorCode.TerminationTimeout };
    this.#fail(error);
  }

  /**
   * Sends a message without waiting: true when it is in the kernel's queue, false when the queue is full
   * (nothing sent). No Promise, no allocation: the hot path.
   * @throws {InvalidStateError} when the kernel cannot take messages (Terminated, Failed…).
   */
  trySend(message: InIn, priority: number = Priority.Normal): boolean {
    this.#checkSendable('send to', message, priority); // also refuses a priority outside 0…255
    if (this.#sends.length > 0) return false; // earlier sends are waiting: keep order
    return this.#write(message, 0, priority);
  }

  /**
   * Sends a message. Resolves at once (a shared, already-resolved Promise) when the message is queued; when the
   * queue is full, waits for room in order — or, with `onFull: 'reject'`, rejects with `QueueFullError`.
   */
  send(message: InIn, options?: SendOptions): Promise<void> {
    let checked: SendOptions;
    try {
      checked = this.#checkOptions(options, message, true);
      const signal = checked.signal;
      if (signal?.aborted) throw new AbortedError(`send to kernel '${this.name}'`, signal.reason);
      const priority = checked.priority ?? Priority.Normal;
      this.#checkSendable('send to', message, priority);
      if (this.#sends.length === 0 && this.#write(message, 0, priority)) return RESOLVED;
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#enqueue(message, 0, checked);
  }

  /**
   * Sends a request and resolves with the kernel's response (what its handler returned), matched by
   * correlation id however many calls interleave. The response is a view over its own copy: keep it as long as
   * you like.
   * @throws {TimeoutError} after `timeout` ms (default 30 s); {@link HandlerFailedError} when the handler threw;
   * {@link KernelFailedError} when the kernel failed meanwhile.
   */
  call(request: InIn, options?: CallOptions): Promise<OutView> {
    let checked: CallOptions;
    try {
      checked = this.#checkOptions(options, request, false);
    } catch (error) {
      return Promise.reject(error);
    }
    const breaker = checked.breaker;
    if (breaker !== undefined) {
      const { breaker: _guarded, ...rest } = checked;
      return breaker.execute(() => this.call(request, rest));
    }
    const signal = checked.signal;
    // Aborted already: nothing is sent (the kernel would answer a caller that has left).
    if (signal?.aborted) return Promise.reject(new AbortedError(`call on kernel '${this.name}'`, signal.reason));
    const timeout = checked.timeout ?? 30_000;
    const messageId = this.#nextMessageId;
    const response = this.#waitFor(this.#calls, messageId, timeout, signal, 'call');
    try {
      const priority = checked.priority ?? Priority.Normal;
      this.#checkSendable('call', request, priority);
      // Launched and never asked to activate: the kernel takes no input, and the call would only time out.
      if (this.status === 'Launched' && !this.#activationAsked && this.#supervisor === undefined && !this.#suspended) {
        throw new InvalidStateError(
          this.name,
          'call',
          'Launched',
          'Active',
          'not yet activated, so it takes no input: call activate() first, or launch with { autoActivate: true }',
        );
      }
      if (this.#sends.length === 0 && this.#write(request, FrameFlags.REQUEST, priority)) {
        this.#traceCall(response, messageId, request);
        this.#pump();
        return response;
      }
      // Waits for room with no deadline or signal of its own: the call's own withdraw it (see #giveUpCall).
      this.#enqueue(request, FrameFlags.REQUEST, priority === Priority.Normal ? NO_OPTIONS : { priority }).then(
        () => this.#pump(),
        (error: Error) => this.#calls.get(messageId)?.reject(error),
      );
      this.#traceCall(response, messageId, request);
    } catch (error) {
      this.#calls.get(messageId)?.reject(error as Error);
    }
    return response;
  }

  /** Takes the next output that is not a call's response, or `undefined` when there is none. */
  tryReceive(): OutView | undefined {
    if (this.#received.length === 0) this.#consumer.drain(this.#onOutput);
    return this.#received.shift();
  }

  /**
   * Waits for the next output that is not a call's response.
   * @throws {TimeoutError} after `timeout` ms (default 30 s); {@link InvalidStateError} when the kernel has
   * terminated and nothing is left; {@link KernelFailedError} when it failed.
   */
  receive(options: number | ReceiveOptions = 30_000): Promise<OutView> {
    let timeout: number;
    let signal: AbortSignal | undefined;
    try {
      if (typeof options === 'number') timeout = checkTimeout(options, 'timeout');
      else {
        const bag = checkOptions(options, 'options');
        timeout = bag.timeout === undefined ? 30_000 : checkTimeout(bag.timeout, 'options.timeout');
        signal = checkSignal(bag.signal, 'options.signal');
        if (signal?.aborted) throw new AbortedError(`receive on kernel '${this.name}'`, signal.reason);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    const ready = this.tryReceive();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#exitStatus === 'Terminated') {
      return Promise.reject(new InvalidStateError(this.name, 'receive from', 'Terminated', 'Active'));
    }
    const id = this.#channel.seq();
    const waiting = new Map<number, PendingCall>();
    const promise = this.#waitFor(waiting, id, timeout, signal, 'receive');
    this.#receivers.push(waiting.get(id) as PendingCall);
    this.#pump();
    return promise;
  }

  /**
   * Waits for outputs (not call responses) and takes up to `max` of them at once: the first as `receive` does,
   * then whatever else is already there. Reading in batches is what keeps a kernel that outputs as fast as it
   * takes input from filling its output queue (and then holding, and then refusing input).
   * @throws as {@link KernelHandle.receive}.
   */
  async receiveBatch(max = 256, timeout = 30_000): Promise<OutView[]> {
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`receiveBatch: max must be a positive integer, got ${String(max)}`);
    }
    const first = await this.receive(timeout);
    const batch = [first] as OutView[];
    for (let next = this.tryReceive(); next !== undefined; next = batch.length < max ? this.tryReceive() : undefined) {
      batch.push(next);
    }
    return batch;
  }

  /**
   * The kernel's outputs (not call responses) as they come: `for await (const output of handle)`. Ends when the
   * kernel has terminated and every output has been read; throws {@link KernelFailedError} if it fails. The
   * natural loop for a consumer running beside the code that sends.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<OutView, void, undefined> {
    for (;;) {
      const ready = this.tryReceive();
      if (ready !== undefined) {
        yield ready;
        continue;
      }
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#endedClean()) return;
      try {
        yield await this.receive(ITERATION_WAIT_MS);
      } catch (error) {
        if (error instanceof TimeoutError) continue;
        if (this.#endedClean()) return;
        throw error;
      }
    }
  }

  /** Whether the kernel has ended Terminated (not failed). */
  #endedClean(): boolean {
    return this.#exitStatus === 'Terminated' && this.#failure === undefined;
  }

  /**
   * The kernel's message counters, straight from its ControlBlock (published once per batch): cheap enough to
   * poll, unlike {@link KernelHandle.metrics}, which also walks the queues and the latency histogram.
   */
  counters(): {
    readonly received: number;
    readonly processed: number;
    readonly failed: number;
    readonly dropped: number;
  } {
    const control = this.#control;
    return {
      received: Number(control.messagesReceived),
      processed: Number(control.messagesProcessed),
      failed: Number(control.messagesFailed),
      dropped: Number(control.messagesDropped),
    };
  }

  /** The handler latency histogram (shared with the executor, which samples one message in eight). @internal */
  get handlerLatency(): LatencyHistogram {
    return this.#init.histogram;
  }

  /** Latency of the kernel-to-kernel hops into this kernel (one frame in eight). @internal */
  get hopLatency(): LatencyHistogram {
    return this.#init.hopHistogram;
  }

  /** A WebGPU kernel's batch metrics (batches, their sizes, in flight, stage times); undefined on CPU workers. @internal */
  get deviceBatches(): DeviceBatchMetrics | undefined {
    return this.#init.deviceBatches;
  }

  /** The round trip of this handle's calls answered with a result, host side. @internal */
  get callLatency(): LatencyHistogram {
    return this.#callLatency;
  }

  /** Counters, queue depths, latency, status: read from shared memory, no message to the kernel. */
  metrics(): KernelMetrics {
    const control = this.#control;
    const lastCode = control.lastErrorCode;
    return {
      name: this.name,
      kernelId: this.kernelId,
      instanceId: this.instanceId,
      status: this.status,
      messagesSent: this.#sent,
      messagesReceived: Number(control.messagesReceived),
      messagesProcessed: Number(control.messagesProcessed),
      messagesFailed: Number(control.messagesFailed),
      messagesDropped: Number(control.messagesDropped),
      inputQueueDepth: this.#producer.pendingFrames(),
      inputQueueCapacity: this.#init.queueCapacity,
      outputQueueDepth: this.#consumer.availableReadFrames() + this.#received.length,
      sendsWaiting: this.#sends.length,
      sendStalls: this.#stalls,
      lastError: lastCode === 0 ? null : { code: lastCode, message: this.#lastErrorMessage },
      errorCount: control.errorCount,
      uptimeMs: Math.round(performance.now() - this.#launchedAt),
      latency: this.#init.histogram.summary(),
      transferStrategy: this.#transfer.strategy,
      transfer: this.#transfer.stats(),
      workerThreadId: this.#channel.threadId,
      restarts: control.generation,
      device: this.#device,
      migrations: this.#migrations,
      gridSize: this.#init.gridSize,
      blockSize: this.#init.blockSize,
    };
  }

  /** Terminates the kernel if it is still running (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#terminating !== undefined) return this.#terminating;
    if (this.#exitStatus === undefined && this.#failure === undefined && lifecycleAccepts(this.status, 'TERMINATE')) {
      await this.terminate();
    }
  }

  /** How the kernel's rings reach it (kernel-to-kernel links ring the doorbell of its own input end). @internal */
  get transfer(): KernelTransfer {
    return this.#transfer;
  }

  /** The kernel's input ring memory (kernel-to-kernel links ring its doorbell). @internal */
  get inputMemory(): FrameRingMemory {
    return this.#inputMemory;
  }

  /** The kernel's output message type. @internal */
  get outputCodec(): MessageCodec<unknown, OutView> {
    return this.#outputCodec;
  }

  /** The other message types the kernel may emit (its definition's `emits`). @internal */
  get emittedCodecs(): readonly MessageCodec<unknown, unknown>[] | undefined {
    return this.#init.definition.emits;
  }

  /** The kernel's input message type. @internal */
  get inputCodec(): MessageCodec<InIn, unknown> {
    return this.#inputCodec;
  }

  /**
   * Sends a kernel-to-kernel wiring command to the kernel's worker and waits for it to be in place; the link is
   * kept and wired again into every restarted instance. @internal
   */
  async link(command: LinkCommand): Promise<void> {
    if (this.#suspended) {
      this.#links.push(command); // wired when the supervisor restarts the kernel
      return;
    }
    await this.#sendLink(command);
    this.#links.push(command);
  }

  #sendLink(command: LinkCommand): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return this.#channel.request(command);
  }

  /** Where a new instance of this kernel can be launched (restart here, another worker, another device). @internal */
  get relaunch(): Relaunch {
    return relaunchOf(this.#transfer);
  }

  /** Times a supervisor restarted this kernel (the ControlBlock's generation). */
  get restarts(): number {
    return this.#control.generation;
  }

  /** Whether the kernel's worker is inside one of its batches (a stuck handler is the one that is). @internal */
  get inBatch(): boolean {
    return this.#control.drainingInput !== 0;
  }

  /** Whether a supervisor watches this kernel (restarts it when its instance fails). @internal */
  get supervised(): boolean {
    return this.#supervisor !== undefined;
  }

  /** Whether the kernel's instance has stopped and its supervisor has yet to restart it (or give it up). */
  get awaitingRestart(): boolean {
    return this.#suspended;
  }

  /**
   * Puts the kernel under a supervisor (or takes it out, with `undefined`): from now on a failure of its instance
   * suspends the handle — queued input kept, calls and receives still waiting — and calls `listener`, which must
   * answer with {@link KernelHandle.restart} or {@link KernelHandle.abandon}. @internal
   */
  superviseWith(listener: KernelFailureListener | undefined): void {
    this.#supervisor = listener;
  }

  /**
   * Stops the kernel's instance for a restart of its supervisor's group: it finishes the message in hand and
   * writes the outputs it made, then leaves its worker; its queued input stays in the rings for the next
   * instance. Resolves once it has left (at once when it already has). @internal
   */
  async stopForRestart(): Promise<void> {
    if (this.#suspended || this.#failure !== undefined || this.#exitStatus !== undefined) return;
    this.#enterSuspension();
    const exited = new Promise<void>((resolve) => {
      this.#onInstanceExit = resolve;
    });
    this.#channel.post({ seq: this.#channel.seq(), command: 'TERMINATE', drain: false, keep: true });
    // The queue stays in the rings for the next instance (a device executor reads that from the discard word).
    this.#control.requestTermination(TERMINATE_FINISH, true);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.#init.terminationTimeout);
    });
    try {
      if (await Promise.race([exited.then(() => true), timedOut])) return;
    } finally {
      clearTimeout(timer);
      this.#onInstanceExit = undefined;
    }
    // The instance does not stop (a handler that never returns): it cannot be restarted, only given up.
    const error = new KernelFailedError(
      this.name,
      `did not stop for a restart within ${this.#init.terminationTimeout} ms`,
    );
    (error as { cause?: unknown }).cause = { code: ErrorCode.TerminationTimeout };
    this.#control.requestTermination(TERMINATE_NOW);
    this.#channel.post({ seq: this.#channel.seq(), command: 'ABORT' });
    this.abandon(error);
    throw error;
  }

  /**
   * Attaches a fresh instance of the suspended kernel: fresh state (the definition's `init`), the same rings
   * and ControlBlock, resuming where the last instance's handlers got to, wired again to its links, and
   * activated again if it was active. What was queued meanwhile is handled by the new instance; calls still
   * waiting get their responses from it. @internal
   */
  async restart(): Promise<void> {
    if (!this.#suspended || this.#failure !== undefined) {
      throw new InvalidStateError(this.name, 'restart', this.status, 'Launched');
    }
    // A dma kernel's replicas held what the dead instance was given: they go (the output replica's frames are
    // carried home first), the input ring resumes at the handled cursor, and fresh replicas start from there.
    const reopen = this.#transfer.reopen;
    if (reopen !== undefined) this.#transfer.release();
    recoverInputs(this.#orphaned);
    if (reopen !== undefined) {
      this.#transfer = reopen();
      this.#afterWrite = this.#transfer.afterInputWrite;
    }
    this.#control.resetForRestart();
    const { port1, port2 } = new MessageChannel();
    let threadId: number;
    try {
      ({ threadId, device: this.#device } = await this.#init.reattach(this, port2));
    } catch (error) {
      port1.close();
      throw error;
    }
    this.#channel.bind(port1, threadId);
    this.#instanceLeft = false;
    this.#exitStatus = undefined;
    this.#suspended = false;
    const resumed = this.#resumed;
    this.#resumed = undefined;
    for (const link of this.#links) await this.#sendLink(link);
    if (this.#activeWanted) await this.#command('ACTIVATE', 'activate');
    if (this.#sends.length > 0) void this.#flushSends();
    if (this.#waiting()) this.#pump();
    resumed?.resolve();
  }

  /**
   * Gives the suspended kernel up: it becomes Failed for good, its waiting calls, receives and sends reject, and
   * what is still queued for it is dead-lettered (reason `kernel-failed`), or — `quiet` — dropped as the user's
   * own terminate without drain would. @internal
   */
  abandon(error: Error, quiet = false): void {
    this.#supervisor = undefined;
    if (this.#failure !== undefined) return;
    const wasSuspended = this.#suspended;
    this.#suspended = false;
    this.#resumed?.reject(error);
    this.#resumed = undefined;
    this.#fail(error, wasSuspended ? (quiet ? 'discarded-on-terminate' : 'kernel-failed') : undefined);
  }

  /** The (virtual) device hosting the kernel now. */
  get device(): number {
    return this.#device;
  }

  /** Times the kernel was migrated between devices. */
  get migrations(): number {
    return this.#migrations;
  }

  /**
   * Takes a checkpoint: the kernel is paused between batches (deactivated, if it was active — senders keep
   * writing into its queue meanwhile), its state taken through its `snapshot` hook (default: v8 serialization)
   * and a copy made of the frames still queued in its input ring; then it is re-activated. Launch a new kernel
   * from it with `runtime.launch(…, { restore: checkpoint })`. Kernel-to-kernel link rings are not copied.
   *
   * @throws {StateSnapshotError} when the state cannot be taken (the kernel runs on, unchanged).
   * @example
   * const saved = await counter.checkpoint();
   * const twin = await runtime.launch('counter', 1, 1, { name: 'counter-2', restore: saved, autoActivate: true });
   */
  async checkpoint(): Promise<KernelCheckpoint> {
    const wasActive = await this.quiesce();
    try {
      const state = await this.snapshotState();
      const queued = copyQueuedFrames(this.#init.input);
      this.#init.onCheckpoint();
      return Object.freeze({
        kernelId: this.kernelId,
        name: this.name,
        takenAt: new Date(),
        state,
        queued,
      });
    } finally {
      if (wasActive) await this.resumeAfterQuiesce();
    }
  }

  /**
   * Pauses an active kernel between batches without changing what the user asked for (a migration's or a
   * checkpoint's pause): it finishes the batch in hand and takes no more input. Returns whether it was active.
   * @internal
   */
  async quiesce(): Promise<boolean> {
    if (this.status !== 'Active') return false;
    await this.#command('DEACTIVATE', 'quiesce', true, false);
    return true;
  }

  /** Ends a {@link KernelHandle.quiesce}: activates the kernel again if the user still wants it active. @internal */
  async resumeAfterQuiesce(): Promise<void> {
    if (this.#activeWanted && this.status !== 'Active') await this.#command('ACTIVATE', 'resume', true, false);
  }

  /** Asks the instance for its state's bytes (between batches). @throws {StateSnapshotError} @internal */
  snapshotState(): Promise<Uint8Array> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#exitStatus !== undefined || this.#suspended) {
      return Promise.reject(new InvalidStateError(this.name, 'checkpoint', this.status, 'Active'));
    }
    return this.#channel.snapshot();
  }

  /**
   * Attaches a migration's new instance, dormant, on `device`: its worker loads the kernel's module now, before
   * the kernel pauses. @internal
   */
  async prepareMove(device: number): Promise<DormantInstance> {
    const { port1, port2 } = new MessageChannel();
    // A dma CUDA kernel's rings are replicas in its device's memory: the new instance gets its own on the target.
    const transferMove = this.#transfer.moveTo?.(device);
    try {
      const threadId = await this.#init.attachDormant(this, port2, device, transferMove?.devicePointers);
      return { port: port1, threadId, device, transferMove };
    } catch (error) {
      port1.close();
      transferMove?.abort();
      throw error;
    }
  }

  /**
   * Hands the state to the dormant instance (the buffer is transferred, not copied); `restored` resolves once its
   * worker has rebuilt the state, or rejects with {@link StateSnapshotError} when the `restore` hook (or v8) could
   * not. @internal
   */
  transferState(dormant: DormantInstance, state: Uint8Array): { restored: Promise<void> } {
    return sendState(this.name, dormant, state, {
      discarded: this.#discarded,
      onWorkerExit: (threadId) => this.#init.onWorkerExit(threadId),
    });
  }

  /** Drops a dormant instance that will not be used (a migration rolling back). @internal */
  discardMove(dormant: DormantInstance): void {
    dropDormant(dormant, this.#discarded);
  }

  /**
   * The migration's swap: the old instance stops after the batch in hand, writing out the outputs it made and
   * leaving the queue in the rings (as for a restart); the dormant instance then takes the same rings and
   * ControlBlock over where the old one's handlers got to, and is wired to the kernel's links again. Senders and
   * kernel-to-kernel producers keep writing into the same rings, so they now reach the new instance. With
   * `resume`, it is activated too if the user wants it active (`activated` settles then). Frames in the rings at
   * the swap are returned: they were carried in place. @internal
   */
  async completeMove(
    dormant: DormantInstance,
    resume: boolean,
  ): Promise<{ carried: { frames: number; bytes: number }; activated: Promise<void> }> {
    try {
      await this.stopForRestart(); // throws (kernel Failed) when the old instance will not stop
    } catch (error) {
      dormant.transferMove?.abort();
      throw error;
    }
    recoverInputs(this.#orphaned);
    const carried = this.queuedInPlace();
    if (dormant.transferMove !== undefined) {
      // The old instance has stopped: its device's mirror carries the last outputs home, and the target's takes
      // the rings over from the host's, queue included, before the new instance starts.
      this.#transfer = dormant.transferMove.commit();
      this.#afterWrite = this.#transfer.afterInputWrite;
    }
    this.#control.resetForRestart(false);
    this.#channel.bind(dormant.port, dormant.threadId);
    this.#instanceLeft = false;
    this.#device = dormant.device;
    this.#migrations++;
    const request = (message: object): Promise<void> => this.#channel.request(message);
    // Pipelined, one round trip in all: the port keeps order, so the links are in place before the activation
    // lets the new instance take input.
    // The new instance's worker may die before it answers: then the kernel has no instance left and fails (its
    // queue dead-lettered, nothing lost silently).
    const started = new Promise<void>((resolve, reject) => {
      const onClose = (): void => {
        this.#init.onWorkerExit(dormant.threadId);
        reject(new KernelFailedError(this.name, 'its new instance exited before it started'));
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
    this.#exitStatus = undefined;
    this.#suspended = false;
    const resumed = this.#resumed;
    this.#resumed = undefined;
    if (this.#sends.length > 0) void this.#flushSends();
    if (this.#waiting()) this.#pump();
    resumed?.resolve();
    return { carried, activated };
  }

  /** Frames (and their bytes) queued now in the input ring and every kernel-to-kernel input ring. @internal */
  queuedInPlace(): { frames: number; bytes: number } {
    return queuedIn([this.#init.input, ...this.#orphaned.linkInputs]);
  }

  /** Marks the kernel Failed from the host side (its worker is gone). @internal */
  fail(reason: string): void {
    this.#fail(new KernelFailedError(this.name, reason));
  }

  // ---------------------------------------------------------------------------------------------------------------

  #checkSendable(operation: string, message: InIn, priority: number): void {
    // One atomic load and two compares on the hot path: Launched, Active and Deactivated take messages, of a
    // valid, admitted priority.
    const code = this.#control.status;
    const admitted = priority >= this.#minPriority && isPriority(priority);
    if (
      admitted &&
      code >= KernelStatus.Launched &&
      code <= KernelStatus.Deactivated &&
      this.#failure === undefined &&
      !this.#closed
    ) {
      return;
    }
    if (!isPriority(priority)) {
      // Not a priority at all (-1, NaN, 300): the caller's mistake, not the kernel's state.
      const error = invalidPriority(priority);
      this.#refuse('invalid-argument', error, message);
      throw error;
    }
    if (this.#closed && this.#failure === undefined) {
      // Terminate was called: the status word may still say Active until the worker takes the command.
      const error = new InvalidStateError(
        this.name,
        operation,
        this.#exitStatus ?? 'Terminating',
        'Active',
        'and takes no more messages (launch it again for a new instance)',
      );
      this.#refuse('kernel-gone', error, message);
      throw error;
    }
    if (!admitted && this.#failure === undefined && this.#refusal !== undefined) {
      const { error, reason } = this.#refusal(this.name, priority);
      this.#refuse(reason, error, message);
      throw error;
    }
    // Supervised and not given up: the instance may be failing, stopped or restarting, and the host may not know
    // it yet (the status word is written before the exit report arrives). Messages queue in the ring for the
    // restarted instance; should the supervisor give the kernel up, they are dead-lettered, not lost.
    if ((this.#suspended || this.#supervisor !== undefined) && this.#failure === undefined) return;
    const status = this.status;
    const error =
      this.#failure ??
      new InvalidStateError(
        this.name,
        operation,
        status,
        'Active',
        status === 'Terminated' || status === 'Terminating'
          ? 'and takes no more messages (launch it again for a new instance)'
          : 'and takes no messages',
      );
    this.#refuse('kernel-gone', error, message);
    throw error;
  }

  /**
   * Checks the options of a send (`send`: also `onFull`) or call up front, each wrong one refused with a typed
   * error naming it; the message it would have carried is a dead letter (`invalid-argument`).
   */
  #checkOptions<T extends SendOptions & CallOptions>(options: T | undefined, message: InIn, send: boolean): T {
    if (options === undefined) return NO_OPTIONS as T;
    try {
      const bag = checkOptions(options, 'options');
      if (bag.timeout !== undefined) checkTimeout(bag.timeout, 'options.timeout');
      checkSignal(bag.signal, 'options.signal');
      if (bag.priority !== undefined) checkPriority(bag.priority, 'options.priority');
      if (send && bag.onFull !== undefined && bag.onFull !== 'wait' && bag.onFull !== 'reject') {
        throw new InvalidArgumentError(
          'options.onFull',
          `options.onFull must be 'wait' or 'reject', got ${bag.onFull}`,
        );
      }
      return bag;
    } catch (error) {
      this.#refuse('invalid-argument', error as Error, message);
      throw error;
    }
  }

  /**
   * Sends still waiting for room will never be written: each rejects with `error` and is recorded as a dead
   * letter (its bytes were encoded when it started waiting).
   */
  #dropWaitingSends(error: Error, reason: DeadLetterReason): void {
    const dropped = this.#sends.splice(0);
    for (const send of dropped) {
      this.#init.onDeadLetter({
        kernel: this.name,
        reason,
        error: { name: error.name, message: error.message, code: (error as { code?: string }).code },
        messageId: send.envelope.messageId ?? 0,
        correlationId: 0,
        typeId: send.codec.typeId,
        payload: send.bytes,
        at: new Date(),
      });
      send.reject(error);
    }
  }

  /** A refused message is recorded: a dead letter as well as the caller's error. */
  #refuse(reason: DeadLetterReason, error: Error, message: InIn): void {
    this.#init.onDeadLetter({
      kernel: this.name,
      reason,
      error: { name: error.name, message: error.message, code: (error as { code?: string }).code },
      messageId: 0,
      correlationId: 0,
      typeId: this.#inputCodec.typeId,
      payload: encodeCopy(this.#inputCodec, message),
      at: new Date(),
    });
  }

  /**
   * Sets the lowest priority the kernel admits, and how a refused message is reported (the runtime's drain and
   * load shedding). @internal
   */
  admit(minPriority: number, refusal: Refusal | undefined): void {
    this.#minPriority = minPriority;
    this.#refusal = refusal;
  }

  /**
   * Work not yet done: frames queued in the input ring, sends waiting for room, calls awaiting answers, and one
   * for each kernel-to-kernel input ring that is not empty. @internal
   */
  get pendingWork(): number {
    let pending = this.#producer.pendingFrames() + this.#sends.length + this.#calls.size;
    for (const link of this.#links) {
      if (link.command !== 'LINK_IN') continue;
      const indices = new Uint32Array(link.memory.ring, 0, 2);
      // Acquire loads of the link's write and read indices (its producer and consumer are other threads).
      if (Atomics.load(indices, 0) !== Atomics.load(indices, 1)) pending++;
    }
    return pending;
  }

  #write(message: InIn, flags: number, priority: number): boolean {
    const envelope = this.#envelope;
    envelope.messageId = this.#nextMessageId;
    envelope.flags = flags;
    envelope.priority = priority;
    const tracer = this.#tracer;
    if (tracer !== undefined) return this.#writeTraced(tracer, message, flags);
    if (!this.#producer.tryWrite(this.#inputCodec, message, envelope)) return false;
    this.#afterWrite?.();
    this.#nextMessageId++;
    this.#sent++;
    return true;
  }

  /** `#write` with tracing on: the sampling decision, then the send span (or, for a request, the call's). */
  #writeTraced(tracer: HostSpanWriter, message: InIn, flags: number): boolean {
    const envelope = this.#envelope;
    const startNs = tracer.beginMessage(envelope);
    if (!this.#producer.tryWrite(this.#inputCodec, message, envelope)) return false;
    const messageId = this.#nextMessageId++;
    this.#sent++;
    if (startNs >= 0) {
      if (flags & FrameFlags.REQUEST) this.#requestSpan = tracer.detach(startNs);
      else {
        const codec = this.#inputCodec;
        tracer.endSend(startNs, messageId, this.instanceId, codec.typeId, codec.encodedSize(message));
      }
    }
    return true;
  }

  /** Ends the span of the request just sent (if sampled) when its call settles. Sampled calls only. */
  #traceCall(response: Promise<OutView>, messageId: number, request: InIn): void {
    const span = this.#requestSpan;
    const tracer = this.#tracer;
    if (span === undefined || tracer === undefined) return;
    this.#requestSpan = undefined;
    const codec = this.#inputCodec;
    const size = codec.encodedSize(request);
    const end = (errorCode: number): void =>
      tracer.endDetached(
        span,
        SpanRecordKind.CALL,
        messageId,
        this.instanceId,
        codec.typeId,
        size,
        errorCode,
        this.#truncatedCalls.delete(messageId),
      );
    response.then(
      () => end(0),
      (error: unknown) => end(errorNumberFrom(error)),
    );
  }

  #enqueue(message: InIn, flags: number, options: SendOptions): Promise<void> {
    if ((options.onFull ?? this.#init.onFull) === 'reject') return Promise.reject(new QueueFullError(this.name));
    // Encode now: the caller may reuse its object, and the ring takes bytes in order later.
    const codec = this.#inputCodec;
    const bytes = new Uint8Array(codec.encodedSize(message));
    codec.encodeInto(new DataView(bytes.buffer), bytes, 0, message);
    const envelope: Envelope = {
      messageId: this.#nextMessageId++,
      destination: this.instanceId,
      flags,
      priority: options.priority ?? Priority.Normal,
    };
    const span = this.#traceQueued(envelope);
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => settle(new AbortedError(`send to kernel '${this.name}'`, options.signal?.reason));
      const pending: PendingSend = {
        codec: { ...BytesMessage, name: codec.name, typeId: codec.typeId },
        bytes,
        envelope,
        resolve: () => {
          pending.cleanup();
          this.#sent++;
          if (span !== undefined && !(flags & FrameFlags.REQUEST)) {
            const id = envelope.messageId ?? 0;
            this.#tracer?.endDetached(span, SpanRecordKind.SEND, id, this.instanceId, codec.typeId, bytes.length, 0);
          }
          resolve();
        },
        reject: (error) => settle(error),
        cleanup: () => {
          if (timer !== undefined) clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
        },
      };
      const settle = (error: Error): void => {
        pending.cleanup();
        // Never sent: its span is given up (a request's ends with the call, as an error).
        if (span !== undefined && !(flags & FrameFlags.REQUEST)) this.#tracer?.abandon(span);
        const at = this.#sends.indexOf(pending);
        if (at >= 0) this.#sends.splice(at, 1);
        reject(error);
      };
      if (options.timeout !== undefined && options.timeout !== Number.POSITIVE_INFINITY) {
        timer = setTimeout(() => {
          const error = new TimeoutError(`send to kernel '${this.name}'`, options.timeout as number);
          if (this.#stalled) {
            error.message += `: deadlocked — the kernel's output queue is full and nothing reads it, so it takes no input; read outputs while sending`;
          }
          settle(error);
        }, options.timeout);
      }
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#sends.push(pending);
      void this.#flushSends();
    });
  }

  /**
   * Tracing on: the sampling decision for a message that waits for room. Its span outlives the scratch context,
   * so the envelope gets a copy; a request's span is left for `call` to end.
   */
  #traceQueued(envelope: Envelope): DetachedSpan | undefined {
    const tracer = this.#tracer;
    if (tracer === undefined) return undefined;
    const startNs = tracer.beginMessage(envelope);
    if (startNs < 0) return undefined;
    const span = tracer.detach(startNs);
    envelope.traceId = span.traceId;
    envelope.spanId = span.spanId;
    if ((envelope.flags ?? 0) & FrameFlags.REQUEST) this.#requestSpan = span;
    return span;
  }

  async #flushSends(): Promise<void> {
    if (this.#sending) return;
    this.#sending = true;
    try {
      while (this.#sends.length > 0 && this.#failure === undefined) {
        const head = this.#sends[0] as PendingSend;
        if (this.#producer.tryWrite(head.codec, head.bytes, head.envelope)) {
          this.#afterWrite?.();
          this.#sends.shift();
          head.resolve();
          continue;
        }
        if (!(await this.#producer.waitForSpaceAsync(alignedFrameSize(head.bytes.length), 100))) this.#checkStall();
      }
    } finally {
      this.#sending = false;
    }
  }

  /**
   * Sends have waited for room: is it a deadlock? The kernel, Active, has taken nothing in for {@link STALL_MS}
   * while its output queue is at least half full and nothing on the host reads outputs (no receive, no call):
   * it holds an output for room that only a receive makes, so input never drains and sends wait for ever. Said
   * once per stall, as a warning naming the kernel and counted in `sendStalls`; a send's timeout then says why.
   */
  #checkStall(): void {
    const now = performance.now();
    const received = Number(this.#control.messagesReceived);
    const mark = this.#stallMark;
    if (mark === undefined || mark.received !== received) {
      this.#stallMark = { received, since: now };
      this.#stalled = false;
      return;
    }
    if (this.#stalled || now - mark.since < STALL_MS) return;
    if (this.#receivers.length > 0 || this.#calls.size > 0 || this.status !== 'Active') return;
    const outputStorage = this.#init.output.ring.byteLength - RingOffset.DATA;
    if (this.#consumer.availableReadBytes() * 2 < outputStorage) return;
    this.#stalled = true;
    this.#stalls++;
    process.emitWarning(
      `kernel '${this.name}': sends are deadlocked — its input queue is full while its output queue is full and nothing reads it, so the kernel holds and sends wait for ever. Read outputs while sending (for await (const output of handle), or receiveBatch()), or give send a timeout`,
      { type: 'RingKernelWarning', code: 'RK_SEND_DEADLOCK' },
    );
  }

  /**
   * Registers a waiter (call or receive) with its timeout and abort signal. Timeouts share one timer per handle,
   * armed for the earliest deadline, instead of a timer per call (a setTimeout/clearTimeout pair per call costs
   * about as much as the call itself).
   */
  #waitFor(
    table: Map<number, PendingCall>,
    id: number,
    timeout: number,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<OutView> {
    return new Promise<OutView>((resolve, reject) => {
      // A call that gives up (its deadline, its signal) leaves its request behind: see #giveUpCall.
      const giveUp = (error: Error): void => {
        pending.reject(error);
        if (table === this.#calls) this.#giveUpCall(id, error);
      };
      const onAbort = (): void => giveUp(new AbortedError(`${what} on kernel '${this.name}'`, signal?.reason));
      const startedAt = performance.now();
      const pending: PendingCall = {
        startedAt,
        deadline: startedAt + timeout,
        expire: () => giveUp(new TimeoutError(`${what} on kernel '${this.name}'`, timeout)),
        resolve: (value) => {
          pending.cleanup();
          resolve(value as OutView);
        },
        reject: (error) => {
          pending.cleanup();
          reject(error);
        },
        cleanup: () => {
          // An ended kernel's timer must not hold the handle (and its rings) until the deadline.
          if (this.#deadlines.delete(pending) && this.#deadlines.size === 0 && this.#exitStatus !== undefined) {
            this.#disarmTimer();
          }
          if (signal !== undefined) signal.removeEventListener('abort', onAbort);
          table.delete(id);
          if (table !== this.#calls) {
            const at = this.#receivers.indexOf(pending);
            if (at >= 0) this.#receivers.splice(at, 1);
          }
        },
      };
      if (signal !== undefined) signal.addEventListener('abort', onAbort, { once: true });
      table.set(id, pending);
      if (timeout === Number.POSITIVE_INFINITY) return; // no deadline to watch
      this.#deadlines.add(pending);
      if (pending.deadline < this.#timerAt) this.#armTimer(pending.deadline);
    });
  }

  /**
   * A call gave up (timed out, aborted). Its request still waiting for room is withdrawn (never written, so never
   * answered); one already written may yet be answered: that answer is a dead letter (`late-response`), not an
   * output for `receive`.
   */
  #giveUpCall(messageId: number, error: Error): void {
    const waiting = this.#sends.findIndex((send) => send.envelope.messageId === messageId);
    if (waiting >= 0) (this.#sends[waiting] as PendingSend).reject(error);
    else this.#abandoned.set(messageId, error);
  }

  #disarmTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  #armTimer(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    // Unref'd: waiting callers are kept alive by the output pump's park, not by their deadline.
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - performance.now())).unref();
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const pending of [...this.#deadlines]) {
      if (pending.deadline <= now) pending.expire();
      else next = Math.min(next, pending.deadline);
    }
    if (next !== Number.POSITIVE_INFINITY) this.#armTimer(next);
  }

  /**
   * Reads outputs while anyone waits for one. First synchronously — drain, spin, drain — so a response that
   * comes back within the spin is delivered before `call` even returns, with no Promise or event-loop turn of the
   * pump's own; only then as an async loop that parks on the output ring.
   */
  #pump(): void {
    if (this.#pumping) return;
    const until = performance.now() + this.#spinMs;
    for (let spins = 0; this.#waiting(); ) {
      if (this.#consumer.drain(this.#onOutput) > 0 || this.#hasOutput()) continue;
      if ((++spins & 63) === 0 && performance.now() >= until) {
        this.#pumping = true;
        void this.#pumpAsync();
        return;
      }
    }
  }

  #waiting(): boolean {
    return (this.#calls.size > 0 || this.#receivers.length > 0) && this.#failure === undefined;
  }

  async #pumpAsync(): Promise<void> {
    try {
      while (this.#waiting()) {
        if (this.#consumer.drain(this.#onOutput) > 0) continue;
        if (this.#exitStatus === 'Terminated') {
          for (const receiver of [...this.#receivers]) {
            receiver.reject(new InvalidStateError(this.name, 'receive from', 'Terminated', 'Active'));
          }
          for (const call of [...this.#calls.values()]) {
            call.reject(new InvalidStateError(this.name, 'call', 'Terminated', 'Active'));
          }
          break;
        }
        // Spin first, synchronously: a response that comes back within the spin needs no event-loop turn.
        if (!this.#spinForOutput()) await this.#consumer.waitForDataAsync(1000);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #spinForOutput(): boolean {
    return spinFor(this.#hasOutput, this.#spinMs);
  }

  #dispatch(frame: FrameView): void {
    const tracer = this.#tracer;
    if (tracer === undefined || (frame.traceFlags & 1) === 0) {
      this.#deliver(frame);
      return;
    }
    const startNs = tracer.nowNs();
    this.#deliver(frame);
    tracer.receive(frame, startNs, this.instanceId);
  }

  #deliver(frame: FrameView): void {
    const flags = frame.flags;
    if (flags & FrameFlags.RESPONSE) {
      const call = this.#calls.get(frame.correlationId);
      if (call !== undefined) {
        // The kernel could not record its span of this traced call: the call's span says its trace stops there.
        if (frame.traceFlags & TRACE_FLAG_TRUNCATED) this.#truncatedCalls.add(frame.correlationId);
        if (flags & FrameFlags.ERROR) call.reject(new HandlerFailedError(this.name, parseRemoteError(frame)));
        else {
          this.#callLatency.record((performance.now() - call.startedAt) * 1e6);
          call.resolve(this.#own(frame));
        }
        return;
      }
      const abandoned = this.#abandoned.get(frame.correlationId);
      if (abandoned !== undefined) this.#abandoned.delete(frame.correlationId);
      // An error answer to a call that already gave up: the failure itself was dead-lettered by the kernel.
      if (flags & FrameFlags.ERROR || frame.typeId === ERROR_REPLY_TYPE_ID) return;
      if (abandoned !== undefined) {
        // Its caller has left: not an output for receive() (which takes outputs that are not responses). The
        // letter carries why the call gave up.
        this.#init.onDeadLetter({
          kernel: this.name,
          reason: 'late-response',
          error: { name: abandoned.name, message: abandoned.message, code: (abandoned as { code?: string }).code },
          messageId: frame.messageId,
          correlationId: frame.correlationId,
          typeId: frame.typeId,
          payload: frame.payload.slice(),
          at: new Date(),
        });
        return;
      }
    }
    const output = this.#own(frame);
    const receiver = this.#receivers[0];
    if (receiver !== undefined) receiver.resolve(output);
    else this.#received.push(output);
  }

  /**
   * An output the caller may keep: the payload copied out of the ring (one allocation and one copy, the header
   * stays behind) and viewed through the output codec. Checks the type like `FrameView.decode`.
   */
  #own(frame: FrameView): OutView {
    let codec = this.#outputCodec as MessageCodec<unknown, unknown>;
    if (frame.typeId !== codec.typeId) {
      // One of the other types the kernel emits (`emits`), or else the typed mismatch.
      const other = this.#init.definition.emits?.find((emitted) => emitted.typeId === frame.typeId);
      if (other === undefined) return frame.copy().decode(this.#outputCodec);
      codec = other;
    }
    const payload = frame.payload.slice();
    return codec.view(new DataView(payload.buffer), payload, 0, payload.length) as OutView;
  }

  #command(command: LifecycleCommand, operation: string, drain = true, wanted = true): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    // Between two instances: the command goes to the next one, once it is attached.
    const resumed = this.#resumed;
    if (this.#suspended && resumed !== undefined) {
      return resumed.promise.then(() => this.#command(command, operation, drain, wanted));
    }
    const status = this.status;
    if (!lifecycleAccepts(status, command)) {
      return Promise.reject(new InvalidStateError(this.name, operation, status, COMMAND_TARGET[command]));
    }
    const done = this.#channel
      .request(command === 'TERMINATE' ? { command, drain, keep: false } : { command })
      .then(() => {
        if (command !== 'TERMINATE' && wanted) this.#activeWanted = command === 'ACTIVATE';
      });
    // Activate and deactivate are lifecycle spans of their own; terminate's span covers the whole of terminate().
    const tracer = this.#tracer;
    if (tracer !== undefined && command !== 'TERMINATE') {
      const span = tracer.beginLifecycle();
      const transition = command === 'ACTIVATE' ? LifecycleTransition.ACTIVATE : LifecycleTransition.DEACTIVATE;
      if (span !== undefined) {
        done.then(
          () => tracer.endLifecycle(span, transition, this.instanceId, 0),
          (error: unknown) => tracer.endLifecycle(span, transition, this.instanceId, errorNumberFrom(error)),
        );
      }
    }
    return done;
  }

  #report(report: Extract<WorkerReport, { type: 'deadLetter' | 'exit' | 'inspect' }>): void {
    switch (report.type) {
      case 'inspect':
        this.#init.onInspect?.(report.event);
        return;
      case 'deadLetter': {
        const letter = report.letter;
        this.#lastErrorMessage = `${letter.error.name}: ${letter.error.message}`;
        this.#init.onDeadLetter({ kernel: this.name, ...letter, at: new Date() });
        // A call whose handler failed is answered by its dead letter, whether or not the error reply on the output
        // ring gets there (it may be held for room when the kernel fails; a late one is ignored).
        if (letter.reason === 'handler-error' && report.request === true) {
          this.#calls.get(letter.messageId)?.reject(new HandlerFailedError(this.name, letter.error));
        }
        return;
      }
      case 'exit':
        // The instance has left its worker: it touches the rings no more.
        this.#instanceLeft = true;
        if (report.deviceLost !== undefined) this.#init.onDeviceLost?.(this.#device, report.deviceLost);
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
          this.#fail(
            report.webgpu !== undefined
              ? reviveWebGpuError(report.webgpu)
              : report.deviceLost === undefined
                ? new KernelFailedError(this.name, reason)
                : new CudaDeviceLostError(this.#device, report.deviceLost, `kernel '${this.name}' failed: ${reason}`),
            'kernel-failed',
          );
          return;
        }
        // Failed from the host side meanwhile (forced, or its worker gone): already ended and counted; its rings
        // may go now that the instance has left.
        if (this.#exitStatus !== undefined) {
          this.#releaseRings();
          return;
        }
        this.#exitStatus = report.status;
        this.#settleExit();
        return;
    }
  }

  #settleExit(): void {
    this.#channel.unref();
    // No more responses can come; the deadline timer must not hold the ended handle (and its rings).
    this.#abandoned.clear();
    if (this.#deadlines.size === 0) this.#disarmTimer();
    // The instance has gone: the worker answered every command it took before its exit report (the port keeps
    // order), so a command still waiting was never taken and never will be: refused, typed, not left hanging.
    const ended = this.#exitStatus ?? 'Terminated';
    this.#channel.rejectAll(new InvalidStateError(this.name, 'change the state of', ended, 'Active'));
    this.#markExited();
    this.#init.onExit(this);
    // Wake the output pump so pending receivers learn the kernel is gone once its outputs are read.
    this.#consumer.interrupt();
    this.#releaseRings();
  }

  /**
   * The kernel has ended for good: once its instance has left (nothing in its worker touches the rings) and no
   * mirror copies them (`direct`), its rings go back for the next launch. The outputs not yet received are copied
   * out first (they are still the handle's to receive); from then on the handle's ends are over an empty ring.
   */
  #releaseRings(): void {
    const release = this.#init.releaseRings;
    if (release === undefined || !this.#instanceLeft || this.#ringsReleased) return;
    if (this.#transfer.strategy !== 'direct') return;
    this.#ringsReleased = true;
    this.#consumer.drain(this.#onOutput);
    const ended = endedRing();
    this.#producer = new FrameProducer(ended);
    this.#consumer = new FrameConsumer(ended, { spin: 0 });
    this.#inputMemory = ended;
    release(this.#init.input, this.#init.output);
  }

  /**
   * The kernel's instance failed. `salvage`: its instance is gone (its worker died under it, or it reported its
   * exit), so nothing consumes its input any more and what is queued is dead-lettered with that reason.
   * Supervised, the handle is suspended for the supervisor to decide; otherwise the kernel is Failed for good.
   */
  #fail(error: Error, salvage?: 'kernel-failed' | 'discarded-on-terminate'): void {
    // Failed already, or ended Terminated: a kernel ends once, and is counted once.
    if (this.#failure !== undefined || this.#exitStatus !== undefined) return;
    // The instance failed: a fail span either way (a supervised kernel's restart is a span of its own).
    const span = this.#tracer?.beginLifecycle();
    if (span !== undefined && !this.#suspended) {
      this.#tracer?.endLifecycle(span, LifecycleTransition.FAIL, this.instanceId, ErrorNumber.KernelFailed);
    }
    if (this.#supervisor !== undefined && !this.#suspended) {
      this.#suspend(error);
      return;
    }
    this.#failure = error;
    if (this.#exitStatus === undefined) {
      // The worker is gone or unresponsive: the host becomes the only writer of the status word.
      this.#control.setActive(false);
      this.#control.setStatus(KernelStatus.Failed);
      this.#control.recordError(ErrorCode.KernelFailed);
    }
    this.#exitStatus = 'Failed';
    this.#lastErrorMessage = error.message;
    for (const call of [...this.#calls.values()]) call.reject(error);
    for (const receiver of [...this.#receivers]) receiver.reject(error);
    this.#dropWaitingSends(error, 'kernel-failed');
    this.#channel.rejectAll(error);
    // Before the exit settles: its rings may go back for reuse then.
    if (salvage !== undefined) salvageInput(this.#orphaned, salvage);
    this.#settleExit();
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

  #suspend(error: Error): void {
    this.#enterSuspension();
    // The instance is gone: the host is the only writer of the status word until the next one attaches.
    this.#control.setActive(false);
    this.#control.setStatus(KernelStatus.Failed);
    this.#control.recordError(ErrorCode.KernelFailed);
    this.#lastErrorMessage = error.message;
    // Commands in flight will never be answered by that instance.
    this.#channel.rejectReplies(error);
    this.#channel.unref();
    this.#init.onInterrupted(this);
    (this.#supervisor as KernelFailureListener)(this, error);
  }

  /** The kernel's rings and records for its recovery (kernel-recovery.ts), when its instance has gone. */
  get #orphaned(): OrphanedKernel {
    const links = this.#links;
    return {
      name: this.name,
      control: this.#control,
      input: this.#init.input,
      linkInputs: links.flatMap((link) => (link.command === 'LINK_IN' ? [link.memory] : [])),
      onDeadLetter: (letter) => this.#init.onDeadLetter(letter),
      rejectCall: (messageId, error) => this.#calls.get(messageId)?.reject(error),
    };
  }

  async #exitWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    try {
      return await Promise.race([this.#exited.then(() => true), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** An empty ring the ends of an ended handle stand over once its own rings went back for reuse. */
let endedRingMemory: FrameRingMemory | undefined;
function endedRing(): FrameRingMemory {
  endedRingMemory ??= createFrameRing({ capacityBytes: FrameHeader.SIZE + 8, maxPayloadSize: 0 });
  return endedRingMemory;
}

/** The numeric code of an error, for a span record (HandlerFailed for errors without a ringkernel code). */
function errorNumberFrom(error: unknown): number {
  const code = (error as { code?: unknown } | undefined)?.code;
  const number = typeof code === 'string' ? errorNumberOf(code as ErrorCodeString) : 0;
  return number === 0 ? ErrorNumber.HandlerFailed : number;
}

/** The message as bytes, for a dead letter (an empty payload if it cannot even be encoded). */
function encodeCopy<In>(codec: MessageCodec<In, unknown>, message: In): Uint8Array {
  try {
    const bytes = new Uint8Array(codec.encodedSize(message));
    codec.encodeInto(new DataView(bytes.buffer), bytes, 0, message);
    return bytes;
  } catch {
    return new Uint8Array(0);
  }
}

function parseRemoteError(frame: FrameView): SerializedError {
  try {
    return JSON.parse(new TextDecoder().decode(frame.payload)) as SerializedError;
  } catch {
    return { name: 'Error', message: 'the kernel handler failed (unreadable error report)' };
  }
}
