import type { Consumer, JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import type { HostedKernel } from './cluster-ports.js';
import type { ClusterSubjects } from './cluster-subjects.js';
import type { NatsModules } from './nats-modules.js';

/** How long JetStream remembers a `Nats-Msg-Id` to drop a republished duplicate, ms. */
export const DEDUPE_WINDOW_MS = 120_000;
/** How long a delivered batch may stay unacknowledged (its frames not yet handled) before JetStream redelivers it. */
const ACK_WAIT_MS = 5_000;
/** Batches a kernel's consumer holds unacknowledged at most: past it JetStream waits (backpressure). */
const MAX_ACK_PENDING = 1024;
/** How often handled frames are checked against the batches waiting for their acknowledgement, ms. */
const ACK_POLL_MS = 2;

/** Creates (or finds) the cluster's stream of at-least-once traffic: a work queue, stored on disk. */
export async function ensureStream(nats: NatsModules, jsm: JetStreamManager, subjects: ClusterSubjects): Promise<void> {
  const { RetentionPolicy, StorageType } = nats.jetstream;
  const config = {
    name: subjects.stream,
    subjects: [subjects.streamSubjects],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: nats.transport.nanos(DEDUPE_WINDOW_MS),
  };
  try {
    await jsm.streams.info(subjects.stream);
  } catch {
    await jsm.streams.add(config).catch(async (error: unknown) => {
      // Another node created it meanwhile.
      await jsm.streams.info(subjects.stream).catch(() => {
        throw error;
      });
    });
  }
}

/**
 * Takes a kernel's at-least-once traffic off JetStream: a durable consumer per kernel name (so the node that hosts
 * the name next — a restart elsewhere — resumes where this one stopped), batches read in order, each batch's frames
 * written into the kernel's ring (waiting for room: a full ring holds the acknowledgements, and JetStream holds
 * the rest), and each batch acknowledged only once the kernel has handled all of its frames. A batch redelivered
 * while its first delivery is still being handled here is not written twice.
 */
export class DurableInbox {
  readonly #kernel: HostedKernel;
  readonly #deliver: (data: Uint8Array, headers: MsgHdrs | undefined) => Promise<number>;
  readonly #pending: { msg: JsMsg; handledAt: number }[] = [];
  readonly #inFlight = new Set<number>();
  #messages: { stop(): void } | undefined;
  #poll: NodeJS.Timeout | undefined;
  /** Frames this inbox has written into the ring, counted from the kernel's handled total when it started. */
  #written = 0;
  #baseline = 0;
  #closed = false;
  /** The batch being written into the ring now, if any. */
  #delivering: Promise<number> | undefined;

  constructor(kernel: HostedKernel, deliver: (data: Uint8Array, headers: MsgHdrs | undefined) => Promise<number>) {
    this.#kernel = kernel;
    this.#deliver = deliver;
  }

  /**
   * Creates the kernel's durable consumer if needed and starts consuming. `takeOver`: the kernel restarts here after
   * its node died — the consumer is made anew, so that it delivers from the first batch not acknowledged, in stream
   * order: the dead node's unacknowledged batches come first, then those sent meanwhile (the old consumer would hand
   * out the new ones at once and redeliver the old ones only after their acknowledgement wait, out of order).
   */
  async start(
    nats: NatsModules,
    js: JetStreamClient,
    jsm: JetStreamManager,
    subjects: ClusterSubjects,
    takeOver = false,
  ): Promise<void> {
    const name = subjects.consumer(this.#kernel.name);
    const { AckPolicy } = nats.jetstream;
    if (takeOver) await jsm.consumers.delete(subjects.stream, name).catch(() => undefined);
    try {
      await jsm.consumers.info(subjects.stream, name);
    } catch {
      await jsm.consumers.add(subjects.stream, {
        durable_name: name,
        ack_policy: AckPolicy.Explicit,
        filter_subject: subjects.durable(this.#kernel.name),
        ack_wait: nats.transport.nanos(ACK_WAIT_MS),
        max_ack_pending: MAX_ACK_PENDING,
      });
    }
    const consumer: Consumer = await js.consumers.get(subjects.stream, name);
    const handled = this.#handled();
    this.#baseline = handled;
    // Short pull expiries: a consumer whose pull the server forgot (a restart) asks again within a second or two.
    const messages = await consumer.consume({ max_messages: 256, expires: 2000 });
    this.#messages = messages;
    this.#poll = setInterval(() => this.#ackHandled(), ACK_POLL_MS);
    this.#poll.unref();
    void (async () => {
      for await (const msg of messages) {
        if (this.#closed) break;
        const seq = msg.seq;
        if (this.#inFlight.has(seq)) continue; // redelivered while still being handled here: acked with the first
        this.#inFlight.add(seq);
        this.#delivering = this.#deliver(msg.data, msg.headers);
        this.#written += await this.#delivering;
        this.#delivering = undefined;
        this.#pending.push({ msg, handledAt: this.#baseline + this.#written });
        this.#ackHandled();
      }
    })();
  }

  /** Frames the kernel is done with: handled, failed or dropped. */
  #handled(): number {
    const counters = this.#kernel.counters();
    return counters.processed + counters.failed + counters.dropped;
  }

  #ackHandled(): void {
    if (this.#pending.length === 0) return;
    const handled = this.#handled();
    while (this.#pending.length > 0 && (this.#pending[0]?.handledAt ?? 0) <= handled) {
      const done = this.#pending.shift();
      if (done === undefined) break;
      done.msg.ack();
      this.#inFlight.delete(done.msg.seq);
    }
  }

  /**
   * Stops consuming, then waits until the kernel has handled every frame this inbox wrote and acknowledges them
   * (the kernel is about to move: what is not acknowledged goes to its next node). Resolves false when that takes
   * longer than `timeoutMs` (the frames not handled yet stay unacknowledged).
   */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    this.#closed = true;
    this.#messages?.stop();
    await this.#delivering;
    for (;;) {
      this.#ackHandled();
      if (this.#pending.length === 0) break;
      if (performance.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, ACK_POLL_MS));
    }
    if (this.#poll !== undefined) clearInterval(this.#poll);
    return true;
  }

  /** Stops consuming; what is not acknowledged is redelivered to the next consumer of the name. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#poll !== undefined) clearInterval(this.#poll);
    this.#ackHandled();
    this.#messages?.stop();
  }
}
