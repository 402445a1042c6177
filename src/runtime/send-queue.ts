import { QueueFullError } from '../errors/runtime-errors.js';
import { AbortedError, TimeoutError } from '../errors/value-errors.js';
import type { DeadLetterReason } from '../executor/protocol.js';
import { Priority } from '../kernel/priority.js';
import type { DetachedSpan, HostSpanWriter } from '../telemetry/host-span-writer.js';
import { SpanRecordKind } from '../telemetry/span-record.js';
import type { Envelope } from '../wire/envelope.js';
import { alignedFrameSize, FrameFlags } from '../wire/frame-header.js';
import { BytesMessage, type MessageCodec } from '../wire/message-schema.js';
import type { DeadLetter } from './dead-letters.js';
import type { SendOptions } from './kernel-handle-options.js';

/** How long sends wait for room, with the kernel taking nothing in, before the host looks for a deadlock. */
const STALL_MS = 1000;

/** A send waiting for room in the input ring: its bytes were encoded when it began to wait. */
export interface WaitingSend {
  readonly codec: MessageCodec<Uint8Array, unknown>;
  readonly bytes: Uint8Array;
  readonly envelope: Envelope;
  resolve(): void;
  reject(error: Error): void;
  cleanup(): void;
}

/** What the waiting sends need from their kernel's handle. */
export interface SendQueueOwner {
  readonly name: string;
  readonly instanceId: number;
  /** Undefined when tracing is off. */
  readonly tracer: HostSpanWriter | undefined;
  /** What a send that gives no `onFull` does when the queue is full. */
  readonly onFull: 'wait' | 'reject';
  /** Whether the kernel has failed: its waiting sends are then refused by the failure, not written. */
  failed(): boolean;
  /** Takes the next message id. */
  takeMessageId(): number;
  /** A queued request's span, for its call to end when the response comes. */
  holdRequestSpan(span: DetachedSpan): void;
  /** Writes a waiting send's frame when there is room for it now. */
  tryWrite(send: WaitingSend): boolean;
  /** Waits up to `ms` for room for a frame of `frameBytes`; false when there is none yet. */
  waitForSpace(frameBytes: number, ms: number): Promise<boolean>;
  /** A message was written (counted in the kernel's `messagesSent`). */
  sent(): void;
  /** Messages the kernel has taken in so far (its ControlBlock's counter). */
  taken(): number;
  /**
   * Whether the kernel, Active, holds outputs nobody reads: its output queue at least half full while no receive
   * or call waits on the host.
   */
  outputsUnread(): boolean;
  onDeadLetter(letter: DeadLetter): void;
}

/**
 * The sends that wait for room in a kernel's input ring, in order: written as room comes, each with its own
 * deadline and abort signal, dead-lettered when they never will be. Also watches for the deadlock of sends that
 * wait on a kernel whose outputs nobody reads.
 */
export class WaitingSends {
  readonly #owner: SendQueueOwner;
  readonly #sends: WaitingSend[] = [];
  #flushing = false;
  /** Sends stalled for want of a reader: when the kernel last took input in (see #checkStall). */
  #stallMark: { received: number; since: number } | undefined;
  #stalled = false;
  #stalls = 0;

  constructor(owner: SendQueueOwner) {
    this.#owner = owner;
  }

  /** Sends waiting now. */
  get length(): number {
    return this.#sends.length;
  }

  /** Times sends were found deadlocked (each stall once). */
  get stalls(): number {
    return this.#stalls;
  }

