import { MessageChannel, type MessagePort, type TransferListItem } from 'node:worker_threads';

/**
 * One end of a kernel's control port, as the host and the executor use it: a MessagePort (a device thread's
 * kernels each have one), or a kernel's share of its worker's control line (CPU workers).
 */
export interface ControlPort {
  postMessage(message: unknown, transfer?: readonly TransferListItem[]): void;
  // biome-ignore lint/suspicious/noExplicitAny: a port carries whatever its peer posts, as MessagePort types it.
  on(event: 'message' | 'close', listener: (message: any) => void): unknown;
  // biome-ignore lint/suspicious/noExplicitAny: as above.
  once(event: 'message' | 'close', listener: (message: any) => void): unknown;
  // biome-ignore lint/suspicious/noExplicitAny: as above.
  off(event: 'message' | 'close', listener: (message: any) => void): unknown;
  /** Closes both ends: each emits `close`, and nothing posted afterwards arrives. */
  close(): void;
  /** Keeps the process alive while this end waits (a MessagePort's ref). */
  ref(): void;
  unref(): void;
}

/**
 * What crosses a control line: a message for (or from) one kernel, by its key, or the news that its end closed.
 * The key is the host's, unique among its runtime's kernels, one per kernel instance.
 */
export interface LineMessage {
  readonly kernel: number;
  readonly message?: unknown;
  readonly closed?: true;
}

type Listener = (message: unknown) => void;

/**
 * A kernel's end of a control line: a {@link ControlPort} whose messages travel on a line shared by every kernel
 * of one worker thread, tagged with the kernel's key. Listeners are kept in plain arrays (a few per kernel).
 */
export class LinePort implements ControlPort {
  readonly key: number;
  /** The host's: the worker thread the kernel was attached on (undefined until its attach returns). @internal */
  threadId: number | undefined;
  /** The host's: whether the port asked to be ref'd (the line is ref'd while any of its ports is). @internal */
  refd = false;
  readonly #line: LineEnds;
  #onMessage: Listener[] = [];
  #onClose: Listener[] = [];
  #closed = false;
  /**
   * Messages that arrived before the first `message` listener (or while the first delivery is scheduled), in
   * order — as a MessagePort queues them until started: a kernel's first reports may reach the host before its
   * attach result does. Undefined once messages flow.
   */
  #queued: unknown[] | undefined = [];
  /** The port closed before anyone listened for it: the first `close` listener still hears of it. */
  #closeUnheard = false;

  constructor(key: number, line: LineEnds) {
    this.key = key;
    this.#line = line;
  }

