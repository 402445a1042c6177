import type { MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { SpanContext } from '@opentelemetry/api';
import { ClusterMessageLostError } from '../errors/cluster-errors.js';
import { ErrorCode } from '../errors/codes.js';
import type { MalformedFrameError } from '../errors/frame-errors.js';
import type { RingKernelError } from '../errors/ringkernel-error.js';
import { MessageTypeMismatchError } from '../errors/value-errors.js';
import type { DeadLetterReason } from '../executor/protocol.js';
import { FrameFlags } from '../wire/frame-header.js';
import type { FrameView } from '../wire/frame-view.js';
import type { ClusterRuntimePort, HostedKernel } from './cluster-ports.js';
import type { ClusterSubjects } from './cluster-subjects.js';
import { FrameBatchWriter, readFrameBatch } from './frame-batch.js';
import { type HeldMessage, handOverOrder } from './hand-over.js';
import {
  contextFromFrame,
  contextFromTraceparent,
  ErrorPayload,
  errorEnvelope,
  errorPayload,
  Header,
  withRemoteParent,
} from './remote-frames.js';

/** The queue group every node serves kernels in: a name served by two nodes for a moment gets each message once. */
const QUEUE = 'rk';
/** Codes with which a kernel refuses a message it then dead-letters itself. */
const KERNEL_REFUSALS = new Set<string>([
  ErrorCode.InvalidState,
  ErrorCode.KernelFailed,
  ErrorCode.LoadShed,
  ErrorCode.NotAcceptingWork,
  ErrorCode.RuntimeShutDown,
]);
/** Outputs a node sends per answer to a receive, at most. */
const MAX_OUTPUTS_PER_ANSWER = 256;

/** What a node sends a sender about frames it refused or found missing. */
export interface DeliveryNotice {
  readonly kernel: string;
  readonly reason: 'refused' | 'message-lost' | 'malformed-frame';
  /** How many messages. */
  readonly count: number;
  /** The error, with its RK_* code. */
  readonly error: { readonly name: string; readonly code: string | undefined; readonly message: string };
}

/**
 * A kernel of the publishing node has ended and its subjects are let go: what each sender (`node#incarnation`) sent
 * past `lastIds[sender]` (0: nothing of its arrived) was never taken, and nobody will take it.
 */
export interface KernelEndedNotice {
  readonly kernel: string;
  readonly node: string;
  readonly lastIds: Readonly<Record<string, number>>;
}

/** Counters of what a node's kernel host did. */
export interface KernelHostStats {
  /** Frames that arrived from other nodes and went into a local ring. */
  readonly delivered: number;
  /** Frames refused for a full queue. */
  readonly refused: number;
  /** At-most-once messages found missing (gaps in a sender's message ids). */
  readonly lost: number;
  /** Malformed frames and batches (a foreign publisher, a damaged message). */
  readonly malformed: number;
  /** Calls served. */
  readonly calls: number;
}

/** The last message id seen from one sender: looked up once per batch, updated per frame. */
interface SenderIds {
  last: number;
}

/** The span a frame's delivery runs under: the sender's own (in the frame) or the batch's (in its headers). */
function parentOf(frame: FrameView, batchParent: SpanContext | undefined): SpanContext | undefined {
  return frame.traceFlags & 1 ? (contextFromFrame(frame) ?? batchParent) : batchParent;
}

interface Served {
  readonly kernel: HostedKernel;
  readonly subscriptions: Subscription[];
  /** The last message id seen from each sender (loss accounting). */
  readonly lastIds: Map<string, SenderIds>;
  /** While the kernel moves between nodes: one-way batches and calls kept in arrival order, not yet handled. */
  held: HeldMessage[] | undefined;
  /** Calls handed to the kernel and not answered yet, and sends waiting for room: a move waits for both. */
  busy: number;
  /** Outputs carried from the kernel's previous node, answered before the kernel's own. */
  carried: unknown[];
  /** Whether its outputs and control subjects are taken (not while it arrives from another node). */
  queries: boolean;
}

/**
 * Serves this node's named kernels to the cluster: one-way frames into their rings, calls as request/reply with
 * the correlation id kept, outputs on request, status and metrics. Every frame from the network is checked first;
 * a malformed one is a typed error and a dead letter, never a crash; a refused or missing message is counted,
 * dead-lettered here and reported to its sender.
 */
export class KernelHost {
  readonly #nc: NatsConnection;
  readonly #subjects: ClusterSubjects;
  readonly #runtime: ClusterRuntimePort;
  readonly #node: string;
  readonly #served = new Map<string, Served>();
  readonly #writer = new FrameBatchWriter();
  #replyIds = 1;
  #delivered = 0;
  #refused = 0;
  #lost = 0;
  #malformed = 0;
  #calls = 0;

  constructor(nc: NatsConnection, subjects: ClusterSubjects, runtime: ClusterRuntimePort, node: string) {
    this.#nc = nc;
    this.#subjects = subjects;
    this.#runtime = runtime;
    this.#node = node;
  }

  /** What the host did so far. */
  stats(): KernelHostStats {
    return {
      delivered: this.#delivered,
      refused: this.#refused,
      lost: this.#lost,
      malformed: this.#malformed,
      calls: this.#calls,
    };
  }

  /** Whether the host serves `name`. */
  serves(name: string): boolean {
    return this.#served.has(name);
  }

  /**
   * Starts serving a kernel. `arriving`: the kernel is moving here from another node — its one-way and call
   * subjects are taken in a queue group of their own (so that, until the old node lets go, both nodes get every
   * message) and held, and outputs and control wait for {@link KernelHost.arrive}.
   */
  serve(kernel: HostedKernel, arriving?: { readonly group: string }): void {
    if (this.#served.has(kernel.name)) return;
    const served: Served = {
      kernel,
      subscriptions: [],
      lastIds: new Map(),
      held: arriving === undefined ? undefined : [],
      busy: 0,
      carried: [],
      queries: false,
    };
    const s = this.#subjects;
    const queue = arriving?.group ?? QUEUE;
    this.#subscribe(served, s.input(kernel.name), queue, (msg) => this.#input(served, msg));
    this.#subscribe(served, s.call(kernel.name), queue, (msg) => void this.#call(served, msg));
    if (arriving === undefined) this.#serveQueries(served);
    this.#served.set(kernel.name, served);
  }

  #subscribe(served: Served, subject: string, queue: string, handle: (msg: Msg) => void): void {
    served.subscriptions.push(
      this.#nc.subscribe(subject, {
        queue,
        callback: (error, msg) => {
          if (error === null) handle(msg);
        },
      }),
    );
  }

  #serveQueries(served: Served): void {
    if (served.queries) return;
    served.queries = true;
    const name = served.kernel.name;
    this.#subscribe(served, this.#subjects.outputs(name), QUEUE, (msg) => void this.#outputs(served, msg));
    this.#subscribe(served, this.#subjects.control(name), QUEUE, (msg) => this.#control(served, msg));
  }

  /** From now on, one-way batches and calls for `name` are held in arrival order (its kernel is about to move). */
  hold(name: string): void {
    const served = this.#served.get(name);
    if (served !== undefined) served.held ??= [];
  }

  /** Whether no call to `name` awaits its answer and no send to it waits for room. */
  idle(name: string): boolean {
    return (this.#served.get(name)?.busy ?? 0) === 0;
  }

  /**
   * The kernel moved away: stops taking its subjects (every message the server sent before that is taken, into the
   * held list) and forgets it without telling senders it ended. Returns what was held and the last message id
   * taken from each sender before the hold.
   */
  async letGo(name: string): Promise<{ held: HeldMessage[]; lastIds: Record<string, number> }> {
    const served = this.#served.get(name);
    if (served === undefined) return { held: [], lastIds: {} };
    served.held ??= [];
    await Promise.all(served.subscriptions.map((subscription) => subscription.drain().catch(() => undefined)));
    this.#served.delete(name);
    const lastIds: Record<string, number> = {};
    for (const [sender, ids] of served.lastIds) lastIds[sender] = ids.last;
    return { held: served.held, lastIds };
  }

  /**
   * Ends a hold: what the kernel's previous node held (`from`, with the ids it had taken from each sender) is
   * handled, and what was held here that is not a copy of it (both nodes got every message while both listened),
   * each where its sender sent it (see {@link handOverOrder}); outputs and control are served from now on. Without
   * `from`: a move given up at the source, whose held messages are handled here in order.
   */
  release(
    name: string,
    from?: {
      readonly held: readonly HeldMessage[];
      readonly lastIds: Readonly<Record<string, number>>;
      outputs: unknown[];
    },
  ): void {
    const served = this.#served.get(name);
    if (served?.held === undefined) return;
    const own = served.held;
    served.held = undefined;
    if (from !== undefined) {
      for (const [sender, last] of Object.entries(from.lastIds)) served.lastIds.set(sender, { last });
      served.carried.push(...from.outputs);
    }
    const lastTaken: Record<string, number> = {};
    for (const [sender, ids] of served.lastIds) lastTaken[sender] = ids.last;
    for (const held of handOverOrder(from?.held ?? [], own, lastTaken)) this.#handleHeld(served, held);
    this.#serveQueries(served);
  }

  /**
   * A move given up at its target: stops taking the kernel's subjects and forgets it; what was held here is
   * dropped (the source took every message too, and handles them).
   */
  async giveUp(name: string): Promise<void> {
    const served = this.#served.get(name);
    if (served === undefined) return;
    this.#served.delete(name);
    await Promise.all(served.subscriptions.map((subscription) => subscription.drain().catch(() => undefined)));
  }

  #handleHeld(served: Served, held: HeldMessage): void {
    const msg = heldMsg(held, (data) => {
      if (held.reply !== undefined) this.#nc.publish(held.reply, data);
    });
    if (held.kind === 'input') this.#input(served, msg);
    else void this.#call(served, msg);
  }

  /**
   * Stops serving a kernel, and tells every node the last message it took from each of their senders: core NATS
   * drops what is published to a subject nobody listens to without a word, so the senders count what they sent
   * after that themselves (at-most-once: lost, counted, dead-lettered there).
   */
  unserve(name: string): void {
    const served = this.#served.get(name);
    if (served === undefined) return;
    this.#served.delete(name);
    // Synchronous: no callback of these subscriptions runs after this, so the ids below are final.
    for (const subscription of served.subscriptions) subscription.unsubscribe();
    const lastIds: Record<string, number> = {};
    for (const [sender, ids] of served.lastIds) lastIds[sender] = ids.last;
    const notice: KernelEndedNotice = { kernel: name, node: this.#node, lastIds };
    try {
      this.#nc.publish(this.#subjects.ended, JSON.stringify(notice));
    } catch {
      // The connection is closing: senders find the name gone from the registry.
    }
  }

  /** Stops serving every kernel. */
  close(): void {
    for (const name of [...this.#served.keys()]) this.unserve(name);
  }

  #input(served: Served, msg: Msg): void {
    if (served.held !== undefined) {
      served.held.push(heldOf('input', msg));
      return;
    }
    const sender = msg.headers?.get(Header.NODE) ?? '';
    const batchParent = contextFromTraceparent(msg.headers?.get(Header.TRACEPARENT));
    const ids = this.#senderIds(served, sender);
    // The batch's frames go into the ring one by one, and the kernel is woken once, after the last.
    served.kernel.burst(() =>
      readFrameBatch(
        msg.data,
        (frame) => this.#deliver(served, frame, sender, batchParent, ids),
        (error) => this.#badFrame(served, error, sender),
      ),
    );
  }

  #deliver(
    served: Served,
    frame: FrameView,
    sender: string,
    batchParent: SpanContext | undefined,
    ids: SenderIds | undefined,
  ): void {
    if (ids !== undefined) this.#account(served, frame.messageId, sender, ids);
    if (!this.#accepts(served, frame, sender)) return;
    const parent = parentOf(frame, batchParent);
    const sent = this.#tryWrite(served, frame, sender, parent);
    if (sent === undefined) return;
    if (sent) {
      this.#delivered++;
      return;
    }
    // The ring is full: the kernel's onFull decides — wait in order (send copies the bytes now), or refuse.
    const value = frame.decode(served.kernel.inputCodec);
    const payload = frame.payload.slice();
    const messageId = frame.messageId;
    const typeId = frame.typeId;
    const priority = frame.priority;
    served.busy++;
    withRemoteParent(parent, () => served.kernel.send(value, { priority })).then(
      () => {
        served.busy--;
        this.#delivered++;
      },
      (error: Error) => {
        served.busy--;
        // A send still waiting when the kernel ended was dead-lettered by the kernel itself: told, not lettered again.
        if (refusedByKernel(error)) this.#toldRefused(served, error, sender);
        else this.#refuse(served, error, sender, undefined, { messageId, typeId, payload });
      },
    );
  }

  /**
   * Writes a checked frame's payload into the kernel's ring as it came (it is already the kernel's input type: no
   * decode, no re-encode), under the sender's span. True when written, false when the ring is full, undefined when
   * the kernel refused it (dead-lettered, and reported to the sender).
   */
  #tryWrite(served: Served, frame: FrameView, sender: string, parent: SpanContext | undefined): boolean | undefined {
    const kernel = served.kernel;
    const priority = frame.priority;
    try {
      // No closure for the common case of a frame sent outside any span.
      return parent === undefined
        ? kernel.trySendEncoded(frame.payload, priority)
        : withRemoteParent(parent, () => kernel.trySendEncoded(frame.payload, priority));
    } catch (error) {
      this.#refusedHere(served, error as Error, sender, frame);
      return undefined;
    }
  }

  /**
   * Whether the frame is the served kernel's message — its type id, and its size by the codec's `checkSize` (no
   * view is built for a frame that goes into the ring as it came); else it is dead-lettered as a bad frame.
   */
  #accepts(served: Served, frame: FrameView, sender: string): boolean {
    const codec = served.kernel.inputCodec;
    try {
      if (frame.typeId !== codec.typeId) {
        throw new MessageTypeMismatchError(codec.name, `type id ${frame.typeId}, expected ${codec.typeId}`);
      }
      if (codec.checkSize === undefined) frame.decode(codec);
      else codec.checkSize(frame.payloadSize);
      return true;
    } catch (error) {
      this.#badFrame(served, error as RingKernelError, sender, frame);
      return false;
    }
  }

  /**
   * Writes an at-least-once batch's frames into the kernel's ring, waiting for room whatever the kernel's `onFull`
   * (the batch's acknowledgement waits with it, and JetStream holds the rest). Resolves with the frames written.
   */
  async deliverDurable(name: string, data: Uint8Array, headers: MsgHdrs | undefined): Promise<number> {
    const served = this.#served.get(name);
    if (served === undefined) return 0;
    const kernel = served.kernel;
    const sender = headers?.get(Header.NODE) ?? '';
    const batchParent = contextFromTraceparent(headers?.get(Header.TRACEPARENT));
    const waits: Promise<boolean>[] = [];
    let written = 0;
    readFrameBatch(
      data,
      (frame) => {
        if (!this.#accepts(served, frame, sender)) return;
        const parent = parentOf(frame, batchParent);
        if (waits.length === 0) {
          const sent = this.#tryWrite(served, frame, sender, parent);
          if (sent === undefined) return;
          if (sent) {
            written++;
            this.#delivered++;
            return;
          }
        }
        const priority = frame.priority;
        const value = frame.decode(kernel.inputCodec);
        waits.push(
          withRemoteParent(parent, () => kernel.send(value, { priority, onFull: 'wait' })).then(
            () => true,
            () => false,
          ),
        );
      },
      (error) => this.#badFrame(served, error, sender),
    );
    for (const wait of waits) {
      if (await wait) {
        written++;
        this.#delivered++;
      }
    }
    return written;
  }

  /**
   * The kernel threw on a frame: refused it (gone, shedding load, not accepting work — the kernel dead-lettered
   * it itself) or could not take its value (a dead letter here). Either way the sender is told.
   */
  #refusedHere(served: Served, error: Error, sender: string, frame: FrameView): void {
    if (refusedByKernel(error)) this.#toldRefused(served, error, sender);
    else this.#badFrame(served, error, sender, frame);
  }

  /** A refusal the kernel dead-lettered itself: counted, and its sender told. */
  #toldRefused(served: Served, error: Error, sender: string): void {
    this.#refused++;
    this.#notify(sender, { kernel: served.kernel.name, reason: 'refused', count: 1, error: serialize(error) });
  }

  /** The ids seen from `sender` (none for a publisher that does not say who it is: no loss accounting then). */
  #senderIds(served: Served, sender: string): SenderIds | undefined {
    if (sender === '') return undefined;
    let ids = served.lastIds.get(sender);
    if (ids === undefined) {
      ids = { last: 0 };
      served.lastIds.set(sender, ids);
    }
    return ids;
  }

  /** Loss accounting: ids from one sender incarnation rise by one; a gap is messages lost on the way. */
  #account(served: Served, messageId: number, sender: string, ids: SenderIds): void {
    const last = ids.last;
    ids.last = messageId;
    if (messageId <= last + 1) return;
    const lost = messageId - last - 1;
    this.#lost += lost;
    const error = new ClusterMessageLostError(
      served.kernel.name,
      lost,
      `message ids ${last + 1}…${messageId - 1} from ${sender} never arrived (at-most-once delivery)`,
    );
    this.#letter(served, 'message-lost', error, {
      messageId: last + 1,
      typeId: served.kernel.inputCodec.typeId,
      payload: new Uint8Array(0),
    });
    this.#notify(sender, { kernel: served.kernel.name, reason: 'message-lost', count: lost, error: serialize(error) });
  }

  #badFrame(served: Served, error: Error, sender: string, frame?: FrameView): void {
    this.#malformed++;
    const bytes = (error as Partial<MalformedFrameError>).bytes;
    this.#letter(served, 'malformed-frame', error, {
      messageId: frame?.messageId ?? 0,
      typeId: frame?.typeId ?? 0,
      payload: frame !== undefined ? frame.payload.slice() : (bytes ?? new Uint8Array(0)),
    });
    this.#notify(sender, { kernel: served.kernel.name, reason: 'malformed-frame', count: 1, error: serialize(error) });
  }

  #refuse(
    served: Served,
    error: Error,
    sender: string,
    frame?: FrameView,
    copy?: { messageId: number; typeId: number; payload: Uint8Array },
  ): void {
    this.#refused++;
    const what = copy ?? {
      messageId: frame?.messageId ?? 0,
      typeId: frame?.typeId ?? 0,
      payload: frame?.payload.slice() ?? new Uint8Array(0),
    };
    this.#letter(served, 'queue-full', error, what);
    this.#notify(sender, { kernel: served.kernel.name, reason: 'refused', count: 1, error: serialize(error) });
  }

  #letter(
    served: Served,
    reason: DeadLetterReason,
    error: Error,
    what: { messageId: number; typeId: number; payload: Uint8Array },
  ): void {
    this.#runtime.deadLetter({
      kernel: served.kernel.name,
      reason,
      error: serialize(error),
      messageId: what.messageId,
      correlationId: 0,
      typeId: what.typeId,
      payload: what.payload,
      at: new Date(),
    });
  }

  #notify(sender: string, notice: DeliveryNotice): void {
    if (sender === '') return; // a foreign publisher: nobody to tell
    // The sender header is `node#incarnation`: notices go to the node.
    const node = sender.split('#')[0] as string;
    try {
      this.#nc.publish(this.#subjects.notices(node), JSON.stringify(notice));
    } catch {
      // The connection is closing: the local dead letter stands.
    }
  }

  async #call(served: Served, msg: Msg): Promise<void> {
    if (served.held !== undefined) {
      served.held.push(heldOf('call', msg));
      return;
    }
    this.#calls++;
    const kernel = served.kernel;
    const sender = msg.headers?.get(Header.NODE) ?? '';
    let request: FrameView | undefined;
    readFrameBatch(
      msg.data,
      (frame) => {
        request ??= frame.copy();
      },
      (error) => this.#badFrame(served, error, sender),
    );
    const writer = this.#writer;
    const respond = (): void => {
      try {
        msg.respond(writer.take());
      } catch {
        // The connection is closing: the caller times out.
      }
    };
    if (request === undefined || !(request.flags & FrameFlags.REQUEST) || request.typeId !== kernel.inputCodec.typeId) {
      const error =
        request === undefined
          ? new MessageTypeMismatchError(kernel.inputCodec.name, 'a call without a well-formed request frame')
          : new MessageTypeMismatchError(
              kernel.inputCodec.name,
              `type id ${request.typeId}, expected ${kernel.inputCodec.typeId}`,
            );
      if (request !== undefined) this.#badFrame(served, error, sender, request);
      writer.add(ErrorPayload, errorPayload(error), errorEnvelope(this.#replyIds++, request?.messageId ?? 0));
      respond();
      return;
    }
    const timeout = Number(msg.headers?.get(Header.TIMEOUT) ?? '') || 30_000;
    const requestId = request.messageId;
    const parent = contextFromFrame(request) ?? contextFromTraceparent(msg.headers?.get(Header.TRACEPARENT));
    served.busy++;
    try {
      const value = request.decode(kernel.inputCodec);
      const response = await withRemoteParent(parent, () =>
        kernel.call(value, { timeout, priority: request?.priority ?? 0 }),
      ).finally(() => served.busy--);
      writer.add(kernel.outputCodec, response, {
        messageId: this.#replyIds++,
        correlationId: requestId,
        flags: FrameFlags.RESPONSE,
      });
    } catch (error) {
      writer.add(ErrorPayload, errorPayload(error), errorEnvelope(this.#replyIds++, requestId));
    }
    respond();
  }

  async #outputs(served: Served, msg: Msg): Promise<void> {
    const kernel = served.kernel;
    let asked: { max?: number; timeout?: number } = {};
    try {
      asked = JSON.parse(new TextDecoder().decode(msg.data));
    } catch {
      // defaults
    }
    const max = Math.min(Math.max(1, Math.floor(asked.max ?? 64)), MAX_OUTPUTS_PER_ANSWER);
    const timeout = Math.max(0, Math.floor(asked.timeout ?? 0));
    const outputs: unknown[] = [];
    const writer = this.#writer;
    const take = (): void => {
      while (outputs.length < max && served.carried.length > 0) outputs.push(served.carried.shift());
      while (outputs.length < max) {
        const out = kernel.tryReceive();
        if (out === undefined) return;
        outputs.push(out);
      }
    };
    try {
      take();
      if (outputs.length === 0 && timeout > 0) {
        outputs.push(await kernel.receive(timeout));
        take();
      }
      for (const out of outputs) writer.add(kernel.outputCodec, out, { messageId: this.#replyIds++ });
    } catch (error) {
      for (const out of outputs) writer.add(kernel.outputCodec, out, { messageId: this.#replyIds++ });
      writer.add(ErrorPayload, errorPayload(error), errorEnvelope(this.#replyIds++, 0));
    }
    try {
      msg.respond(writer.take());
    } catch {
      // The connection is closing.
    }
  }

  #control(served: Served, msg: Msg): void {
    const kernel = served.kernel;
    try {
      msg.respond(JSON.stringify({ node: this.#node, status: kernel.status, metrics: kernel.metrics() }));
    } catch {
      // The connection is closing.
    }
  }
}

/** The part of a NATS message the host reads. */
interface Msg {
  readonly data: Uint8Array;
  readonly headers?: MsgHdrs | undefined;
  readonly reply?: string | undefined;
  respond(data?: Uint8Array | string): boolean;
}

/** Whether the kernel refused a message with `error` and dead-lettered it itself. */
function refusedByKernel(error: Error): boolean {
  const code = (error as { code?: string }).code;
  return code !== undefined && KERNEL_REFUSALS.has(code);
}

function serialize(error: Error): { name: string; code: string | undefined; message: string } {
  return { name: error.name, code: (error as { code?: string }).code, message: error.message };
}

/** A held message as the host reads it again: its bytes, its headers, and an answer that goes to its reply. */
function heldMsg(held: HeldMessage, respond: (data: Uint8Array) => void): Msg {
  return {
    data: held.data,
    headers: { get: (key: string) => held.headers[key] ?? '' } as MsgHdrs,
    respond: (data?: Uint8Array | string) => {
      respond(typeof data === 'string' ? new TextEncoder().encode(data) : (data ?? new Uint8Array(0)));
      return true;
    },
  };
}

/** The headers the host reads, kept with a held message. */
const HELD_HEADERS = [Header.NODE, Header.TRACEPARENT, Header.TIMEOUT] as const;

function heldOf(kind: HeldMessage['kind'], msg: Msg): HeldMessage {
  const headers: Record<string, string> = {};
  for (const key of HELD_HEADERS) {
    const value = msg.headers?.get(key);
    if (value) headers[key] = value;
  }
  // Copied: the client may reuse the buffer the message was read from.
  return { kind, data: msg.data.slice(), headers, ...(msg.reply ? { reply: msg.reply } : {}) };
}
