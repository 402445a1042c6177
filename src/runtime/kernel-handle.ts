import { type Relaunch, relaunchOf } from '../bridge/relaunch.js';
import type { KernelTransfer } from '../bridge/transfer-bridge.js';
import type { KernelCheckpoint } from '../devices/checkpoint.js';
import { ErrorNumber } from '../errors/codes.js';
import { HandlerFailedError, InvalidStateError, KernelFailedError } from '../errors/runtime-errors.js';
import { AbortedError, TimeoutError } from '../errors/value-errors.js';
import { ERROR_REPLY_TYPE_ID, type SerializedError } from '../executor/protocol.js';
import type { DeviceBatchMetrics } from '../kernel/device-batch-metrics.js';
import { lifecycleAccepts } from '../kernel/kernel-lifecycle.js';
import { LatencyHistogram } from '../kernel/latency-histogram.js';
import { isPriority, Priority } from '../kernel/priority.js';
import { checkOptions, checkSignal, checkTimeout } from '../kernel/wait-options.js';
import type { DetachedSpan, HostSpanWriter } from '../telemetry/host-span-writer.js';
import { LifecycleTransition, SpanRecordKind, TRACE_FLAG_TRUNCATED } from '../telemetry/span-record.js';
import { type ControlBlock, ErrorCode } from '../wire/control-block.js';
import type { Envelope } from '../wire/envelope.js';
import { spinFor } from '../wire/eventcount.js';
import { FrameConsumer } from '../wire/frame-consumer.js';
import { FrameFlags, FrameHeader } from '../wire/frame-header.js';
import { FrameProducer } from '../wire/frame-producer.js';
import { createFrameRing, type FrameRingMemory } from '../wire/frame-ring.js';
import type { FrameView } from '../wire/frame-view.js';
import { KernelStatus, type KernelStatusName, kernelStatusName } from '../wire/kernel-status.js';
import type { MessageCodec } from '../wire/message-schema.js';
import { RingOffset } from '../wire/ring-signal.js';
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

export type { DormantInstance } from './kernel-migration.js';

import type { MigratableKernel } from '../devices/kernel-migrator.js';
import { CallWaiters, type PendingCall, type WaitersOwner } from './call-waiters.js';
import type { DeadLetter } from './dead-letters.js';
import { errorNumberFrom, type InstanceOwner, KernelInstance } from './kernel-instance.js';
import { salvageInput } from './kernel-recovery.js';
import { type SendQueueOwner, type WaitingSend, WaitingSends } from './send-queue.js';
import { checkSendOptions, refusalOf, refusedLetter } from './send-refusal.js';

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

