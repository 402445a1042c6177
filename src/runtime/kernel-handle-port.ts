import type { KernelTransfer } from '../bridge/transfer-bridge.js';
import { ErrorNumber } from '../errors/codes.js';
import { InvalidStateError } from '../errors/runtime-errors.js';
import type { SerializedError } from '../executor/protocol.js';
import { lifecycleAccepts } from '../kernel/kernel-lifecycle.js';
import type { DetachedSpan, HostSpanWriter } from '../telemetry/host-span-writer.js';
import { LifecycleTransition, SpanRecordKind } from '../telemetry/span-record.js';
import { type ControlBlock, ErrorCode } from '../wire/control-block.js';
import type { FrameConsumer } from '../wire/frame-consumer.js';
import { FrameHeader } from '../wire/frame-header.js';
import type { FrameProducer } from '../wire/frame-producer.js';
import { createFrameRing, type FrameRingMemory } from '../wire/frame-ring.js';
import type { FrameView } from '../wire/frame-view.js';
import { KernelStatus, type KernelStatusName } from '../wire/kernel-status.js';
import { RingOffset } from '../wire/ring-signal.js';
import type { CallWaiters, WaitersOwner } from './call-waiters.js';
import type { DeadLetter } from './dead-letters.js';
import type { KernelHandle } from './kernel-handle.js';
import type { KernelHandleInit, KernelMetrics, Refusal } from './kernel-handle-options.js';
import { errorNumberFrom, type InstanceOwner, type KernelInstance } from './kernel-instance.js';
import { salvageInput } from './kernel-recovery.js';
import type { SendQueueOwner, WaitingSend, WaitingSends } from './send-queue.js';
import { refusalOf, refusedLetter } from './send-refusal.js';

/**
 * The handle's private state as its port reads and changes it. The handle makes one such table for its class
 * (only code inside the class can reach its `#private` fields), so the port's code lives here and each handle
 * still carries just one small port object, its methods shared.
 */
export interface HandleAccess {
  failure(handle: KernelHandle): Error | undefined;
  exitStatus(handle: KernelHandle): 'Terminated' | 'Failed' | undefined;
  /** Sets how the kernel ended (undefined: it runs again, a restart or a migration's swap). */
  setExitStatus(handle: KernelHandle, status: 'Terminated' | 'Failed' | undefined): void;
  /** The kernel has failed for good with `error`: every send, call and receive is refused by it from now on. */
  setFailure(handle: KernelHandle, error: Error): void;
  /** From now on the kernel takes no new message (it is terminating). */
  close(handle: KernelHandle): void;
  transfer(handle: KernelHandle): KernelTransfer;
  useTransfer(handle: KernelHandle, transfer: KernelTransfer): void;
  producer(handle: KernelHandle): FrameProducer;
  consumer(handle: KernelHandle): FrameConsumer;
  waiters(handle: KernelHandle): CallWaiters<unknown>;
  waitingSends(handle: KernelHandle): WaitingSends;
  instance(handle: KernelHandle): KernelInstance;
  /** Publishes a frame the producer just wrote (the DMA mirror's kick, where there is one). */
  afterWrite(handle: KernelHandle): void;
  takeMessageId(handle: KernelHandle): number;
  countSent(handle: KernelHandle): void;
  holdRequestSpan(handle: KernelHandle, span: DetachedSpan): void;
  /** Reads outputs while a call or receive waits (the output pump). */
  pumpIfWaiting(handle: KernelHandle): void;
  /** Delivers the outputs still in the output ring (to waiting receivers and calls, or to be received). */
  drainOutputs(handle: KernelHandle): void;
  /** The handle's ends stand over `ring` from now on (its own rings have gone back for reuse). */
  standOver(handle: KernelHandle, ring: FrameRingMemory): void;
  /** Settles `handle.exited`. */
  markExited(handle: KernelHandle): void;
  /** Takes the span of the request just written (undefined when it was not sampled, or tracing is off). */
  takeRequestSpan(handle: KernelHandle): DetachedSpan | undefined;
  /** Whether `terminate()` was called: the kernel takes no new message. */
  closed(handle: KernelHandle): boolean;
  /** Messages the handle has written into the input ring. */
  sent(handle: KernelHandle): number;
  /** Outputs read off the output ring and not yet received. */
  outputsHeld(handle: KernelHandle): number;
}

