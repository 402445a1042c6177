import type { JetStreamClient } from '@nats-io/jetstream';
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { ClusterNameUnknownError, ClusterNodeDownError, ClusterUnreachableError } from '../errors/cluster-errors.js';
import { InvalidStateError } from '../errors/runtime-errors.js';
import { TimeoutError } from '../errors/value-errors.js';
import { checkPriority, Priority } from '../kernel/priority.js';
import type { Envelope } from '../wire/envelope.js';
import { FrameFlags } from '../wire/frame-header.js';
import type { FrameView } from '../wire/frame-view.js';
import type { KernelStatusName } from '../wire/kernel-status.js';
import type { MessageCodec } from '../wire/message-schema.js';
import type { CallOptions, KernelRef, KernelRefMetrics, SendOptions } from './cluster-ports.js';
import type { ClusterRegistry } from './cluster-registry.js';
import type { ClusterSubjects } from './cluster-subjects.js';
import { FrameBatchWriter, readFrameBatch } from './frame-batch.js';
import { activeTrace, errorFromFrame, Header } from './remote-frames.js';

const RESOLVED = Promise.resolve();
/** The wait before a request that found nobody listening (a kernel moving between nodes) is asked again, ms. */
const NO_RESPONDERS_RETRY_MS = 10;
/** The statuses of a kernel on its way out: a reference told it ended takes no sends while listed so. */
const ENDED_STATUSES = new Set<string>(['Terminating', 'Terminated', 'Failed']);
/** How much longer than a receive's own timeout its request waits for the node's answer. */
const RECEIVE_MARGIN_MS = 2000;

/** How a node coalesces one-way frames into NATS messages. */
export interface BatchOptions {
  /** Frames per NATS message at most. Default 64. */
  readonly maxFrames?: number;
  /** Bytes per NATS message at most (a frame bigger than this goes alone). Default 65 536. */
  readonly maxBytes?: number;
  /**
   * How long the first frame of a batch may wait for company, in µs. 0 (default): until the end of the current
   * event-loop turn — light traffic goes one frame per message at once, a burst fills batches. Timers have 1 ms
   * granularity, so any value above 0 waits at least 1 ms.
   */
  readonly lingerUs?: number;
}

/** What a remote reference needs from its node. @internal */
export interface RemoteKernelContext {
  readonly nc: NatsConnection;
  readonly subjects: ClusterSubjects;
  readonly registry: ClusterRegistry;
  /** `node#incarnation`: the sender id frames are accounted under. */
  readonly sender: string;
  readonly headers: () => import('@nats-io/transport-node').MsgHdrs;
  readonly batch: Required<BatchOptions>;
  /** A message could not be handed to NATS (the connection is closed): count and dead-letter it. */
  readonly undeliverable: (kernel: string, error: Error, typeId: number, payload: Uint8Array) => void;
  /** JetStream, for kernels registered at-least-once. */
  readonly js: JetStreamClient;
  /** How long an at-least-once batch is retried (the server away) before it is dead-lettered, ms. */
  readonly retryForMs: number;
}

/** Batches an at-least-once sender has handed JetStream and not yet seen stored, at most. */
const MAX_DURABLE_IN_FLIGHT = 256;
/** The wait between two tries of an at-least-once batch whose publish failed, ms. */
const DURABLE_RETRY_MS = 250;

interface DurableBatch {
  readonly bytes: Uint8Array;
  readonly msgId: string;
  readonly headers: MsgHdrs;
  readonly frames: number;
  readonly settled: { resolve(): void; reject(error: Error): void } | undefined;
}

/** Counters of one remote reference. */
export interface RemoteKernelStats {
  /** Messages handed to NATS. */
  readonly sent: number;
  /** NATS messages they travelled in. */
  readonly batches: number;
  /** At-least-once messages JetStream has stored. */
  readonly stored: number;
  /** Messages the hosting node reported lost (at-most-once). */
  readonly lost: number;
  /** Messages the hosting node refused (its queue full, the kernel gone) or found malformed. */
  readonly refused: number;
}

