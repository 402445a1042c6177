import { type Relaunch, relaunchOf } from '../bridge/relaunch.js';
import type { KernelTransfer } from '../bridge/transfer-bridge.js';
import type { KernelCheckpoint } from '../devices/checkpoint.js';
import type { MigratableKernel } from '../devices/kernel-migrator.js';
import { InvalidArgumentError } from '../errors/argument-errors.js';
import { HandlerFailedError, InvalidStateError, KernelFailedError } from '../errors/runtime-errors.js';
import { AbortedError, TimeoutError } from '../errors/value-errors.js';
import { ERROR_REPLY_TYPE_ID } from '../executor/protocol.js';
import type { DeviceBatchMetrics } from '../kernel/device-batch-metrics.js';
import { LatencyHistogram } from '../kernel/latency-histogram.js';
import { isPriority, Priority } from '../kernel/priority.js';
import { checkOptions, checkSignal, checkTimeout } from '../kernel/wait-options.js';
import type { KernelSupervision } from '../supervision/supervisor.js';
import type { DetachedSpan, HostSpanWriter } from '../telemetry/host-span-writer.js';
import { TRACE_FLAG_TRUNCATED } from '../telemetry/span-record.js';
import type { ControlBlock } from '../wire/control-block.js';
import { encodedPayloadCodec, viewOfEncoded } from '../wire/encoded-payload.js';
import type { Envelope } from '../wire/envelope.js';
import { spinFor } from '../wire/eventcount.js';
import { FrameConsumer } from '../wire/frame-consumer.js';
import { FrameFlags } from '../wire/frame-header.js';
import { FrameProducer } from '../wire/frame-producer.js';
import type { FrameRingMemory } from '../wire/frame-ring.js';
import type { FrameView } from '../wire/frame-view.js';
import { KernelStatus, type KernelStatusName, kernelStatusName } from '../wire/kernel-status.js';
import type { MessageCodec } from '../wire/message-schema.js';
import { CallWaiters, type PendingCall } from './call-waiters.js';
import type {
  CallOptions,
  KernelHandleInit,
  KernelMetrics,
  LinkCommand,
  ReceiveOptions,
  Refusal,
  SendOptions,
} from './kernel-handle-options.js';
import { type HandleAccess, HandlePort, outputCheck, remoteErrorOf } from './kernel-handle-port.js';
import { KernelInstance } from './kernel-instance.js';
import { WaitingSends } from './send-queue.js';
import { checkSendOptions } from './send-refusal.js';

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
 * A WebGPU kernel's answer takes a batch's upload, dispatch and readback (~0.1–0.2 ms on a software adapter), past
 * the spin: the first wait of a call then sleeps on the output ring's futex for up to this long, ms, which wakes
 * at once when the answer is published and costs no CPU the device thread and the driver need (a spin does).
 */
