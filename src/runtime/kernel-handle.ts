import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { type Relaunch, relaunchOf } from '../bridge/relaunch.js';
import type {
  CudaReplicaPointers,
  KernelTransfer,
  KernelTransferStats,
  PreparedTransferMove,
} from '../bridge/transfer-bridge.js';
import type { TransferStrategy } from '../bridge/transfer-strategy.js';
import { copyQueuedFrames, type KernelCheckpoint } from '../devices/checkpoint.js';
import { type ErrorCodeString, ErrorNumber, errorNumberOf } from '../errors/codes.js';
import { CudaDeviceLostError } from '../errors/cuda-errors.js';
import { StateSnapshotError } from '../errors/device-errors.js';
import { HandlerFailedError, InvalidStateError, KernelFailedError, QueueFullError } from '../errors/runtime-errors.js';
import { TimeoutError } from '../errors/value-errors.js';
import {
  type DeadLetterReason,
  ERROR_REPLY_TYPE_ID,
  type SerializedError,
  type WorkerReport,
} from '../executor/protocol.js';
import type { AnyKernelDefinition } from '../kernel/kernel-definition.js';
import { COMMAND_TARGET, type LifecycleCommand, lifecycleAccepts } from '../kernel/kernel-lifecycle.js';
import { LatencyHistogram, type LatencySummary } from '../kernel/latency-histogram.js';
import { checkPriority, Priority } from '../kernel/priority.js';
import type { CircuitBreaker } from '../operations/circuit-breaker.js';
import type { DetachedSpan, HostSpanWriter } from '../telemetry/host-span-writer.js';
import { LifecycleTransition, SpanRecordKind } from '../telemetry/span-record.js';
import { type ControlBlock, ErrorCode, TERMINATE_FINISH, TERMINATE_NOW } from '../wire/control-block.js';
import type { Envelope } from '../wire/envelope.js';
import { spinFor } from '../wire/eventcount.js';
import { FrameConsumer } from '../wire/frame-consumer.js';
import { alignedFrameSize, FrameFlags } from '../wire/frame-header.js';
import { FrameProducer } from '../wire/frame-producer.js';
import type { FrameRingMemory } from '../wire/frame-ring.js';
import type { FrameView } from '../wire/frame-view.js';
import { KernelStatus, type KernelStatusName, kernelStatusName } from '../wire/kernel-status.js';
import { BytesMessage, type MessageCodec } from '../wire/message-schema.js';
import { RingSignalOffset } from '../wire/ring-signal.js';
import type { DeadLetter } from './dead-letters.js';

/** A grid or block size: a count, or up to three dimensions. */
export type Dim3 = number | readonly [number, number?, number?];

/** How a send behaves when the kernel's input queue is full. */
export interface SendOptions {
  /** `'wait'` (default): wait for room, in order. `'reject'`: fail at once with `QueueFullError`. */
  readonly onFull?: 'wait' | 'reject';
  /** Longest wait for room, in ms (default: no limit). */
  readonly timeout?: number;
  /** Cancels the wait for room. */
  readonly signal?: AbortSignal;
  /** The message's priority, 0…255 (default {@link Priority.Normal}): load shedding refuses the lowest first. */
  readonly priority?: number;
}

/** Options of {@link KernelHandle.call}. */
export interface CallOptions {
  /**
   * Guards the call: refused at once with `CircuitOpenError` while the breaker is open; a failed call (handler
   * error, timeout, kernel failure) counts against it.
   */
  readonly breaker?: CircuitBreaker;
  /** Longest wait for the response, in ms. Default 30 000. */
  readonly timeout?: number;
  /** Cancels the call. */
  readonly signal?: AbortSignal;
  /** The request's priority, 0…255 (default {@link Priority.Normal}). */
  readonly priority?: number;
}

/** Why a kernel refuses messages below its admitted priority, built when one is refused. */
export type Refusal = (kernel: string, priority: number) => { error: Error; reason: DeadLetterReason };