/**
 * A kernel on another node of the cluster, with a local handle's API: `send`/`trySend` coalesce frames into NATS
 * messages (at-most-once: the hosting node counts and reports gaps), `call` is a NATS request carrying one request
 * frame and answered by one response frame with the correlation id kept, `receive` asks the node for the kernel's
 * outputs (several per answer when they are waiting). The active OpenTelemetry span travels in each frame's header
 * and as the message's W3C `traceparent`.
 */
export class RemoteKernel<InIn = unknown, OutView = unknown> implements KernelRef<InIn, OutView> {
  readonly name: string;
  readonly #context: RemoteKernelContext;
  readonly #inputCodec: MessageCodec<InIn, unknown>;
  readonly #outputCodec: MessageCodec<unknown, OutView>;
  readonly #writer = new FrameBatchWriter();
  readonly #envelope: Envelope & { messageId: number } = { messageId: 0 };
  #traceparent: string | undefined;
  #nextSendId = 1;
  #nextCallId = 1;
  #flushScheduled = false;
  readonly #flush = (): void => this.flush();
  readonly #received: OutView[] = [];
  /** At-least-once: the Promise `send` returns for the batch now filling, and the batches waiting for room. */
  #openBatch: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | undefined;
  readonly #backlog: DurableBatch[] = [];
  #durableInFlight = 0;
  #durableSeq = 0;
  #stored = 0;
  #sent = 0;
  #batches = 0;
  #lost = 0;
  #refused = 0;
  /** The registry's entry when the kernel was last seen ending: sends are refused while it is still listed. */
  #endedEntry: object | undefined;
  /** The node that said this kernel ended there (sends refused while the registry shows it ending there). */
  #endedOn: string | undefined;

  /** @internal — from `runtime.ref(name)` or `node.kernel(name)`. */
  constructor(
    name: string,
    inputCodec: MessageCodec<InIn, unknown>,
    outputCodec: MessageCodec<unknown, OutView>,
    context: RemoteKernelContext,
  ) {
    this.name = name;
    this.#inputCodec = inputCodec;
    this.#outputCodec = outputCodec;
    this.#context = context;
  }

  /** The kernel's state as its node last published it (`Terminated` once no node lists it). */
  get status(): KernelStatusName {
    return this.#context.registry.get(this.name)?.status ?? 'Terminated';
  }

  /** The node hosting the kernel now, or undefined when none lists it. */
  get node(): string | undefined {
    return this.#context.registry.get(this.name)?.node;
  }

