import type { MessagePort, TransferListItem } from 'node:worker_threads';
import { type LineEnds, type LineMessage, LinePort } from '../executor/control-line.js';

/** One worker thread's line as the host holds it. */
interface HostLine {
  /** Undefined until the worker's first attach result brings it. */
  port: MessagePort | undefined;
  /** The kernel ports bound to the thread. */
  readonly kernels: Set<LinePort>;
  /** Messages posted before the line arrived, in order. */
  readonly waiting: { readonly message: LineMessage; readonly transfer?: readonly TransferListItem[] | undefined }[];
  /** Kernel ports waiting for an answer: the line is ref'd while there is one. */
  refs: number;
}

/**
 * The host side of the CPU workers' control lines: one MessageChannel per worker thread, which the worker makes
 * with its first kernel and hands over with that attach's result, carrying every kernel's commands and reports
 * tagged with the kernel's key — instead of a MessageChannel per kernel (its creation, its transfer, its
 * listeners and handles on both threads). A kernel's port behaves as its own MessagePort did: `close` when the
 * executor closes its end or when the worker thread dies (the line closes), ref'd only while it waits.
 */
export class ControlLines implements LineEnds {
  readonly #lines = new Map<number, HostLine>();
  /** Open kernel ports by key, for the lines' messages. */
  readonly #ports = new Map<number, LinePort>();
  #nextKey = 1;

  /** A new kernel instance's port; its key goes to the worker in the attach task. */
  open(): LinePort {
    const port = new LinePort(this.#nextKey++, this);
    this.#ports.set(port.key, port);
    return port;
  }

  /** The attach put `port`'s kernel on `threadId`: its commands go on that thread's line. */
  bind(port: LinePort, threadId: number): void {
    if (!this.#ports.has(port.key)) return; // closed meanwhile
    const line = this.#line(threadId);
    port.threadId = threadId;
    line.kernels.add(port);
    if (port.refd && line.refs++ === 0) line.port?.ref();
  }

  /** The worker `threadId` handed over its line (with its first attach's result). */
  adopt(threadId: number, port: MessagePort): void {
    const line = this.#line(threadId);
    if (line.port !== undefined) {
      port.close(); // never happens: a worker makes one line
      return;
    }
    line.port = port;
    port.on('message', (envelope: LineMessage) => {
      const kernel = this.#ports.get(envelope.kernel);
      if (kernel === undefined) return;
      if (envelope.closed === true) kernel.closedByPeer();
      else kernel.deliver(envelope.message);
    });
    // The worker thread is gone: every kernel it hosted sees its port close, as each one's own port did.
    port.on('close', () => {
      this.#lines.delete(threadId);
      for (const kernel of [...line.kernels]) kernel.closedByPeer();
    });
    for (const { message, transfer } of line.waiting.splice(0)) {
      port.postMessage(message, transfer as TransferListItem[] | undefined);
    }
    if (line.refs === 0) port.unref();
  }

  send(port: LinePort, message: LineMessage, transfer?: readonly TransferListItem[]): void {
    const threadId = port.threadId;
    if (threadId === undefined) return; // never attached: nobody to tell
    const line = this.#lines.get(threadId);
    if (line === undefined) return; // the thread is gone
    if (line.port === undefined) line.waiting.push({ message, transfer });
    else line.port.postMessage(message, transfer as TransferListItem[] | undefined);
  }

  ref(port: LinePort): void {
    if (port.refd) return;
    port.refd = true;
    const line = this.#boundLine(port);
    if (line !== undefined && line.refs++ === 0) line.port?.ref();
  }

  unref(port: LinePort): void {
    if (!port.refd) return;
    port.refd = false;
    const line = this.#boundLine(port);
    if (line !== undefined && --line.refs === 0) line.port?.unref();
  }

  forget(port: LinePort): void {
    this.unref(port);
    this.#ports.delete(port.key);
    this.#boundLine(port)?.kernels.delete(port);
  }

  /** Open kernel ports (for tests: a kernel's end frees its entry). */
  get size(): number {
    return this.#ports.size;
  }

  #boundLine(port: LinePort): HostLine | undefined {
    const threadId = port.threadId;
    return threadId === undefined ? undefined : this.#lines.get(threadId);
  }

  #line(threadId: number): HostLine {
    let line = this.#lines.get(threadId);
    if (line === undefined) {
      line = { port: undefined, kernels: new Set(), waiting: [], refs: 0 };
      this.#lines.set(threadId, line);
    }
    return line;
  }
}