/** Where a kernel's messages are, what it did with them, and how fast. Read without messaging the kernel. */
export interface KernelMetrics {
  readonly name: string;
  readonly kernelId: string;
  readonly instanceId: number;
  readonly status: KernelStatusName;
  /** Messages the host has sent (written into the input ring). */
  readonly messagesSent: number;
  /** Frames the kernel took off its input ring. */
  readonly messagesReceived: number;
  /** Handled without error. */
  readonly messagesProcessed: number;
  /** Handler threw (each dead-lettered). */
  readonly messagesFailed: number;
  /** Malformed, or discarded on terminate (each dead-lettered). */
  readonly messagesDropped: number;
  /** Frames waiting in the input ring. */
  readonly inputQueueDepth: number;
  /** Frames the input ring was sized for (`queueCapacity`). */
  readonly inputQueueCapacity: number;
  /** Frames waiting in the output ring (not yet received by the host). */
  readonly outputQueueDepth: number;
  /** Sends waiting for room in a full input ring. */
  readonly sendsWaiting: number;
  /** Last error recorded by the kernel, or null. */
  readonly lastError: { readonly code: number; readonly message: string | undefined } | null;
  readonly errorCount: number;
  readonly uptimeMs: number;
  /** Handler latency (sampled one message in eight). */
  readonly latency: LatencySummary;
  /**
   * How the rings reach the kernel: `direct` — the worker reads the host's SharedArrayBuffer rings; `dma` — the
   * native mirror thread copies them to replicas the worker reads.
   */
  readonly transferStrategy: TransferStrategy;
  /** What the DMA mirror moved for this kernel, per direction (null unless `dma`). */
  readonly transfer: KernelTransferStats | null;
  /** The worker thread hosting the kernel. */
  readonly workerThreadId: number;
  /** Times a supervisor restarted the kernel. */
  readonly restarts: number;
  /** The (virtual) device hosting the kernel; it changes when the kernel is migrated. */
  readonly device: number;
  /** Times the kernel was migrated between devices. */
  readonly migrations: number;
  readonly gridSize: readonly [number, number, number];
  readonly blockSize: readonly [number, number, number];
}

/** What a handle is built from. */
export interface KernelHandleInit {
  readonly name: string;
  readonly definition: AnyKernelDefinition;
  readonly instanceId: number;
  readonly control: ControlBlock;
  readonly histogram: LatencyHistogram;
  readonly input: FrameRingMemory;
  readonly output: FrameRingMemory;
  /** How the rings reach the kernel (the kernel's own ends, the mirror's kick). */
  readonly transfer: KernelTransfer;
  readonly port: MessagePort;
  readonly threadId: number;
  readonly gridSize: readonly [number, number, number];
  readonly blockSize: readonly [number, number, number];
  readonly onFull: 'wait' | 'reject';
  readonly queueCapacity: number;
  readonly drainOnTerminate: boolean;
  readonly terminationTimeout: number;
  readonly onDeadLetter: (letter: DeadLetter) => void;
  readonly onExit: (handle: KernelHandle) => void;
  /** Called when the kernel's worker thread is seen to exit. */
  readonly onWorkerExit: (threadId: number) => void;
  /** Called when a supervised kernel's instance failed and its supervisor will decide what happens next. */
  readonly onInterrupted: (handle: KernelHandle) => void;
  /**
   * Attaches a new instance of the kernel — same ControlBlock, same rings — to a worker, on the given control
   * port; resolves with the worker's thread id and the device it runs on (a supervisor's restart: another device
   * when the kernel's CUDA device was lost).
   */
  readonly reattach: (handle: KernelHandle, port: MessagePort) => Promise<{ threadId: number; device: number }>;
  /** The kernel's CUDA device hit a sticky error: the device is lost to the process (its CUDA error name). */
  readonly onDeviceLost?: (device: number, cudaErrorName: string) => void;
  /** A handler that throws fails the kernel (for a supervisor to restart) instead of only its message. */
  readonly failOnHandlerError: boolean;
  /** Tracing on: where the host's spans of this kernel's messages begin. */
  readonly tracer?: HostSpanWriter | undefined;
  /** The device the kernel was placed on. */
  readonly device: number;
  /** The first message id the handle uses (past those of frames a checkpoint restored into the input ring). */
  readonly firstMessageId?: number;
  /**
   * Attaches a dormant instance (a migration's) on `device`, with the given state, on `port`; resolves with its
   * worker's thread id. It takes nothing over until START. A `dma` CUDA kernel's new instance launches over
   * `devicePointers`, its rings' replicas on the target.
   */
  readonly attachDormant: (
    handle: KernelHandle,
    port: MessagePort,
    device: number,
    devicePointers?: CudaReplicaPointers,
  ) => Promise<number>;
  /** A checkpoint of the kernel was taken. */
  readonly onCheckpoint: () => void;
}