const HOST_BLOCK_WEBGPU_MS = 0.5;

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
  /**
   * Set the moment `terminate()` is called: from then on the kernel takes no new message, so nothing is written
   * into its input ring after the worker's last look at it (a frame written then would be neither handled nor
   * dead-lettered).
   */
  #closed = false;
  readonly #inputCodec: MessageCodec<InIn, unknown>;
  /** The input type's payloads as they come encoded (trySendEncoded, made at its first use): copied as they are. */
  #encodedInput: MessageCodec<Uint8Array, unknown> | undefined;
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
  /** How long the pump's first wait sleeps on the output ring before it parks on the event loop, ms (0: none). */
  readonly #blockMs: number;
  /** The calls and receives waiting, with their shared deadline timer. */
  readonly #waiters: CallWaiters<OutView>;
  /** The waiters' tables, read directly by the output pump. */
  readonly #calls: Map<number, PendingCall>;
  readonly #receivers: PendingCall[];
  readonly #received: OutView[] = [];
  /** Sends waiting for room in the input ring. */
  readonly #waitingSends: WaitingSends;
  /** Round trip of calls answered with a result, host side: request written (or queued) to its response read. */
  readonly #callLatency = new LatencyHistogram();
  readonly #exited: Promise<void>;
  #markExited!: () => void;
  #nextMessageId: number;
  #sent = 0;
  #pumping = false;
  #failure: Error | undefined;
  #exitStatus: 'Terminated' | 'Failed' | undefined;
  /** What the handle's parts need of it, and the cold paths of its end (its failure, its exit). */
  readonly #port: HandlePort;
  /** The current instance in its worker: lifecycle commands, reports, restarts, migrations, checkpoints. */
  readonly #instance: KernelInstance;
  /**
   * The lowest priority the kernel admits now: 0 (everything) normally, raised by load shedding, above 255
   * (nothing) while the runtime accepts no work. One compare on the send path.
   */
  #minPriority = 0;
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
    // A WebGPU kernel's answer comes well past a spin, and a spinning host holds a core the device thread and the
    // driver need to make it: it sleeps on the output ring's futex instead.
    const webgpu = init.deviceBatches !== undefined;
    this.#spinMs = webgpu ? 0 : init.transfer.strategy === 'dma' ? HOST_SPIN_DMA_MS : HOST_SPIN_MS;
    this.#blockMs = webgpu ? HOST_BLOCK_WEBGPU_MS : 0;
    this.#hasOutput = outputCheck(init.transfer, this.#consumer);
    this.#nextMessageId = init.firstMessageId ?? 1;
    this.#exited = new Promise((resolve) => {
      this.#markExited = resolve;
    });
    const port = new HandlePort(this as KernelHandle, init, this.#exited, KernelHandle.#access);
    this.#port = port;
    this.#waiters = new CallWaiters<OutView>(port);
    this.#calls = this.#waiters.calls;
    this.#receivers = this.#waiters.receivers;
    this.#waitingSends = new WaitingSends(port);
    this.#instance = new KernelInstance(port);
  }

  /** The handle's private state as its port reads and changes it (see {@link HandleAccess}). */
  static readonly #access: HandleAccess = {
    failure: (handle) => handle.#failure,
    exitStatus: (handle) => handle.#exitStatus,
    setExitStatus: (handle, status) => {
      handle.#exitStatus = status;
    },
    setFailure: (handle, error) => {
      handle.#failure = error;
    },
    close: (handle) => {
      handle.#closed = true;
    },
    transfer: (handle) => handle.#transfer,
    useTransfer: (handle, transfer) => {
      handle.#transfer = transfer;
      handle.#afterWrite = transfer.afterInputWrite;
      handle.#hasOutput = outputCheck(transfer, handle.#consumer);
    },
    producer: (handle) => handle.#producer,
    consumer: (handle) => handle.#consumer,
    waiters: (handle) => handle.#waiters,
    waitingSends: (handle) => handle.#waitingSends,
    instance: (handle) => handle.#instance,
    afterWrite: (handle) => handle.#afterWrite?.(),
    takeMessageId: (handle) => handle.#nextMessageId++,
    countSent: (handle) => {
      handle.#sent++;
    },
    holdRequestSpan: (handle, span) => {
      handle.#requestSpan = span;
    },
    pumpIfWaiting: (handle) => {
      if (handle.#waiting()) handle.#pump();
    },
    drainOutputs: (handle) => {
      handle.#consumer.drain(handle.#onOutput);
    },
    standOver: (handle, ring) => {
      handle.#producer = new FrameProducer(ring);
      handle.#consumer = new FrameConsumer(ring, { spin: 0 });
      // The pump's spin test reads the consumer it was made with: never the ring that went back for reuse.
      handle.#hasOutput = outputCheck(handle.#transfer, handle.#consumer);
      handle.#inputMemory = ring;
    },
    markExited: (handle) => handle.#markExited(),
    takeRequestSpan: (handle) => {
      const span = handle.#requestSpan;
      handle.#requestSpan = undefined;
      return span;
    },
    closed: (handle) => handle.#closed,
    sent: (handle) => handle.#sent,
    outputsHeld: (handle) => handle.#received.length,
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
    return this.#port.heldExit();
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
    return this.#port.activate();
  }

  /** @internal The launch's attach activated the kernel (`autoActivate`): as if `activate()` had been answered. */
  activatedAtLaunch(): void {
    this.#port.activatedAtLaunch();
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
    return this.#port.terminate(options.drain);
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
      if (this.#control.status === KernelStatus.Launched) this.#port.checkCallable();
      if (this.#waitingSends.length === 0 && this.#write(request, FrameFlags.REQUEST, priority)) {
        if (this.#requestSpan !== undefined) this.#port.traceCall(response, messageId, request);
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
      if (this.#requestSpan !== undefined) this.#port.traceCall(response, messageId, request);
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
      throw new InvalidArgumentError('max', `receiveBatch: max must be a positive integer, got ${String(max)}`);
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
    /** Of `received`, those a kernel on the same worker thread handed over on a fused link (see `connect`). */
    readonly fused: number;
  } {
    return this.#port.counters();
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
    return this.#port.metrics();
  }

  /** Terminates the kernel if it is still running (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    return this.#port.dispose();
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

  /** Whether the kernel's instance has stopped and its supervisor has yet to restart it (or give it up). */
  get awaitingRestart(): boolean {
    return this.#instance.suspended;
  }

  /**
   * The kernel's side of supervision: what its supervisor (and a stuck worker's recovery) does to it — watch it,
   * stop it for a restart of its group, restart it, give it up. @internal
   */
  get supervision(): KernelSupervision {
    return this.#instance;
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

  /**
   * `trySend` of a payload already encoded as the kernel's input type (a frame from another node, its type id and
   * size checked by the caller): the bytes are copied as they are, with no decode and no re-encode. @internal
   */
  trySendEncoded(payload: Uint8Array, priority: number): boolean {
    if (!this.#sendable(priority))
      this.#checkSendable('send to', viewOfEncoded(this.#inputCodec, payload) as InIn, priority);
    if (this.#waitingSends.length > 0) return false; // earlier sends are waiting: keep order
    this.#encodedInput ??= encodedPayloadCodec(this.#inputCodec);
    return this.#write(payload as InIn, 0, priority, this.#encodedInput as MessageCodec<InIn, unknown>);
  }

  /** Runs `body` (a burst of sends) with the kernel woken once at its end, not once per message. @internal */
  burst<T>(body: () => T): T {
    return this.#port.burst(body);
  }

  /** Marks the kernel Failed from the host side (its worker is gone). @internal */
  fail(reason: string): void {
    this.#port.fail(new KernelFailedError(this.name, reason));
  }

  // ---------------------------------------------------------------------------------------------------------------

  /** One atomic load and a few compares: Launched, Active and Deactivated take messages of an admitted priority. */
  #sendable(priority: number): boolean {
    const code = this.#control.status;
    return (
      priority >= this.#minPriority &&
      isPriority(priority) &&
      code >= KernelStatus.Launched &&
      code <= KernelStatus.Deactivated &&
      this.#failure === undefined &&
      !this.#closed
    );
  }

  #checkSendable(operation: string, message: InIn, priority: number): void {
    if (this.#sendable(priority)) return;
    const admitted = priority >= this.#minPriority && isPriority(priority);
    const refused = this.#port.refusal(operation, message, priority, admitted);
    if (refused !== undefined) throw refused;
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
      this.#port.refuseOptions(error as Error, message);
      throw error;
    }
  }

  /**
   * Sets the lowest priority the kernel admits, and how a refused message is reported (the runtime's drain and
   * load shedding). @internal
   */
  admit(minPriority: number, refusal: Refusal | undefined): void {
    this.#minPriority = minPriority;
    this.#port.useRefusal(refusal);
  }

  /**
   * Work not yet done: frames queued in the input ring, sends waiting for room, calls awaiting answers, and one
   * for each kernel-to-kernel input ring that is not empty. @internal
   */
  get pendingWork(): number {
    return this.#port.pendingWork();
  }

  /** Writes one frame into the input ring, and on `dma` sees it on its way to the kernel. */
  #write(message: InIn, flags: number, priority: number, codec = this.#inputCodec): boolean {
    const envelope = this.#envelope;
    envelope.messageId = this.#nextMessageId;
    envelope.flags = flags;
    envelope.priority = priority;
    const tracer = this.#tracer;
    if (tracer !== undefined) {
      if (!this.#writeTraced(tracer, message, flags, codec)) return false;
    } else {
      if (!this.#producer.tryWrite(codec, message, envelope)) return false;
      this.#nextMessageId++;
      this.#sent++;
    }
    // A request on CPU `dma`: the pump is about to spin for its answer, carrying the rings across; it starts here.
    // (A kick instead would wake the mirror thread to spin beside the kernel's worker, on a core it needs.)
    const serve = (flags & FrameFlags.REQUEST) !== 0 ? this.#transfer.serve : undefined;
    if (serve !== undefined) serve();
    else this.#afterWrite?.();
    return true;
  }

  /** `#write` with tracing on: the sampling decision, then the send span (or, for a request, the call's). */
  #writeTraced(tracer: HostSpanWriter, message: InIn, flags: number, codec: MessageCodec<InIn, unknown>): boolean {
    const envelope = this.#envelope;
    const startNs = tracer.beginMessage(envelope);
    if (!this.#producer.tryWrite(codec, message, envelope)) {
      tracer.retract();
      return false;
    }
    const messageId = this.#nextMessageId++;
    this.#sent++;
    if (startNs >= 0) {
      if (flags & FrameFlags.REQUEST) this.#requestSpan = tracer.detach(startNs);
      else {
        tracer.endSend(startNs, messageId, this.instanceId, codec.typeId, codec.encodedSize(message));
      }
    }
    return true;
  }

  /**
   * Reads outputs while anyone waits for one. First synchronously — drain, spin, drain — so a response that
   * comes back within the spin is delivered before `call` even returns, with no Promise or event-loop turn of the
   * pump's own; only then as an async loop that parks on the output ring.
   */
  #pump(): void {
    if (this.#pumping) return;
    const until = performance.now() + this.#spinMs;
    let blocked = this.#blockMs === 0;
    for (let spins = 0; this.#waiting(); ) {
      if (this.#consumer.drain(this.#onOutput) > 0 || this.#hasOutput()) continue;
      if ((++spins & 63) === 0 && performance.now() >= until) {
        if (!blocked) {
          blocked = true;
          if (this.#consumer.waitForData(this.#blockMs)) continue;
        }
        this.#pumping = true;
        void this.#pumpAsync();
        return;
      }
    }
  }

  #waiting(): boolean {
    return (
      (this.#calls.size > 0 || this.#receivers.length > 0 || this.#port.lateResponsesDue) && this.#failure === undefined
    );
  }

  async #pumpAsync(): Promise<void> {
    try {
      while (this.#waiting()) {
        if (this.#consumer.drain(this.#onOutput) > 0) continue;
        if (this.#exitStatus === 'Terminated') {
          this.#port.refuseWaiting();
          break;
        }
        // Spin first, synchronously: a response that comes back within the spin needs no event-loop turn.
        if (spinFor(this.#hasOutput, this.#spinMs)) continue;
        // This thread stops carrying the rings across (`dma`): the mirror thread must not sleep through the park.
        this.#transfer.wakeMirror?.();
        await this.#consumer.waitForDataAsync(1000);
      }
    } finally {
      this.#pumping = false;
    }
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
        if (frame.traceFlags & TRACE_FLAG_TRUNCATED) this.#port.truncated(frame.correlationId);
        if (flags & FrameFlags.ERROR) call.reject(new HandlerFailedError(this.name, remoteErrorOf(frame)));
        else {
          this.#callLatency.record((performance.now() - call.startedAt) * 1e6);
          call.resolve(this.#own(frame));
        }
        return;
      }
      // No call waits for it: a late answer to one that gave up, an error answer, or else an output after all.
      if (this.#port.lateResponse(frame, (flags & FrameFlags.ERROR) !== 0 || frame.typeId === ERROR_REPLY_TYPE_ID)) {
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
}