  /**
   * Queues a message for when there is room (or, `onFull: 'reject'`, refuses it with `QueueFullError`). Resolves
   * once it is written.
   */
  enqueue<In>(codec: MessageCodec<In, unknown>, message: In, flags: number, options: SendOptions): Promise<void> {
    const owner = this.#owner;
    if ((options.onFull ?? owner.onFull) === 'reject') return Promise.reject(new QueueFullError(owner.name));
    // Encode now: the caller may reuse its object, and the ring takes bytes in order later.
    const bytes = new Uint8Array(codec.encodedSize(message));
    codec.encodeInto(new DataView(bytes.buffer), bytes, 0, message);
    const envelope: Envelope = {
      messageId: owner.takeMessageId(),
      destination: owner.instanceId,
      flags,
      priority: options.priority ?? Priority.Normal,
    };
    const span = this.#traceQueued(envelope);
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => settle(new AbortedError(`send to kernel '${owner.name}'`, options.signal?.reason));
      const pending: WaitingSend = {
        codec: { ...BytesMessage, name: codec.name, typeId: codec.typeId },
        bytes,
        envelope,
        resolve: () => {
          pending.cleanup();
          owner.sent();
          if (span !== undefined && !(flags & FrameFlags.REQUEST)) {
            const id = envelope.messageId ?? 0;
            owner.tracer?.endDetached(span, SpanRecordKind.SEND, id, owner.instanceId, codec.typeId, bytes.length, 0);
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
        if (span !== undefined && !(flags & FrameFlags.REQUEST)) owner.tracer?.abandon(span);
        const at = this.#sends.indexOf(pending);
        if (at >= 0) this.#sends.splice(at, 1);
        reject(error);
      };
      if (options.timeout !== undefined && options.timeout !== Number.POSITIVE_INFINITY) {
        timer = setTimeout(() => {
          const error = new TimeoutError(`send to kernel '${owner.name}'`, options.timeout as number);
          if (this.#stalled) {
            error.message += `: deadlocked — the kernel's output queue is full and nothing reads it, so it takes no input; read outputs while sending`;
          }
          settle(error);
        }, options.timeout);
      }
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#sends.push(pending);
      void this.flush();
    });
  }

  /**
   * Tracing on: the sampling decision for a message that waits for room. Its span outlives the scratch context,
   * so the envelope gets a copy; a request's span is left for `call` to end.
   */
  #traceQueued(envelope: Envelope): DetachedSpan | undefined {
    const tracer = this.#owner.tracer;
    if (tracer === undefined) return undefined;
    const startNs = tracer.beginMessage(envelope);
    if (startNs < 0) return undefined;
    const span = tracer.detach(startNs);
    envelope.traceId = span.traceId;
    envelope.spanId = span.spanId;
    if ((envelope.flags ?? 0) & FrameFlags.REQUEST) this.#owner.holdRequestSpan(span);
    return span;
  }

  /** Writes the waiting sends, in order, as room comes (one loop at a time), until none is left or the kernel fails. */
  async flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    const owner = this.#owner;
    try {
      while (this.#sends.length > 0 && !owner.failed()) {
        const head = this.#sends[0] as WaitingSend;
        if (owner.tryWrite(head)) {
          this.#sends.shift();
          head.resolve();
          continue;
        }
        if (!(await owner.waitForSpace(alignedFrameSize(head.bytes.length), 100))) this.#checkStall();
      }
    } finally {
      this.#flushing = false;
    }
  }

  /**
   * The waiting sends will never be written: each rejects with `error` and is recorded as a dead letter (its
   * bytes were encoded when it started waiting).
   */
  drop(error: Error, reason: DeadLetterReason): void {
    if (this.#sends.length === 0) return;
    const dropped = this.#sends.splice(0);
    for (const send of dropped) {
      this.#owner.onDeadLetter({
        kernel: this.#owner.name,
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

  /** Withdraws the request `messageId` if it still waits (never written, so never answered). */
  withdraw(messageId: number, error: Error): boolean {
    const waiting = this.#sends.find((send) => send.envelope.messageId === messageId);
    waiting?.reject(error);
    return waiting !== undefined;
  }

  /**
   * Sends have waited for room: is it a deadlock? The kernel, Active, has taken nothing in for {@link STALL_MS}
   * while its output queue is at least half full and nothing on the host reads outputs (no receive, no call):
   * it holds an output for room that only a receive makes, so input never drains and sends wait for ever. Said
   * once per stall, as a warning naming the kernel and counted in `sendStalls`; a send's timeout then says why.
   */
  #checkStall(): void {
    const now = performance.now();
    const received = this.#owner.taken();
    const mark = this.#stallMark;
    if (mark === undefined || mark.received !== received) {
      this.#stallMark = { received, since: now };
      this.#stalled = false;
      return;
    }
    if (this.#stalled || now - mark.since < STALL_MS) return;
    if (!this.#owner.outputsUnread()) return;
    this.#stalled = true;
    this.#stalls++;
    process.emitWarning(
      `kernel '${this.#owner.name}': sends are deadlocked — its input queue is full while its output queue is full and nothing reads it, so the kernel holds and sends wait for ever. Read outputs while sending (for await (const output of handle), or receiveBatch()), or give send a timeout`,
      { type: 'RingKernelWarning', code: 'RK_SEND_DEADLOCK' },
    );
  }
}