/** A migration's new instance, attached dormant on its target device. */
export interface DormantInstance {
  readonly port: MessagePort;
  readonly threadId: number;
  readonly device: number;
  /** A `dma` CUDA kernel: its rings prepared on the target, taken over at the swap. */
  readonly transferMove?: PreparedTransferMove | undefined;
}

/** A kernel-to-kernel wiring command, kept so a restarted kernel is wired again. */
type LinkCommand =
  | { command: 'LINK_IN'; memory: FrameRingMemory }
  | {
      command: 'LINK_OUT';
      memory: FrameRingMemory;
      wake: SharedArrayBuffer;
      types: readonly number[] | undefined;
    };

/** What a supervisor is told when the instance of a kernel it supervises fails. */
export type KernelFailureListener = (handle: KernelHandle, error: Error) => void;

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
/** How long a forced kernel gets to stop after the message in hand before the host marks it Failed itself. */
const FORCE_GRACE_MS = 1000;
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
  readonly #producer: FrameProducer;
  readonly #consumer: FrameConsumer;
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
  readonly #replies = new Map<number, { resolve(): void; reject(error: Error): void }>();
  /** Round trip of calls answered with a result, host side: request written (or queued) to its response read. */
  readonly #callLatency = new LatencyHistogram();
  readonly #launchedAt = performance.now();
  readonly #exited: Promise<void>;
  #markExited!: () => void;
  #nextMessageId: number;
  /** The device hosting the current instance. */
  #device: number;
  #migrations = 0;
  /** Dormant instances dropped on purpose (their port's close is not a worker's death). */
  readonly #discarded = new WeakSet<DormantInstance>();
  /** SNAPSHOT requests waiting for their answer. */
  readonly #snapshots = new Map<number, { resolve(bytes: Uint8Array): void; reject(error: Error): void }>();
  #nextSeq = 1;
  #sent = 0;
  #pumping = false;
  #sending = false;
  #failure: Error | undefined;
  #lastErrorMessage: string | undefined;
  #exitStatus: 'Terminated' | 'Failed' | undefined;
  /** The current instance's control port and worker thread (both change when a supervisor restarts the kernel). */
  #port!: MessagePort;
  #threadId = 0;
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
    this.#bind(init.port, init.threadId);
  }

  /** Listens to an instance's control port. Reports from an earlier instance's port are ignored. */
  #bind(port: MessagePort, threadId: number): void {
    this.#port = port;
    this.#threadId = threadId;
    port.on('message', (report: WorkerReport) => {
      if (this.#port === port) this.#report(report);
    });
    // The worker is gone without saying goodbye (process.exit in a handler, a native crash): the kernel failed.
    port.on('close', () => {
      if (this.#port !== port || this.#exitStatus !== undefined) return;
      if (this.#suspended) {
        this.#onInstanceExit?.(); // died while stopping for a restart: stopped all the same
        return;
      }
      this.#init.onWorkerExit(threadId);
      this.#fail(new KernelFailedError(this.name, 'its worker thread exited'), true);
    });
    // An idle kernel must not keep the process alive; pending operations ref it while they wait.
    port.unref();
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
  async terminate(options: { readonly drain?: boolean } = {}): Promise<void> {
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
    this.#post({ seq: this.#nextSeq++, command: 'ABORT' });
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
    this.#checkSendable('send', message, priority);
    if (this.#sends.length > 0) return false; // earlier sends are waiting: keep order
    return this.#write(message, 0, priority);
  }

  /**
   * Sends a message. Resolves at once (a shared, already-resolved Promise) when the message is queued; when the
   * queue is full, waits for room in order — or, with `onFull: 'reject'`, rejects with `QueueFullError`.
   */
  send(message: InIn, options: SendOptions = {}): Promise<void> {
    try {
      const priority = options.priority === undefined ? Priority.Normal : checkPriority(options.priority);
      this.#checkSendable('send', message, priority);
      if (this.#sends.length === 0 && this.#write(message, 0, priority)) return RESOLVED;
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#enqueue(message, 0, options);
  }

  /**
   * Sends a request and resolves with the kernel's response (what its handler returned), matched by
   * correlation id however many calls interleave. The response is a view over its own copy: keep it as long as
   * you like.
   * @throws {TimeoutError} after `timeout` ms (default 30 s); {@link HandlerFailedError} when the handler threw;
   * {@link KernelFailedError} when the kernel failed meanwhile.
   */
  call(request: InIn, options: CallOptions = {}): Promise<OutView> {
    const breaker = options.breaker;
    if (breaker !== undefined) {
      const { breaker: _guarded, ...rest } = options;
      return breaker.execute(() => this.call(request, rest));
    }
    const timeout = options.timeout ?? 30_000;
    const messageId = this.#nextMessageId;
    const response = this.#waitFor(this.#calls, messageId, timeout, options.signal, 'call');
    try {
      const priority = options.priority === undefined ? Priority.Normal : checkPriority(options.priority);
      this.#checkSendable('call', request, priority);
      if (this.#sends.length === 0 && this.#write(request, FrameFlags.REQUEST, priority)) {
        this.#traceCall(response, messageId, request);
        this.#pump();
        return response;
      }
      this.#enqueue(request, FrameFlags.REQUEST, {
        timeout,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.priority === undefined ? {} : { priority: options.priority }),
      }).then(
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
  receive(timeout = 30_000): Promise<OutView> {
    const ready = this.tryReceive();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#exitStatus === 'Terminated') {
      return Promise.reject(new InvalidStateError(this.name, 'receive from', 'Terminated', 'Active'));
    }
    const id = this.#nextSeq++;
    const waiting = new Map<number, PendingCall>();
    const promise = this.#waitFor(waiting, id, timeout, undefined, 'receive');
    this.#receivers.push(waiting.get(id) as PendingCall);
    this.#pump();
    return promise;
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
      lastError: lastCode === 0 ? null : { code: lastCode, message: this.#lastErrorMessage },
      errorCount: control.errorCount,
      uptimeMs: Math.round(performance.now() - this.#launchedAt),
      latency: this.#init.histogram.summary(),
      transferStrategy: this.#transfer.strategy,
      transfer: this.#transfer.stats(),
      workerThreadId: this.#threadId,
      restarts: control.generation,
      device: this.#device,
      migrations: this.#migrations,
      gridSize: this.#init.gridSize,
      blockSize: this.#init.blockSize,
    };
  }

  /** Terminates the kernel if it is still running (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
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
    return this.#init.input;
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
    const seq = this.#nextSeq++;
    return new Promise<void>((resolve, reject) => {
      this.#replies.set(seq, { resolve, reject });
      this.#post({ seq, ...command });
    });
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
    const seq = this.#nextSeq++;
    this.#post({ seq, command: 'TERMINATE', drain: false, keep: true });
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
    this.#post({ seq: this.#nextSeq++, command: 'ABORT' });
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
    this.#recoverInputs();
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
    this.#bind(port1, threadId);
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
    this.#fail(error);
    if (wasSuspended) this.#salvageInput(quiet ? 'discarded-on-terminate' : 'kernel-failed');
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
    const seq = this.#nextSeq++;
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#snapshots.set(seq, { resolve, reject });
      this.#post({ seq, command: 'SNAPSHOT' });
    });
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
    const restored = new Promise<void>((resolve, reject) => {
      // The target's worker died (a restore hook that kills it, say): the migration rolls back.
      const onClose = (): void => {
        if (this.#discarded.has(dormant)) return; // closed on purpose: the migration rolled back
        this.#init.onWorkerExit(dormant.threadId); // never place on it again
        reject(new KernelFailedError(this.name, 'the worker of its new instance exited during the restore'));
      };
      dormant.port.once('close', onClose);
      dormant.port.once('message', (report: WorkerReport) => {
        dormant.port.off('close', onClose);
        if (report.type !== 'restored') {
          reject(new Error(`unexpected report from the dormant instance: ${report.type}`));
        } else if (report.error === undefined) {
          resolve();
        } else {
          reject(new StateSnapshotError(this.name, 'restore', `${report.error.name}: ${report.error.message}`));
        }
      });
    });
    restored.catch(() => {}); // a migration that rolls back first need not wait for it
    dormant.port.postMessage({ seq: 0, command: 'RESTORE', bytes: state }, [state.buffer as ArrayBuffer]);
    return { restored };
  }

  /** Drops a dormant instance that will not be used (a migration rolling back). @internal */
  discardMove(dormant: DormantInstance): void {
    this.#discarded.add(dormant);
    dormant.transferMove?.abort();
    dormant.port.postMessage({ seq: 0, command: 'DISCARD' });
    dormant.port.close();
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
    this.#recoverInputs();
    const carried = this.queuedInPlace();
    if (dormant.transferMove !== undefined) {
      // The old instance has stopped: its device's mirror carries the last outputs home, and the target's takes
      // the rings over from the host's, queue included, before the new instance starts.
      this.#transfer = dormant.transferMove.commit();
      this.#afterWrite = this.#transfer.afterInputWrite;
    }
    this.#control.resetForRestart(false);
    this.#bind(dormant.port, dormant.threadId);
    this.#device = dormant.device;
    this.#migrations++;
    const request = (message: object): Promise<void> => {
      const seq = this.#nextSeq++;
      return new Promise<void>((resolve, reject) => {
        this.#replies.set(seq, { resolve, reject });
        this.#post({ seq, ...message });
      });
    };
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
    const wired = this.#links.map((link) => request(link));
    const activated = resume && this.#activeWanted ? request({ command: 'ACTIVATE' }) : Promise.resolve();
    activated.catch(() => {}); // awaited by the caller
    try {
      await started;
    } catch (error) {
      this.abandon(error as Error);
      throw error;
    }
    await Promise.all(wired);
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
    let frames = 0;
    let bytes = 0;
    const rings = [this.#init.input];
    for (const link of this.#links) if (link.command === 'LINK_IN') rings.push(link.memory);
    for (const memory of rings) {
      const reader = new FrameConsumer(memory); // reads indices only; never drained
      frames += reader.availableReadFrames();
      bytes += reader.availableReadBytes();
    }
    return { frames, bytes };
  }

  /** Marks the kernel Failed from the host side (its worker is gone). @internal */
  fail(reason: string): void {
    this.#fail(new KernelFailedError(this.name, reason));
  }

  // ---------------------------------------------------------------------------------------------------------------

  #checkSendable(operation: string, message: InIn, priority: number): void {
    // One atomic load and one compare on the hot path: Launched, Active and Deactivated take messages, of an
    // admitted priority.
    const code = this.#control.status;
    const admitted = priority >= this.#minPriority;
    if (admitted && code >= KernelStatus.Launched && code <= KernelStatus.Deactivated && this.#failure === undefined) {
      return;
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
    const error = this.#failure ?? new InvalidStateError(this.name, operation, this.status, 'Active');
    this.#refuse('kernel-gone', error, message);
    throw error;
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
      tracer.endDetached(span, SpanRecordKind.CALL, messageId, this.instanceId, codec.typeId, size, errorCode);
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
      const onAbort = (): void => settle(options.signal?.reason ?? new Error('aborted'));
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
        const at = this.#sends.indexOf(pending);
        if (at >= 0) this.#sends.splice(at, 1);
        reject(error);
      };
      if (options.timeout !== undefined) {
        timer = setTimeout(
          () => settle(new TimeoutError(`send to kernel '${this.name}'`, options.timeout as number)),
          options.timeout,
        );
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
        await this.#producer.waitForSpaceAsync(alignedFrameSize(head.bytes.length), 100);
      }
    } finally {
      this.#sending = false;
    }
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
      const onAbort = (): void => pending.reject(signal?.reason ?? new Error('aborted'));
      const startedAt = performance.now();
      const pending: PendingCall = {
        startedAt,
        deadline: startedAt + timeout,
        expire: () => pending.reject(new TimeoutError(`${what} on kernel '${this.name}'`, timeout)),
        resolve: (value) => {
          pending.cleanup();
          resolve(value as OutView);
        },
        reject: (error) => {
          pending.cleanup();
          reject(error);
        },
        cleanup: () => {
          this.#deadlines.delete(pending);
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
      this.#deadlines.add(pending);
      if (pending.deadline < this.#timerAt) this.#armTimer(pending.deadline);
    });
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
        if (flags & FrameFlags.ERROR) call.reject(new HandlerFailedError(this.name, parseRemoteError(frame)));
        else {
          this.#callLatency.record((performance.now() - call.startedAt) * 1e6);
          call.resolve(this.#own(frame));
        }
        return;
      }
      // An error answer to a call that already gave up: the failure itself was dead-lettered by the kernel.
      if (flags & FrameFlags.ERROR || frame.typeId === ERROR_REPLY_TYPE_ID) return;
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
    const seq = this.#nextSeq++;
    const done = new Promise<void>((resolve, reject) => {
      const settle = (): void => {
        if (command !== 'TERMINATE' && wanted) this.#activeWanted = command === 'ACTIVATE';
        resolve();
      };
      this.#replies.set(seq, { resolve: settle, reject });
      this.#post(command === 'TERMINATE' ? { seq, command, drain, keep: false } : { seq, command });
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

  #post(message: object): void {
    this.#port.ref(); // a command in flight keeps the process alive until its reply
    this.#port.postMessage(message);
  }

  #report(report: WorkerReport): void {
    switch (report.type) {
      case 'reply': {
        const waiter = this.#replies.get(report.seq);
        this.#replies.delete(report.seq);
        if (this.#replies.size === 0 && this.#snapshots.size === 0) this.#port.unref();
        if (waiter === undefined) return;
        if (report.ok) waiter.resolve();
        else waiter.reject(new InvalidStateError(this.name, 'change the state of', report.state, report.target));
        return;
      }
      case 'snapshot': {
        const waiter = this.#snapshots.get(report.seq);
        this.#snapshots.delete(report.seq);
        if (this.#replies.size === 0 && this.#snapshots.size === 0) this.#port.unref();
        if (waiter === undefined) return;
        if ('bytes' in report) waiter.resolve(report.bytes);
        else
          waiter.reject(new StateSnapshotError(this.name, 'snapshot', `${report.error.name}: ${report.error.message}`));
        return;
      }
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
        if (report.deviceLost !== undefined) this.#init.onDeviceLost?.(this.#device, report.deviceLost);
        if (this.#suspended) {
          // Stopped for a restart: the handle lives on, waiting for the next instance.
          this.#port.unref();
          this.#onInstanceExit?.();
          return;
        }
        if (report.status === 'Failed') {
          // The instance has exited: nothing consumes the input any more, so an unsupervised kernel's queue is
          // dead-lettered (a supervised one keeps it for the next instance).
          const reason = report.reason ?? 'unknown';
          this.#fail(
            report.deviceLost === undefined
              ? new KernelFailedError(this.name, reason)
              : new CudaDeviceLostError(this.#device, report.deviceLost, `kernel '${this.name}' failed: ${reason}`),
            true,
          );
          return;
        }
        this.#exitStatus = report.status;
        this.#settleExit();
        return;
    }
  }

  #settleExit(): void {
    this.#port.unref();
    this.#markExited();
    this.#init.onExit(this);
    // Wake the output pump so pending receivers learn the kernel is gone once its outputs are read.
    this.#consumer.interrupt();
  }

  /**
   * The kernel's instance failed (`gone`: its worker died under it, or it reported its exit, so nothing consumes
   * its input any more). Supervised, the handle is suspended for the supervisor to decide; otherwise the kernel is
   * Failed for good, and a gone instance's queue dead-lettered.
   */
  #fail(error: Error, gone = false): void {
    if (this.#failure !== undefined) return;
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
    for (const send of [...this.#sends]) send.reject(error);
    for (const waiter of this.#replies.values()) waiter.reject(error);
    this.#replies.clear();
    for (const waiter of this.#snapshots.values()) waiter.reject(error);
    this.#snapshots.clear();
    this.#settleExit();
    if (gone) this.#salvageInput('kernel-failed');
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
    for (const waiter of this.#replies.values()) waiter.reject(error);
    this.#replies.clear();
    this.#port.unref();
    this.#init.onInterrupted(this);
    (this.#supervisor as KernelFailureListener)(this, error);
  }

  /**
   * Before a restart: each input ring is taken over where the dead instance's handlers got to (its handled
   * cursor), so nothing handled is handled again; and if the instance died inside a handler (its worker
   * crashed), that one message is dead-lettered rather than retried, so a poison message cannot crash every
   * restart in turn.
   */
  #recoverInputs(): void {
    const control = this.#control;
    const draining = control.drainingInput;
    const rings: { memory: FrameRingMemory; cursor: number }[] = [
      { memory: this.#init.input, cursor: control.handledCursor },
    ];
    for (const link of this.#links) {
      if (link.command !== 'LINK_IN') continue;
      const signal = new Int32Array(link.memory.signal);
      rings.push({ memory: link.memory, cursor: Atomics.load(signal, RingSignalOffset.HANDLED_CURSOR >> 2) >>> 0 });
    }
    rings.forEach(({ memory, cursor }, index) => {
      const taken = new FrameConsumer(memory);
      taken.resumeAt(cursor);
      if (draining !== index + 1) return;
      const error = new KernelFailedError(this.name, 'its instance died while handling this message');
      taken.drain((frame) => {
        this.#init.onDeadLetter({
          kernel: this.name,
          reason: 'kernel-failed',
          error: { name: error.name, message: error.message, code: error.code },
          messageId: frame.messageId,
          correlationId: frame.correlationId,
          typeId: frame.typeId,
          payload: frame.payload.slice(),
          at: new Date(),
        });
        if (index === 0 && frame.flags & FrameFlags.REQUEST) this.#calls.get(frame.messageId)?.reject(error);
      }, 1);
    });
  }

  /**
   * The worker is dead, so nobody consumes the input ring any more: the host takes over as its consumer and
   * dead-letters what is left (reason `kernel-failed`), so nothing sent is lost without a word. It starts where
   * the worker's handlers got to (the ControlBlock's handled cursor), not at the last published read index, so
   * messages handled in the worker's last batch are not reported twice; the message whose handler was running
   * (the one that killed the worker, say) is reported.
   */
  #salvageInput(reason: 'kernel-failed' | 'discarded-on-terminate'): void {
    const orphaned = new FrameConsumer(this.#init.input);
    orphaned.resumeAt(this.#control.handledCursor);
    const error = { name: 'KernelFailedError', message: `kernel '${this.name}' failed before handling this message` };
    orphaned.drain((frame) => {
      this.#init.onDeadLetter({
        kernel: this.name,
        reason,
        error,
        messageId: frame.messageId,
        correlationId: frame.correlationId,
        typeId: frame.typeId,
        payload: frame.payload.slice(),
        at: new Date(),
      });
    });
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
