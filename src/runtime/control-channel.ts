import { StateSnapshotError } from '../errors/device-errors.js';
import { InvalidStateError } from '../errors/runtime-errors.js';
import type { ControlPort } from '../executor/control-line.js';
import type { WorkerReport } from '../executor/protocol.js';

/** What the channel hands on: the reports it does not answer itself, and the death of an instance's port. */
export interface ControlSink {
  /** A dead letter, the instance's exit, or a lifecycle inspection event. */
  report(report: Extract<WorkerReport, { type: 'deadLetter' | 'exit' | 'inspect' }>): void;
  /** The current instance's port closed without an exit report: its worker is gone. */
  closed(threadId: number): void;
}

/**
 * The control-port RPC between a kernel's handle and its current instance: commands out, each answered by a
 * reply (or a snapshot) matched by sequence number; the port is ref'd only while an answer is awaited, so an idle
 * kernel never keeps the process alive. A restart or migration binds the next instance's port; reports from an
 * earlier instance's port are ignored. Control plane only — no message goes through here.
 */
export class ControlChannel {
  readonly #kernel: string;
  readonly #sink: ControlSink;
  #port!: ControlPort;
  #threadId = 0;
  #nextSeq = 1;
  readonly #replies = new Map<number, { resolve(): void; reject(error: Error): void }>();
  readonly #snapshots = new Map<number, { resolve(bytes: Uint8Array): void; reject(error: Error): void }>();

  /** `kernel`: the launch's name, for the errors of refused commands. */
  constructor(kernel: string, sink: ControlSink) {
    this.#kernel = kernel;
    this.#sink = sink;
  }

  /** The worker thread of the current instance. */
  get threadId(): number {
    return this.#threadId;
  }

  /** Listens to an instance's control port from now on. */
  bind(port: ControlPort, threadId: number): void {
    this.#port = port;
    this.#threadId = threadId;
    port.on('message', (report: WorkerReport) => {
      if (this.#port === port) this.#dispatch(report);
    });
    // The worker is gone without saying goodbye (process.exit in a handler, a native crash).
    port.on('close', () => {
      if (this.#port === port) this.#sink.closed(threadId);
    });
    // An idle kernel must not keep the process alive; pending operations ref it while they wait.
    port.unref();
  }

  /** A fresh sequence number. */
  seq(): number {
    return this.#nextSeq++;
  }

  /** Posts a command that nobody waits on; the port stays ref'd until the next answer. */
  post(message: object): void {
    this.#port.ref(); // a command in flight keeps the process alive until its reply
    this.#port.postMessage(message);
  }

  /** Posts a command and settles with its reply: refused → {@link InvalidStateError} naming both states. */
  request(command: object): Promise<void> {
    const seq = this.#nextSeq++;
    return new Promise<void>((resolve, reject) => {
      this.#replies.set(seq, { resolve, reject });
      this.post({ seq, ...command });
    });
  }

  /** Asks the instance for its state's bytes (between batches). @throws {StateSnapshotError} */
  snapshot(): Promise<Uint8Array> {
    const seq = this.#nextSeq++;
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#snapshots.set(seq, { resolve, reject });
      this.post({ seq, command: 'SNAPSHOT' });
    });
  }

  /** Lets the process exit although the port is open (the instance has gone, or is going). */
  unref(): void {
    this.#port.unref();
  }

  /** Commands in flight will never be answered by this instance. */
  rejectReplies(error: Error): void {
    for (const waiter of this.#replies.values()) waiter.reject(error);
    this.#replies.clear();
  }

  /** Whether any command or snapshot waits for its answer. */
  get waiting(): boolean {
    return this.#replies.size > 0 || this.#snapshots.size > 0;
  }

  /** Nothing will be answered any more: commands and snapshots in flight reject with `error`. */
  rejectAll(error: Error): void {
    this.rejectReplies(error);
    for (const waiter of this.#snapshots.values()) waiter.reject(error);
    this.#snapshots.clear();
  }

  #dispatch(report: WorkerReport): void {
    switch (report.type) {
      case 'reply': {
        const waiter = this.#replies.get(report.seq);
        this.#replies.delete(report.seq);
        if (this.#replies.size === 0 && this.#snapshots.size === 0) this.#port.unref();
        if (waiter === undefined) return;
        if (report.ok) waiter.resolve();
        else waiter.reject(new InvalidStateError(this.#kernel, 'change the state of', report.state, report.target));
        return;
      }
      case 'snapshot': {
        const waiter = this.#snapshots.get(report.seq);
        this.#snapshots.delete(report.seq);
        if (this.#replies.size === 0 && this.#snapshots.size === 0) this.#port.unref();
        if (waiter === undefined) return;
        if ('bytes' in report) waiter.resolve(report.bytes);
        else {
          const why = `${report.error.name}: ${report.error.message}`;
          waiter.reject(new StateSnapshotError(this.#kernel, 'snapshot', why));
        }
        return;
      }
      case 'restored':
        return; // a dormant instance's answer, read on its own port by the migration
      default:
        this.#sink.report(report);
    }
  }
}