  /** What this reference sent and what came back about it. */
  stats(): RemoteKernelStats {
    return { sent: this.#sent, batches: this.#batches, stored: this.#stored, lost: this.#lost, refused: this.#refused };
  }

  /** The hosting node reported messages lost or refused. @internal */
  noticed(reason: 'refused' | 'message-lost' | 'malformed-frame', count: number): void {
    if (reason === 'message-lost') this.#lost += count;
    else this.#refused += count;
  }

  /**
   * The kernel ended on `node`, having taken this node's messages up to id `lastId`: every message sent after it
   * (or still waiting to go) is lost. Returns how many (the caller counts them, as a notice). Sends are refused until
   * the registry lists the name again, and a kernel launched under the name counts this node's messages afresh.
   * Durable (at-least-once) sends are JetStream's to redeliver: nothing is counted for them.
   */
  ended(node: string, lastId: number): number {
    if (this.#atLeastOnce()) return 0;
    const entry = this.#context.registry.get(this.name);
    if (entry !== undefined && entry.node !== node) return 0; // already listed elsewhere: a notice from the past
    const lost = Math.max(0, this.#nextSendId - 1 - lastId);
    if (this.#writer.frames > 0) this.#writer.take(); // in `lost`: they would reach nobody, or the next kernel
    this.#endedEntry = entry;
    this.#endedOn = node;
    this.#nextSendId = 1;
    return lost;
  }

  /**
   * Queues a message for the kernel's node: true once it is in this node's outgoing batch (it leaves at the end
   * of the event-loop turn, or when the batch is full). At-most-once: what the other node refuses or never gets
   * is counted and reported back as a dead letter here.
   * @throws {InvalidStateError} when no node hosts the kernel any more.
   */
  trySend(message: InIn, priority: number = Priority.Normal): boolean {
    this.#checkAddressable('send');
    const envelope = this.#envelope;
    envelope.messageId = this.#nextSendId;
    envelope.priority = priority;
    const trace = activeTrace();
    envelope.traceId = trace?.traceId;
    envelope.spanId = trace?.spanId;
    envelope.traceFlags = trace?.flags ?? 0;
    if (trace !== undefined) this.#traceparent ??= trace.traceparent;
    this.#writer.add(this.#inputCodec, message, envelope);
    this.#nextSendId++;
    this.#sent++;
    const batch = this.#context.batch;
    if (this.#writer.frames >= batch.maxFrames || this.#writer.byteLength >= batch.maxBytes) this.flush();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      if (batch.lingerUs > 0) setTimeout(this.#flush, Math.ceil(batch.lingerUs / 1000));
      else setImmediate(this.#flush);
    }
    return true;
  }

  /**
   * {@link RemoteKernel.trySend} as a Promise. At-most-once: resolved at once (the frame is on its way).
   * At-least-once: resolves when JetStream has stored the batch the message travels in (a shared Promise per
   * batch), rejects when it could not be stored within the retry time.
   */
  send(message: InIn, options: SendOptions = {}): Promise<void> {
    try {
      const priority = options.priority === undefined ? Priority.Normal : checkPriority(options.priority);
      if (!this.#atLeastOnce()) {
        this.trySend(message, priority);
        return RESOLVED;
      }
      if (this.#openBatch === undefined) {
        let resolve!: () => void;
        let reject!: (error: Error) => void;
        const promise = new Promise<void>((yes, no) => {
          resolve = yes;
          reject = no;
        });
        this.#openBatch = { promise, resolve, reject };
      }
      const batch = this.#openBatch;
      this.trySend(message, priority);
      return batch.promise;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #atLeastOnce(): boolean {
    return this.#context.registry.get(this.name)?.delivery === 'at-least-once';
  }

  /** Publishes the outgoing batch now (it otherwise leaves at the end of the event-loop turn). */
  flush(): void {
    this.#flushScheduled = false;
    const frames = this.#writer.frames;
    if (frames === 0) return;
    const bytes = this.#writer.take();
    const headers = this.#context.headers();
    headers.set(Header.NODE, this.#context.sender);
    if (this.#traceparent !== undefined) headers.set(Header.TRACEPARENT, this.#traceparent);
    this.#traceparent = undefined;
    if (this.#atLeastOnce()) {
      const settled = this.#openBatch;
      this.#openBatch = undefined;
      this.#backlog.push({ bytes, headers, frames, settled, msgId: `${this.#context.sender}:${++this.#durableSeq}` });
      this.#publishBacklog();
      return;
    }
    try {
      this.#context.nc.publish(this.#context.subjects.input(this.name), bytes, { headers });
      this.#batches++;
    } catch (error) {
      this.#lost += frames;
      this.#context.undeliverable(this.name, error as Error, this.#inputCodec.typeId, bytes);
    }
  }

  /** Hands waiting at-least-once batches to JetStream, up to the in-flight limit. */
  #publishBacklog(): void {
    while (this.#durableInFlight < MAX_DURABLE_IN_FLIGHT && this.#backlog.length > 0) {
      const batch = this.#backlog.shift() as DurableBatch;
      this.#durableInFlight++;
      void this.#publishDurable(batch).finally(() => {
        this.#durableInFlight--;
        this.#publishBacklog();
      });
    }
  }

  /**
   * Publishes one at-least-once batch under its `Nats-Msg-Id`, retrying while the server is away: a retry of a
   * batch the server did store is dropped by JetStream's dedupe window.
   */
  async #publishDurable(batch: DurableBatch): Promise<void> {
    const subject = this.#context.subjects.durable(this.name);
    const deadline = performance.now() + this.#context.retryForMs;
    for (;;) {
      try {
        await this.#context.js.publish(subject, batch.bytes, {
          msgID: batch.msgId,
          headers: batch.headers,
          timeout: 5000,
        });
        this.#batches++;
        this.#stored += batch.frames;
        batch.settled?.resolve();
        return;
      } catch (error) {
        if (performance.now() >= deadline || this.#context.nc.isClosed()) {
          this.#lost += batch.frames;
          this.#context.undeliverable(this.name, error as Error, this.#inputCodec.typeId, batch.bytes);
          batch.settled?.reject(error as Error);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, DURABLE_RETRY_MS));
      }
    }
  }

  /** Resolves when every at-least-once batch sent so far is stored (or given up). */
  async settled(): Promise<void> {
    this.flush();
    while (this.#durableInFlight > 0 || this.#backlog.length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /**
   * Sends a request and resolves with the kernel's response, matched by correlation id. Rejects within its
   * timeout however the other node fails.
   * @throws {TimeoutError} after `timeout` ms (default 30 s); `ClusterNodeDownError` when the hosting node
   * stopped heart-beating or no node answers for the name; `ClusterNameUnknownError` when no node hosts it;
   * the kernel's own error (`HandlerFailedError`'s code RK_HANDLER_FAILED…) when it failed the request.
   */
  async call(request: InIn, options: CallOptions = {}): Promise<OutView> {
    const breaker = options.breaker;
    if (breaker !== undefined) {
      const { breaker: _guarded, ...rest } = options;
      return breaker.execute(() => this.call(request, rest));
    }
    const timeout = options.timeout ?? 30_000;
    const priority = options.priority === undefined ? Priority.Normal : checkPriority(options.priority);
    this.#checkAddressable('call');
    // The sends before this call go first: the node then sees them in order (one connection keeps its order).
    this.flush();
    const id = this.#nextCallId++;
    const writer = new FrameBatchWriter({ initialBytes: 256 });
    const trace = activeTrace();
    writer.add(this.#inputCodec, request, {
      messageId: id,
      priority,
      flags: FrameFlags.REQUEST,
      traceId: trace?.traceId,
      spanId: trace?.spanId,
      traceFlags: trace?.flags ?? 0,
    });
    const headers = this.#context.headers();
    headers.set(Header.NODE, this.#context.sender);
    headers.set(Header.TIMEOUT, String(timeout));
    if (trace !== undefined) headers.set(Header.TRACEPARENT, trace.traceparent);
    const node = this.node;
    const pending = this.#request(this.#context.subjects.call(this.name), writer.take(), { timeout, headers });
    const signal = options.signal;
    const reply = await (signal === undefined
      ? pending
      : Promise.race([
          pending,
          new Promise<never>((_, reject) => {
            if (signal.aborted) reject(signal.reason);
            signal.addEventListener('abort', () => reject(signal.reason), { once: true });
          }),
        ])
    ).catch((error: unknown) => {
      throw this.#requestError(error, 'call', timeout, node);
    });
    let response: FrameView | undefined;
    readFrameBatch(
      reply.data,
      (frame) => {
        response ??= frame.copy();
      },
      () => undefined,
    );
    if (response === undefined || response.correlationId !== id) {
      throw new ClusterNodeDownError(this.name, node, `answered call ${id} with no matching response frame`);
    }
    if (response.flags & FrameFlags.ERROR) throw errorFromFrame(response);
    return response.decode(this.#outputCodec);
  }

  /** The next output already fetched from the kernel's node, or undefined (never waits: use `receive`). */
  tryReceive(): OutView | undefined {
    return this.#received.shift();
  }

  /**
   * Waits for the kernel's next output that answers no call, asking its node (which sends every output waiting,
   * up to 64, in one answer).
   * @throws {TimeoutError} after `timeout` ms (default 30 s); `ClusterNodeDownError` when its node is gone.
   */
  async receive(timeout = 30_000): Promise<OutView> {
    const ready = this.#received.shift();
    if (ready !== undefined) return ready;
    this.#checkAddressable('receive from');
    const node = this.node;
    const reply = await this.#request(this.#context.subjects.outputs(this.name), JSON.stringify({ max: 64, timeout }), {
      timeout: timeout + RECEIVE_MARGIN_MS,
    }).catch((error: unknown) => {
      throw this.#requestError(error, 'receive', timeout, node);
    });
    let failure: Error | undefined;
    readFrameBatch(
      reply.data,
      (frame) => {
        if (frame.flags & FrameFlags.ERROR) failure = errorFromFrame(frame);
        else this.#received.push(frame.copy().decode(this.#outputCodec));
      },
      () => undefined,
    );
    const first = this.#received.shift();
    if (first !== undefined) return first;
    throw failure ?? new TimeoutError(`receive from kernel '${this.name}'`, timeout);
  }

  /** The kernel's metrics, asked of its node. */
  async metrics(): Promise<KernelRefMetrics> {
    this.#checkAddressable('read metrics of');
    const node = this.node;
    const reply = await this.#request(this.#context.subjects.control(this.name), '', { timeout: 5000 }).catch(
      (error: unknown) => {
        throw this.#requestError(error, 'metrics', 5000, node);
      },
    );
    return (reply.json() as { metrics: KernelRefMetrics }).metrics;
  }