  postMessage(message: unknown, transfer?: readonly TransferListItem[]): void {
    if (this.#closed) return; // as a closed MessagePort: dropped
    this.#line.send(this, { kernel: this.key, message }, transfer);
  }

  /** As MessagePort: a first `message` listener refs the port (the last one's removal unrefs it). */
  on(event: 'message' | 'close', listener: Listener): this {
    if (event === 'message') {
      if (this.#onMessage.length === 0) {
        this.ref();
        if (this.#queued !== undefined && this.#onMessage.length === 0) setImmediate(() => this.#flush());
      }
      this.#onMessage = [...this.#onMessage, listener];
    } else {
      this.#onClose = [...this.#onClose, listener];
      if (this.#closeUnheard) {
        this.#closeUnheard = false;
        setImmediate(() => this.#emitClose());
      }
    }
    return this;
  }

  once(event: 'message' | 'close', listener: Listener): this {
    const once = (message: unknown): void => {
      this.off(event, once);
      listener(message);
    };
    (once as { listener?: Listener }).listener = listener;
    return this.on(event, once);
  }

  off(event: 'message' | 'close', listener: Listener): this {
    const matches = (l: Listener): boolean => l === listener || (l as { listener?: Listener }).listener === listener;
    if (event === 'message') {
      const before = this.#onMessage.length;
      this.#onMessage = this.#onMessage.filter((l) => !matches(l));
      if (before > 0 && this.#onMessage.length === 0) this.unref();
    } else this.#onClose = this.#onClose.filter((l) => !matches(l));
    return this;
  }

  /** Closes both ends, as MessagePort.close does: the peer's end emits `close`, and so does this one. */
  close(): void {
    if (this.#closed) return;
    this.#line.send(this, { kernel: this.key, closed: true });
    this.closedByPeer();
  }

  ref(): void {
    this.#line.ref(this);
  }

  unref(): void {
    this.#line.unref(this);
  }

  /** A message for this kernel arrived on the line. @internal */
  deliver(message: unknown): void {
    if (this.#closed) return;
    if (this.#queued !== undefined) this.#queued.push(message);
    else for (const listener of this.#onMessage) listener(message);
  }

  /** The other end closed, or the line did (its thread is gone): `close`, once, after the current turn. @internal */
  closedByPeer(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#line.forget(this);
    // After the messages queued before it (their delivery, when scheduled, was scheduled first).
    setImmediate(() => this.#emitClose());
  }

  /** Delivers the queued messages, in order, and from now on each as it comes. */
  #flush(): void {
    const queued = this.#queued;
    if (queued === undefined) return;
    for (let i = 0; i < queued.length; i++) for (const listener of this.#onMessage) listener(queued[i]);
    this.#queued = undefined;
  }

  #emitClose(): void {
    if (this.#onClose.length === 0) {
      this.#closeUnheard = true;
      return;
    }
    for (const listener of this.#onClose) listener(undefined);
  }
}

/** What a {@link LinePort} needs of the line it travels on. */
export interface LineEnds {
  send(port: LinePort, message: LineMessage, transfer?: readonly TransferListItem[]): void;
  ref(port: LinePort): void;
  unref(port: LinePort): void;
  /** The port closed: no more messages for it. */
  forget(port: LinePort): void;
}

/**
 * The executor side of a CPU worker's control line: one MessageChannel for all the kernels the worker hosts,
 * made with its first kernel. Its other end goes to the host once, with that attach's result.
 */
class WorkerLine implements LineEnds {
  readonly #port: MessagePort;
  #hostEnd: MessagePort | undefined;
  readonly #ports = new Map<number, LinePort>();

  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    this.#hostEnd = port2;
    port1.on('message', (envelope: LineMessage) => {
      const port = this.#ports.get(envelope.kernel);
      if (port === undefined) return;
      if (envelope.closed === true) port.closedByPeer();
      else port.deliver(envelope.message);
    });
    // The worker lives as long as its pool keeps it; the line must not hold it.
    port1.unref();
  }

  /** The kernel `key`'s end on this line. */
  portFor(key: number): LinePort {
    const port = new LinePort(key, this);
    this.#ports.set(key, port);
    return port;
  }

  /** The host's end, the first time it is asked for (then undefined: the host has it). */
  takeHostEnd(): MessagePort | undefined {
    const end = this.#hostEnd;
    this.#hostEnd = undefined;
    return end;
  }

  send(_port: LinePort, message: LineMessage, transfer?: readonly TransferListItem[]): void {
    this.#port.postMessage(message, transfer as TransferListItem[] | undefined);
  }

  ref(): void {}

  unref(): void {}

  forget(port: LinePort): void {
    this.#ports.delete(port.key);
  }
}

let workerLine: WorkerLine | undefined;

/**
 * This worker thread's control line (made on first use). A CPU worker's kernels each get their end of it by the
 * key the host gave them, instead of a MessagePort each. @internal
 */
export function controlLine(): WorkerLine {
  workerLine ??= new WorkerLine();
  return workerLine;
}

/** A kernel's control port on its executor: the task's MessagePort, or its end of this worker's line. @internal */
export function executorPort(port: ControlPort | number): ControlPort {
  return typeof port === 'number' ? controlLine().portFor(port) : port;
}