/**
 * What the handle's parts — its instance control, call waiters and waiting sends — need of it, each through the
 * interface it declares, and the cold paths of the handle's end: its failure, its exit, the return of its rings,
 * the refusal of what waits when it terminates, and the late answers to calls that gave up. One small object per
 * handle whose methods are shared (closures would cost each of thousands of kernels their own).
 */
export class HandlePort implements InstanceOwner, WaitersOwner, SendQueueOwner {
  readonly handle: KernelHandle;
  readonly name: string;
  readonly instanceId: number;
  readonly control: ControlBlock;
  readonly init: KernelHandleInit;
  readonly tracer: HostSpanWriter | undefined;
  readonly exited: Promise<void>;
  readonly onFull: 'wait' | 'reject';
  readonly #access: HandleAccess;
  /** The message of the kernel's last error, for its metrics. */
  #lastErrorMessage: string | undefined;
  /** Calls that gave up after their request was written: their responses, should they come, are dead letters. */
  readonly #abandoned = new Map<number, Error>();
  #ringsReleased = false;
  /** How a message below the admitted priority is reported (drain, load shedding); set by `admit`. */
  #refusal: Refusal | undefined;
  readonly #launchedAt = performance.now();
  /** Whether anyone asked this kernel to activate (a call to a kernel nobody will activate is refused at once). */
  #activationAsked = false;
  /**
   * A timer that holds the event loop while someone waits on `KernelHandle.exited` and the kernel has not
   * exited: the kernel's ports do not hold it (an idle runtime must let the process end), so without it a bare
   * `await handle.exited` could outlive everything else in the process and never settle.
   */
  #exitHold: NodeJS.Timeout | undefined;
  #hasExited = false;
  /** Traced calls whose answer says the kernel's span was not recorded (cleared when the call's span ends). */
  readonly #truncatedCalls = new Set<number>();
  /** The terminate under way (or done), so that terminating twice waits for the one. */
  #terminating: Promise<void> | undefined;

  constructor(handle: KernelHandle, init: KernelHandleInit, exited: Promise<void>, access: HandleAccess) {
    this.handle = handle;
    this.name = handle.name;
    this.instanceId = handle.instanceId;
    this.control = init.control;
    this.init = init;
    this.tracer = init.tracer;
    this.exited = exited;
    this.onFull = init.onFull;
    this.#access = access;
  }

  /** The message of the kernel's last error, for its metrics. */
  get lastErrorMessage(): string | undefined {
    return this.#lastErrorMessage;
  }

  failure(): Error | undefined {
    return this.#access.failure(this.handle);
  }

  failed(): boolean {
    return this.#access.failure(this.handle) !== undefined;
  }

  exitStatus(): 'Terminated' | 'Failed' | undefined {
    return this.#access.exitStatus(this.handle);
  }

  hasEnded(): boolean {
    return this.#access.exitStatus(this.handle) !== undefined;
  }

  status(): KernelStatusName {
    return this.handle.status;
  }

  transfer(): KernelTransfer {
    return this.#access.transfer(this.handle);
  }

  useTransfer(transfer: KernelTransfer): void {
    this.#access.useTransfer(this.handle, transfer);
  }