const RESOLVED = Promise.resolve();
/** The options of a send or call that gave none (no allocation per send). */
const NO_OPTIONS: SendOptions & CallOptions = Object.freeze({});
/** How long one wait of `for await (… of handle)` lasts before it looks again (it waits on, however long). */
const ITERATION_WAIT_MS = 60_000;
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
  /** Sees an input frame on its way after it is published: on `dma`, carries it or kicks the mirror. */
  #afterWrite: (() => void) | undefined;
  /** How the rings reach the instance; a `dma` CUDA kernel's changes when it migrates. */
  #transfer: KernelTransfer;
  /** How long the pump spins for output before it parks, ms. */
  readonly #spinMs: number;
  /** The calls and receives waiting, with their shared deadline timer. */
  readonly #waiters: CallWaiters<OutView>;
  /** The waiters' tables, read directly by the output pump. */
  readonly #calls: Map<number, PendingCall>;
  readonly #receivers: PendingCall[];
  readonly #received: OutView[] = [];
  /** Sends waiting for room in the input ring. */
  readonly #waitingSends: WaitingSends;
  /** Traced calls whose answer says the kernel's span was not recorded (cleared when the call's span ends). */
  readonly #truncatedCalls = new Set<number>();
  /** Round trip of calls answered with a result, host side: request written (or queued) to its response read. */
  readonly #callLatency = new LatencyHistogram();
  readonly #launchedAt = performance.now();
  readonly #exited: Promise<void>;
  /** Whether anyone asked this kernel to activate (a call to a kernel nobody will activate is refused at once). */
  #activationAsked = false;
  /** The terminate under way (or done), so that terminating twice waits for the one. */
  #terminating: Promise<void> | undefined;
  #markExited!: () => void;
  /**
   * A timer that holds the event loop while someone waits on {@link KernelHandle.exited} and the kernel has not
   * exited: the kernel's ports do not hold it (an idle runtime must let the process end), so without it a bare
   * `await handle.exited` could outlive everything else in the process and never settle.
   */
  #exitHold: NodeJS.Timeout | undefined;
  #hasExited = false;
  #nextMessageId: number;
  #sent = 0;
  #pumping = false;
  #failure: Error | undefined;
  #lastErrorMessage: string | undefined;
  #exitStatus: 'Terminated' | 'Failed' | undefined;
  /** The current instance in its worker: lifecycle commands, reports, restarts, migrations, checkpoints. */
  readonly #instance: KernelInstance;
  /**
   * The lowest priority the kernel admits now: 0 (everything) normally, raised by load shedding, above 255
   * (nothing) while the runtime accepts no work. One compare on the send path.
   */
  #minPriority = 0;
  #refusal: Refusal | undefined;
  readonly #onOutput = (frame: FrameView): void => this.#dispatch(frame);
  /** The pump's spin test: whether output is there (on `dma`, after carrying the rings across itself). */
  #hasOutput: () => boolean;

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
    this.#hasOutput = this.#outputCheck(init.transfer);
    this.#nextMessageId = init.firstMessageId ?? 1;
    this.#exited = new Promise((resolve) => {
      this.#markExited = resolve;
    });
    const port = new KernelHandle.#Port(this as KernelHandle);
    this.#waiters = new CallWaiters<OutView>(port);
    this.#calls = this.#waiters.calls;
    this.#receivers = this.#waiters.receivers;
    this.#waitingSends = new WaitingSends(port);
    this.#instance = new KernelInstance(port);
  }

  /**
   * What the handle's parts — its instance control, call waiters and waiting sends — need of it, each through the
   * interface it declares: one small object per handle whose methods are shared (closures would cost each of
   * thousands of kernels their own). Nested in the class, it reads the handle's private state.
   */
  static readonly #Port = class HandlePort implements InstanceOwner, WaitersOwner, SendQueueOwner {
    readonly handle: KernelHandle;
    readonly name: string;
    readonly instanceId: number;
    readonly control: ControlBlock;
    readonly init: KernelHandleInit;
    readonly tracer: HostSpanWriter | undefined;
    readonly exited: Promise<void>;
    readonly onFull: 'wait' | 'reject';

    constructor(handle: KernelHandle) {
      this.handle = handle;
      this.name = handle.name;
      this.instanceId = handle.instanceId;
      this.control = handle.#control;
      this.init = handle.#init;
      this.tracer = handle.#tracer;
      this.exited = handle.#exited;
      this.onFull = handle.#init.onFull;
    }

    failure(): Error | undefined {
      return this.handle.#failure;
    }

    failed(): boolean {
      return this.handle.#failure !== undefined;
    }

    exitStatus(): 'Terminated' | 'Failed' | undefined {
      return this.handle.#exitStatus;
    }

    hasEnded(): boolean {
      return this.handle.#exitStatus !== undefined;
    }

    status(): KernelStatusName {
      return this.handle.status;
    }

    transfer(): KernelTransfer {
      return this.handle.#transfer;
    }

    useTransfer(transfer: KernelTransfer): void {
      const handle = this.handle;
      handle.#transfer = transfer;
      handle.#afterWrite = transfer.afterInputWrite;
      handle.#hasOutput = handle.#outputCheck(transfer);
    }

    fail(error: Error, salvage?: 'kernel-failed' | 'discarded-on-terminate'): void {
      this.handle.#fail(error, salvage);
    }

    ended(status: 'Terminated' | 'Failed'): void {
      this.handle.#exitStatus = status;
      this.handle.#settleExit();
    }

    instanceGone(): void {
      this.handle.#releaseRings();
    }

    reopened(): void {
      this.handle.#exitStatus = undefined;
    }

    resumeTraffic(): void {
      const handle = this.handle;
      if (handle.#waitingSends.length > 0) void handle.#waitingSends.flush();
      if (handle.#waiting()) handle.#pump();
    }

    stopTaking(): void {
      const handle = this.handle;
      // Sends still waiting for room would be written after the worker's last look at its queue (or into a ring
      // nobody consumes any more): they are refused, each a dead letter.
      handle.#closed = true;
      // The error only when a send waits: one made (with its stack) at every terminate costs churn dearly.
      if (handle.#failure !== undefined || handle.#waitingSends.length === 0) return;
      const error = new InvalidStateError(
        handle.name,
        'send to',
        'Terminating',
        'Active',
        'and takes no more messages: this send was still waiting for room in its queue',
      );
      handle.#waitingSends.drop(error, 'discarded-on-terminate');
    }

    lastError(message: string): void {
      this.handle.#lastErrorMessage = message;
    }

    rejectCall(messageId: number, error: Error): void {
      this.handle.#calls.get(messageId)?.reject(error);
    }

    callGaveUp(messageId: number, error: Error): void {
      this.handle.#callGaveUp(messageId, error);
    }

    takeMessageId(): number {
      return this.handle.#nextMessageId++;
    }

    holdRequestSpan(span: DetachedSpan): void {
      this.handle.#requestSpan = span;
    }

    tryWrite(send: WaitingSend): boolean {
      const handle = this.handle;
      if (!handle.#producer.tryWrite(send.codec, send.bytes, send.envelope)) return false;
      handle.#afterWrite?.();
      return true;
    }

    waitForSpace(frameBytes: number, ms: number): Promise<boolean> {
      // On `dma` the room comes back through the mirror thread: it must not sleep through this wait (a host that
      // carries its own frames across never kicks it).
      this.handle.#transfer.wakeMirror?.();
      return this.handle.#producer.waitForSpaceAsync(frameBytes, ms);
    }

    sent(): void {
      this.handle.#sent++;
    }

    taken(): number {
      return Number(this.handle.#control.messagesReceived);
    }

    outputsUnread(): boolean {
      const handle = this.handle;
      return (
        handle.#receivers.length === 0 &&
        handle.#calls.size === 0 &&
        handle.status === 'Active' &&
        handle.#consumer.availableReadBytes() * 2 >= handle.#init.output.ring.byteLength - RingOffset.DATA
      );
    }

    onDeadLetter(letter: DeadLetter): void {
      this.handle.#init.onDeadLetter(letter);
    }
  };

  /** The lifecycle state, read from the ControlBlock (no message). */
  get status(): KernelStatusName {
    return kernelStatusName(this.#control.status) ?? 'Failed';
  }

  /** The kernel's last heartbeat, µs since the epoch (it beats as it finishes batches; idle kernels do not). */
  get heartbeatUs(): number {
    return this.#control.heartbeatUs;
  }

  /**
   * Resolves when the kernel has left its worker (Terminated or Failed). Reading it holds the process open until
   * then, as awaiting a child process's exit does: `await handle.exited` settles even when the kernel ends later,
   * on another thread (a handler failure, a device fault), and nothing else keeps node running meanwhile.
   */
  get exited(): Promise<void> {
    // The longest interval node takes (about 24.8 days); it never fires before the exit clears it.
    if (!this.#hasExited && this.#exitHold === undefined) this.#exitHold = setInterval(() => {}, 0x7fff_ffff);
    return this.#exited;
  }

  /** @internal {@link KernelHandle.exited} for the runtime's own watchers, which must not hold the process open. */
  get exitedUnheld(): Promise<void> {
    return this.#exited;
  }

  /**
   * Activates the kernel: it starts (or resumes) taking input. A kernel that is already Active stays so and this
   * resolves (launch activates by default, so code written for `autoActivate: false` keeps working).
   */
  activate(): Promise<void> {
    this.#activationAsked = true;
    return this.#instance.command('ACTIVATE', 'activate');
  }

  /** @internal The launch's attach activated the kernel (`autoActivate`): as if `activate()` had been answered. */
  activatedAtLaunch(): void {
    this.#activationAsked = true;
    this.#instance.activatedAtAttach();
  }

  /** Deactivates the kernel: it stays resident and stops taking input; what is sent meanwhile waits, in order. */
  deactivate(): Promise<void> {
    return this.#instance.command('DEACTIVATE', 'deactivate');
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
    const terminating = this.#instance.terminate(options.drain ?? this.#init.drainOnTerminate);
    this.#terminating = terminating;
    terminating.catch(() => {
      if (this.#terminating === terminating) this.#terminating = undefined;
    });
    return terminating;
  }

  /**
   * Sends a message without waiting: true when it is in the kernel's queue, false when the queue is full
   * (nothing sent). No Promise, no allocation: the hot path.
   * @throws {InvalidStateError} when the kernel cannot take messages (Terminated, Failed…).
   */
  trySend(message: InIn, priority: number = Priority.Normal): boolean {
    this.#checkSendable('send to', message, priority); // also refuses a priority outside 0…255
    if (this.#waitingSends.length > 0) return false; // earlier sends are waiting: keep order
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
      if (this.#waitingSends.length === 0 && this.#write(message, 0, priority)) return RESOLVED;
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#waitingSends.enqueue(this.#inputCodec, message, 0, checked);
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
    const response = this.#waiters.call(messageId, timeout, signal);
    try {
      const priority = checked.priority ?? Priority.Normal;
      this.#checkSendable('call', request, priority);
      // Launched and never asked to activate: the kernel takes no input, and the call would only time out.
      const instance = this.#instance;
      if (this.status === 'Launched' && !this.#activationAsked && !instance.supervised && !instance.suspended) {
        throw new InvalidStateError(
          this.name,
          'call',
          'Launched',
          'Active',
          'launched with { autoActivate: false } and not yet activated, so it takes no input: call activate() first',
        );
      }
      if (this.#waitingSends.length === 0 && this.#write(request, FrameFlags.REQUEST, priority)) {
        this.#traceCall(response, messageId, request);
        this.#pump();
        return response;
      }
      // Waits for room with no deadline or signal of its own: the call's own withdraw it (see #callGaveUp).
      this.#waitingSends
        .enqueue(
          this.#inputCodec,
          request,
          FrameFlags.REQUEST,
          priority === Priority.Normal ? NO_OPTIONS : { priority },
        )
        .then(
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
    const promise = this.#waiters.receive(timeout, signal);
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
      sendsWaiting: this.#waitingSends.length,
      sendStalls: this.#waitingSends.stalls,
      lastError: lastCode === 0 ? null : { code: lastCode, message: this.#lastErrorMessage },
      errorCount: control.errorCount,
      uptimeMs: Math.round(performance.now() - this.#launchedAt),
      latency: this.#init.histogram.summary(),
      transferStrategy: this.#transfer.strategy,
      transfer: this.#transfer.stats(),
      workerThreadId: this.#instance.threadId,
      restarts: control.generation,
      device: this.#instance.device,
      migrations: this.#instance.migrations,
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
  link(command: LinkCommand): Promise<void> {
    return this.#instance.link(command);
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
    return this.#instance.supervised;
  }

  /** Whether the kernel's instance has stopped and its supervisor has yet to restart it (or give it up). */
  get awaitingRestart(): boolean {
    return this.#instance.suspended;
  }

  /**
   * Puts the kernel under a supervisor (or takes it out, with `undefined`): from now on a failure of its instance
   * suspends the handle — queued input kept, calls and receives still waiting — and calls `listener`, which must
   * answer with {@link KernelHandle.restart} or {@link KernelHandle.abandon}. @internal
   */
  superviseWith(listener: KernelFailureListener | undefined): void {
    this.#instance.superviseWith(listener);
  }

  /**
   * Stops the kernel's instance for a restart of its supervisor's group: it finishes the message in hand and
   * writes the outputs it made, then leaves its worker; its queued input stays in the rings for the next
   * instance. Resolves once it has left (at once when it already has). @internal
   */
  stopForRestart(): Promise<void> {
    return this.#instance.stopForRestart();
  }

  /**
   * Attaches a fresh instance of the suspended kernel: fresh state (the definition's `init`), the same rings
   * and ControlBlock, resuming where the last instance's handlers got to, wired again to its links, and
   * activated again if it was active. What was queued meanwhile is handled by the new instance; calls still
   * waiting get their responses from it. @internal
   */
  restart(): Promise<void> {
    return this.#instance.restart();
  }

  /**
   * Gives the suspended kernel up: it becomes Failed for good, its waiting calls, receives and sends reject, and
   * what is still queued for it is dead-lettered (reason `kernel-failed`), or — `quiet` — dropped as the user's
   * own terminate without drain would. @internal
   */
  abandon(error: Error, quiet = false): void {
    this.#instance.abandon(error, quiet);
  }

  /** The (virtual) device hosting the kernel now. */
  get device(): number {
    return this.#instance.device;
  }

  /** Times the kernel was migrated between devices. */
  get migrations(): number {
    return this.#instance.migrations;
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
  checkpoint(): Promise<KernelCheckpoint> {
    return this.#instance.checkpoint(this.kernelId);
  }

  /**
   * The kernel's side of the migration protocol, for the runtime's migrator: a dormant instance prepared on the
   * target, the pause, the state's transfer and the swap (see {@link KernelInstance}). @internal
   */
  get migration(): MigratableKernel {
    return this.#instance;
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
    const refused = refusalOf(
      {
        name: this.name,
        status: this.status,
        failure: this.#failure,
        exitStatus: this.#exitStatus,
        closed: this.#closed,
        admitted,
        refusal: this.#refusal,
        awaitsRestart: this.#instance.suspended || this.#instance.supervised,
      },
      operation,
      priority,
    );
    if (refused === undefined) return;
    this.#init.onDeadLetter(refusedLetter(this.name, refused, this.#inputCodec, message));
    throw refused.error;
  }

  /**
   * Checks the options of a send (`send`: also `onFull`) or call up front, each wrong one refused with a typed
   * error naming it; the message it would have carried is a dead letter (`invalid-argument`).
   */
  #checkOptions<T extends SendOptions & CallOptions>(options: T | undefined, message: InIn, send: boolean): T {
    if (options === undefined) return NO_OPTIONS as T;
    try {
      return checkSendOptions(options, send);
    } catch (error) {
      const refused = { error: error as Error, reason: 'invalid-argument' } as const;
      this.#init.onDeadLetter(refusedLetter(this.name, refused, this.#inputCodec, message));
      throw error;
    }
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
    let pending = this.#producer.pendingFrames() + this.#waitingSends.length + this.#calls.size;
    for (const link of this.#instance.links) {
      if (link.command !== 'LINK_IN') continue;
      const indices = new Uint32Array(link.memory.ring, 0, 2);
      // Acquire loads of the link's write and read indices (its producer and consumer are other threads).
      if (Atomics.load(indices, 0) !== Atomics.load(indices, 1)) pending++;
    }
    return pending;
  }

  /** Writes one frame into the input ring, and on `dma` sees it on its way to the kernel. */
  #write(message: InIn, flags: number, priority: number): boolean {
    const envelope = this.#envelope;
    envelope.messageId = this.#nextMessageId;
    envelope.flags = flags;
    envelope.priority = priority;
    const tracer = this.#tracer;
    if (tracer !== undefined) {
      if (!this.#writeTraced(tracer, message, flags)) return false;
    } else {
      if (!this.#producer.tryWrite(this.#inputCodec, message, envelope)) return false;
      this.#nextMessageId++;
      this.#sent++;
    }
    this.#afterWrite?.();
    return true;
  }

  /** `#write` with tracing on: the sampling decision, then the send span (or, for a request, the call's). */
  #writeTraced(tracer: HostSpanWriter, message: InIn, flags: number): boolean {
    const envelope = this.#envelope;
    const startNs = tracer.beginMessage(envelope);
    if (!this.#producer.tryWrite(this.#inputCodec, message, envelope)) {
      tracer.retract();
      return false;
    }
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

  /**
   * A call gave up (timed out, aborted). Its request still waiting for room is withdrawn (never written, so never
   * answered); one already written may yet be answered: that answer is a dead letter (`late-response`), not an
   * output for `receive`.
   */
  #callGaveUp(messageId: number, error: Error): void {
    if (!this.#waitingSends.withdraw(messageId, error)) this.#abandoned.set(messageId, error);
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
        if (this.#spinForOutput()) continue;
        // This thread stops carrying the rings across (`dma`): the mirror thread must not sleep through the park.
        this.#transfer.wakeMirror?.();
        await this.#consumer.waitForDataAsync(1000);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #spinForOutput(): boolean {
    return spinFor(this.#hasOutput, this.#spinMs);
  }

  /**
   * The spin test for a transfer. On CPU `dma` each look first carries the rings across on this thread (request
   * in, response out, a parked kernel woken: no wait for the mirror thread nor for an event-loop turn), then
   * nudges the kernel should the mirror thread have published to it while it slept.
   */
  #outputCheck(transfer: KernelTransfer): () => boolean {
    const { serve, nudgeKernel } = transfer;
    const consumer = this.#consumer;
    if (serve === undefined) {
      if (nudgeKernel === undefined) return () => consumer.hasData();
      return () => {
        nudgeKernel();
        return consumer.hasData();
      };
    }
    return () => {
      serve();
      nudgeKernel?.();
      return consumer.hasData();
    };
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

  #settleExit(): void {
    // No more responses can come; the deadline timer must not hold the ended handle (and its rings).
    this.#abandoned.clear();
    this.#waiters.kernelEnded();
    // The instance has gone: a command still waiting was never taken and never will be: refused, typed.
    const ended = this.#exitStatus ?? 'Terminated';
    this.#instance.ended(() => new InvalidStateError(this.name, 'change the state of', ended, 'Active'));
    this.#hasExited = true;
    clearInterval(this.#exitHold);
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
    if (release === undefined || !this.#instance.left || this.#ringsReleased) return;
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
    const instance = this.#instance;
    const span = this.#tracer?.beginLifecycle();
    if (span !== undefined && !instance.suspended) {
      this.#tracer?.endLifecycle(span, LifecycleTransition.FAIL, this.instanceId, ErrorNumber.KernelFailed);
    }
    if (instance.supervised && !instance.suspended) {
      instance.suspend(error);
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
    this.#waitingSends.drop(error, 'kernel-failed');
    instance.failed(error);
    // Before the exit settles: its rings may go back for reuse then.
    if (salvage !== undefined) salvageInput(instance.orphaned, salvage);
    this.#settleExit();
  }
}

/** An empty ring the ends of an ended handle stand over once its own rings went back for reuse. */
let endedRingMemory: FrameRingMemory | undefined;
function endedRing(): FrameRingMemory {
  endedRingMemory ??= createFrameRing({ capacityBytes: FrameHeader.SIZE + 8, maxPayloadSize: 0 });
  return endedRingMemory;
}

function parseRemoteError(frame: FrameView): SerializedError {
  try {
    return JSON.parse(new TextDecoder().decode(frame.payload)) as SerializedError;
  } catch {
    return { name: 'Error', message: 'the kernel handler failed (unreadable error report)' };
  }
}