  /**
   * A NATS request to the kernel's node. Nobody listening while the registry still lists the kernel is a moment
   * of its move between nodes (the old node let go, the new one not yet listening): asked again shortly, within
   * the request's timeout — the request reached nobody, so it cannot be handled twice.
   */
  async #request(
    subject: string,
    data: Uint8Array | string,
    options: { timeout: number; headers?: MsgHdrs },
  ): Promise<import('@nats-io/transport-node').Msg> {
    const end = performance.now() + options.timeout;
    for (;;) {
      try {
        return await this.#context.nc.request(subject, data, options);
      } catch (error) {
        const left = end - performance.now();
        if (!causeNames(error).has('NoRespondersError') || left < NO_RESPONDERS_RETRY_MS * 2) throw error;
        if (this.#context.registry.get(this.name) === undefined) throw error;
        await new Promise((resolve) => setTimeout(resolve, NO_RESPONDERS_RETRY_MS));
        options = { ...options, timeout: Math.floor(left - NO_RESPONDERS_RETRY_MS) };
      }
    }
  }

  #checkAddressable(operation: string): void {
    const entry = this.#context.registry.get(this.name);
    // Ended: the entry this node had when told so, or one the ended kernel's node wrote later with its last
    // status (a heartbeat's re-listing that reached this copy after the notice) — what is sent while that entry is
    // here would reach nobody, uncounted. A kernel launched there again under the name is listed Launched or Active.
    if (
      entry === undefined ||
      entry === this.#endedEntry ||
      (entry.node === this.#endedOn && ENDED_STATUSES.has(entry.status))
    ) {
      throw new InvalidStateError(this.name, operation, 'Terminated', 'Active');
    }
  }

  /** A NATS request's failure as ringkernel's error: the node is gone, the name unknown, or a plain timeout. */
  #requestError(error: unknown, operation: string, timeout: number, node: string | undefined): Error {
    const names = causeNames(error);
    const entry = this.#context.registry.get(this.name);
    if (names.has('NoRespondersError')) {
      if (entry === undefined) return new ClusterNameUnknownError(this.name, this.#context.subjects.cluster);
      return new ClusterNodeDownError(this.name, entry.node, `no node answers ${operation} for it`, { cause: error });
    }
    if (names.has('TimeoutError')) {
      if (node !== undefined && !this.#context.registry.isAlive(node)) {
        return new ClusterNodeDownError(this.name, node, `its node stopped heart-beating during ${operation}`, {
          cause: error,
        });
      }
      return new TimeoutError(`${operation} to kernel '${this.name}'`, timeout);
    }
    if (names.has('ClosedConnectionError') || names.has('DrainingConnectionError')) {
      return new ClusterUnreachableError([], `the connection is closed (${operation})`, { cause: error });
    }
    return error instanceof Error ? error : new Error(String(error));
  }
}

function causeNames(error: unknown): Set<string> {
  const names = new Set<string>();
  for (let e = error as { name?: string; cause?: unknown } | undefined; e !== undefined && e !== null; ) {
    if (typeof e.name === 'string') names.add(e.name);
    if (e.cause === e) break;
    e = e.cause as { name?: string; cause?: unknown } | undefined;
  }
  return names;
}