  /**
   * The kernel's instance failed. `salvage`: its instance is gone (its worker died under it, or it reported its
   * exit), so nothing consumes its input any more and what is queued is dead-lettered with that reason.
   * Supervised, the handle is suspended for the supervisor to decide; otherwise the kernel is Failed for good.
   */
  fail(error: Error, salvage?: 'kernel-failed' | 'discarded-on-terminate'): void {
    const access = this.#access;
    const handle = this.handle;
    // Failed already, or ended Terminated: a kernel ends once, and is counted once.
    if (access.failure(handle) !== undefined || access.exitStatus(handle) !== undefined) return;
    // The instance failed: a fail span either way (a supervised kernel's restart is a span of its own).
    const instance = access.instance(handle);
    const span = this.tracer?.beginLifecycle();
    if (span !== undefined && !instance.suspended) {
      this.tracer?.endLifecycle(span, LifecycleTransition.FAIL, this.instanceId, ErrorNumber.KernelFailed);
    }
    if (instance.supervised && !instance.suspended) {
      instance.suspend(error);
      return;
    }
    access.setFailure(handle, error);
    // The worker is gone or unresponsive: the host becomes the only writer of the status word.
    this.control.setActive(false);
    this.control.setStatus(KernelStatus.Failed);
    this.control.recordError(ErrorCode.KernelFailed);
    access.setExitStatus(handle, 'Failed');
    this.#lastErrorMessage = error.message;
    const waiters = access.waiters(handle);
    for (const call of [...waiters.calls.values()]) call.reject(error);
    for (const receiver of [...waiters.receivers]) receiver.reject(error);
    access.waitingSends(handle).drop(error, 'kernel-failed');
    instance.failed(error);
    // Before the exit settles: its rings may go back for reuse then.
    if (salvage !== undefined) salvageInput(instance.orphaned, salvage);
    this.#settleExit();
  }

  ended(status: 'Terminated' | 'Failed'): void {
    this.#access.setExitStatus(this.handle, status);
    this.#settleExit();
  }

  instanceGone(): void {
    this.#releaseRings();
  }

  reopened(): void {
    this.#access.setExitStatus(this.handle, undefined);
  }

  resumeTraffic(): void {
    const waitingSends = this.#access.waitingSends(this.handle);
    if (waitingSends.length > 0) void waitingSends.flush();
    this.#access.pumpIfWaiting(this.handle);
  }

  stopTaking(): void {
    const access = this.#access;
    const handle = this.handle;
    // Sends still waiting for room would be written after the worker's last look at its queue (or into a ring
    // nobody consumes any more): they are refused, each a dead letter.
    access.close(handle);
    const waitingSends = access.waitingSends(handle);
    // The error only when a send waits: one made (with its stack) at every terminate costs churn dearly.
    if (access.failure(handle) !== undefined || waitingSends.length === 0) return;
    const error = new InvalidStateError(
      this.name,
      'send to',
      'Terminating',
      'Active',
      'and takes no more messages: this send was still waiting for room in its queue',
    );
    waitingSends.drop(error, 'discarded-on-terminate');
  }

  collectOutputs(): void {
    this.#access.drainOutputs(this.handle);
  }

  lastError(message: string): void {
    this.#lastErrorMessage = message;
  }

  rejectCall(messageId: number, error: Error): void {
    this.#access.waiters(this.handle).calls.get(messageId)?.reject(error);
  }

  /**
   * A call gave up (timed out, aborted). Its request still waiting for room is withdrawn (never written, so never
   * answered); one already written may yet be answered: that answer is a dead letter (`late-response`), not an
   * output for `receive`.
   */
  callGaveUp(messageId: number, error: Error): void {
    if (this.#access.waitingSends(this.handle).withdraw(messageId, error)) return;
    this.#abandoned.set(messageId, error);
    // The output pump goes on until that answer is read, so its dead letter comes when the answer does (not at
    // the next call or receive, which may never come).
    this.#access.pumpIfWaiting(this.handle);
  }

  /** Whether answers to calls that gave up are still to come (the output pump reads on for them). */
  get lateResponsesDue(): boolean {
    return this.#abandoned.size > 0;
  }

  /**
   * A response that no waiting call takes: true when it was the answer to a call that gave up (dead-lettered,
   * `late-response`) or an error answer (its failure was dead-lettered by the kernel), both taken here; false when
   * it is an output after all, for `receive`.
   */
  lateResponse(frame: FrameView, errorAnswer: boolean): boolean {
    const abandoned = this.#abandoned.get(frame.correlationId);
    if (abandoned !== undefined) this.#abandoned.delete(frame.correlationId);
    // An error answer to a call that already gave up: the failure itself was dead-lettered by the kernel.
    if (errorAnswer) return true;
    if (abandoned === undefined) return false;
    // Its caller has left: not an output for receive() (which takes outputs that are not responses). The letter
    // carries why the call gave up.
    this.init.onDeadLetter({
      kernel: this.name,
      reason: 'late-response',
      error: { name: abandoned.name, message: abandoned.message, code: (abandoned as { code?: string }).code },
      messageId: frame.messageId,
      correlationId: frame.correlationId,
      typeId: frame.typeId,
      payload: frame.payload.slice(),
      at: new Date(),
    });
    return true;
  }

  takeMessageId(): number {
    return this.#access.takeMessageId(this.handle);
  }

  holdRequestSpan(span: DetachedSpan): void {
    this.#access.holdRequestSpan(this.handle, span);
  }

  tryWrite(send: WaitingSend): boolean {
    const access = this.#access;
    if (!access.producer(this.handle).tryWrite(send.codec, send.bytes, send.envelope)) return false;
    access.afterWrite(this.handle);
    return true;
  }

  /** See `KernelHandle.burst`: the input's wake-ups deferred while `body` sends, one at its end. */
  burst<T>(body: () => T): T {
    const producer = this.#access.producer(this.handle);
    producer.deferWakes(true);
    try {
      return body();
    } finally {
      producer.deferWakes(false);
    }
  }

  waitForSpace(frameBytes: number, ms: number): Promise<boolean> {
    // On `dma` the room comes back through the mirror thread: it must not sleep through this wait (a host that
    // carries its own frames across never kicks it).
    this.#access.transfer(this.handle).wakeMirror?.();
    return this.#access.producer(this.handle).waitForSpaceAsync(frameBytes, ms);
  }

  sent(): void {
    this.#access.countSent(this.handle);
  }

  taken(): number {
    return Number(this.control.messagesReceived);
  }

  outputsUnread(): boolean {
    const waiters = this.#access.waiters(this.handle);
    return (
      waiters.receivers.length === 0 &&
      waiters.calls.size === 0 &&
      this.handle.status === 'Active' &&
      this.#access.consumer(this.handle).availableReadBytes() * 2 >= this.init.output.ring.byteLength - RingOffset.DATA
    );
  }

  onDeadLetter(letter: DeadLetter): void {
    this.init.onDeadLetter(letter);
  }

  /** See `KernelHandle.exited`: the exit, the process held open until it comes. */
  heldExit(): Promise<void> {
    // The longest interval node takes (about 24.8 days); it never fires before the exit clears it.
    if (!this.#hasExited && this.#exitHold === undefined) this.#exitHold = setInterval(() => {}, 0x7fff_ffff);
    return this.exited;
  }

  /**
   * Ends the span of the request just written (if sampled) when its call settles, `response` (the call's
   * answer) saying how.
   */
  traceCall(response: Promise<unknown>, messageId: number, request: unknown): void {
    const span = this.#access.takeRequestSpan(this.handle);
    const tracer = this.tracer;
    if (span === undefined || tracer === undefined) return;
    const codec = this.init.definition.input;
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

  /** The kernel could not record its span of the traced call `messageId`: the call's span says its trace stops there. */
  truncated(messageId: number): void {
    this.#truncatedCalls.add(messageId);
  }

  /** See `KernelHandle.activate`. */
  activate(): Promise<void> {
    this.#activationAsked = true;
    return this.#access.instance(this.handle).command('ACTIVATE', 'activate');
  }

  /** The launch's attach activated the kernel (`autoActivate`): as if `activate()` had been answered. */
  activatedAtLaunch(): void {
    this.#activationAsked = true;
    this.#access.instance(this.handle).activatedAtAttach();
  }

  /**
   * A call to the kernel while it is Launched: refused at once when nobody asked it to activate (it takes no input,
   * so the call would only time out) and no supervisor will bring a new instance.
   */
  checkCallable(): void {
    const instance = this.#access.instance(this.handle);
    if (this.#activationAsked || instance.supervised || instance.suspended) return;
    throw new InvalidStateError(
      this.name,
      'call',
      'Launched',
      'Active',
      'launched with { autoActivate: false } and not yet activated, so it takes no input: call activate() first',
    );
  }

  /** See `KernelHandle.terminate`. `drain`: undefined for the launch's default. */
  terminate(drain: boolean | undefined): Promise<void> {
    // Once asked, a kernel terminates once: a second terminate (a stopped actor's, then shutdown's) waits for it.
    if (this.#terminating !== undefined) return this.#terminating;
    const terminating = this.#access.instance(this.handle).terminate(drain ?? this.init.drainOnTerminate);
    this.#terminating = terminating;
    terminating.catch(() => {
      if (this.#terminating === terminating) this.#terminating = undefined;
    });
    return terminating;
  }

  /** Terminates the kernel if it is still running (`await using`), or waits for the terminate under way. */
  async dispose(): Promise<void> {
    if (this.#terminating !== undefined) return this.#terminating;
    if (this.hasEnded() || this.failed() || !lifecycleAccepts(this.handle.status, 'TERMINATE')) return;
    await this.terminate(undefined);
  }

  /** The kernel has terminated and its outputs are all read: the receives and calls still waiting are refused. */
  refuseWaiting(): void {
    const waiters = this.#access.waiters(this.handle);
    for (const receiver of [...waiters.receivers]) {
      receiver.reject(new InvalidStateError(this.name, 'receive from', 'Terminated', 'Active'));
    }
    for (const call of [...waiters.calls.values()]) {
      call.reject(new InvalidStateError(this.name, 'call', 'Terminated', 'Active'));
    }
  }

  /** How a message below the admitted priority is reported from now on (`undefined`: the plain refusal). */
  useRefusal(refusal: Refusal | undefined): void {
    this.#refusal = refusal;
  }

  /**
   * Why the kernel refuses a message its send path's fast check did not take, the message dead-lettered: the
   * error to throw, or undefined when it takes the message after all (see `refusalOf`).
   */
  refusal(operation: string, message: unknown, priority: number, admitted: boolean): Error | undefined {
    const access = this.#access;
    const handle = this.handle;
    const instance = access.instance(handle);
    const refused = refusalOf(
      {
        name: this.name,
        status: handle.status,
        failure: access.failure(handle),
        exitStatus: access.exitStatus(handle),
        closed: access.closed(handle),
        admitted,
        refusal: this.#refusal,
        awaitsRestart: instance.suspended || instance.supervised,
      },
      operation,
      priority,
    );
    if (refused === undefined) return undefined;
    this.init.onDeadLetter(refusedLetter(this.name, refused, this.init.definition.input, message));
    return refused.error;
  }

  /** A send or call with a wrong option: the message it would have carried is a dead letter (`invalid-argument`). */
  refuseOptions(error: Error, message: unknown): void {
    const refused = { error, reason: 'invalid-argument' } as const;
    this.init.onDeadLetter(refusedLetter(this.name, refused, this.init.definition.input, message));
  }

  /** See `KernelHandle.pendingWork`. */
  pendingWork(): number {
    const access = this.#access;
    const handle = this.handle;
    let pending =
      access.producer(handle).pendingFrames() + access.waitingSends(handle).length + access.waiters(handle).calls.size;
    for (const link of access.instance(handle).links) {
      if (link.command !== 'LINK_IN') continue;
      const indices = new Uint32Array(link.memory.ring, 0, 2);
      // Acquire loads of the link's write and read indices (its producer and consumer are other threads).
      if (Atomics.load(indices, 0) !== Atomics.load(indices, 1)) pending++;
    }
    return pending;
  }

  /** See `KernelHandle.counters`. */
  counters(): {
    readonly received: number;
    readonly processed: number;
    readonly failed: number;
    readonly dropped: number;
    readonly fused: number;
  } {
    const control = this.control;
    return {
      received: Number(control.messagesReceived),
      processed: Number(control.messagesProcessed),
      failed: Number(control.messagesFailed),
      dropped: Number(control.messagesDropped),
      fused: Number(control.messagesFused),
    };
  }

  /** See `KernelHandle.metrics`. */
  metrics(): KernelMetrics {
    const access = this.#access;
    const handle = this.handle;
    const control = this.control;
    const init = this.init;
    const lastCode = control.lastErrorCode;
    const waitingSends = access.waitingSends(handle);
    const transfer = access.transfer(handle);
    const instance = access.instance(handle);
    return {
      name: this.name,
      kernelId: handle.kernelId,
      instanceId: this.instanceId,
      status: handle.status,
      messagesSent: access.sent(handle),
      messagesReceived: Number(control.messagesReceived),
      messagesProcessed: Number(control.messagesProcessed),
      messagesFailed: Number(control.messagesFailed),
      messagesDropped: Number(control.messagesDropped),
      inputQueueDepth: access.producer(handle).pendingFrames(),
      inputQueueCapacity: init.queueCapacity,
      outputQueueDepth: access.consumer(handle).availableReadFrames() + access.outputsHeld(handle),
      sendsWaiting: waitingSends.length,
      sendStalls: waitingSends.stalls,
      lastError: lastCode === 0 ? null : { code: lastCode, message: this.#lastErrorMessage },
      errorCount: control.errorCount,
      uptimeMs: Math.round(performance.now() - this.#launchedAt),
      latency: init.histogram.summary(),
      transferStrategy: transfer.strategy,
      transfer: transfer.stats(),
      workerThreadId: instance.threadId,
      restarts: control.generation,
      device: instance.device,
      migrations: instance.migrations,
      gridSize: init.gridSize,
      blockSize: init.blockSize,
    };
  }

  #settleExit(): void {
    const access = this.#access;
    const handle = this.handle;
    // No more responses can come; the deadline timer must not hold the ended handle (and its rings).
    this.#abandoned.clear();
    access.waiters(handle).kernelEnded();
    // The instance has gone: a command still waiting was never taken and never will be: refused, typed.
    const ended = access.exitStatus(handle) ?? 'Terminated';
    access.instance(handle).ended(() => new InvalidStateError(this.name, 'change the state of', ended, 'Active'));
    this.#hasExited = true;
    clearInterval(this.#exitHold);
    access.markExited(handle);
    this.init.onExit(handle);
    // Wake the output pump so pending receivers learn the kernel is gone once its outputs are read.
    access.consumer(handle).interrupt();
    this.#releaseRings();
  }

  /**
   * The kernel has ended for good: once its instance has left (nothing in its worker touches the rings) and no
   * mirror copies them (`direct`), its rings go back for the next launch. The outputs not yet received are copied
   * out first (they are still the handle's to receive); from then on the handle's ends are over an empty ring.
   */
  #releaseRings(): void {
    const release = this.init.releaseRings;
    const access = this.#access;
    if (release === undefined || !access.instance(this.handle).left || this.#ringsReleased) return;
    if (access.transfer(this.handle).strategy !== 'direct') return;
    this.#ringsReleased = true;
    access.drainOutputs(this.handle);
    access.standOver(this.handle, endedRing());
    release(this.init.input, this.init.output);
  }
}

/** An empty ring the ends of an ended handle stand over once its own rings went back for reuse. */
let endedRingMemory: FrameRingMemory | undefined;
function endedRing(): FrameRingMemory {
  endedRingMemory ??= createFrameRing({ capacityBytes: FrameHeader.SIZE + 8, maxPayloadSize: 0 });
  return endedRingMemory;
}

/** The error a handler threw, as the kernel's error answer carries it. */
export function remoteErrorOf(frame: FrameView): SerializedError {
  try {
    return JSON.parse(new TextDecoder().decode(frame.payload)) as SerializedError;
  } catch {
    return { name: 'Error', message: 'the kernel handler failed (unreadable error report)' };
  }
}

/**
 * The output pump's spin test for a transfer: whether output is there. On CPU `dma` each look first carries the
 * rings across on this thread (request in, response out, a parked kernel woken: no wait for the mirror thread nor
 * for an event-loop turn), then nudges the kernel should the mirror thread have published to it while it slept.
 */
export function outputCheck(transfer: KernelTransfer, consumer: FrameConsumer): () => boolean {
  const { serve, nudgeKernel } = transfer;
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
