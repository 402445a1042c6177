import type { DeadLetter } from '../runtime/dead-letters.js';
import type { CallOptions, KernelMetrics, SendOptions } from '../runtime/kernel-handle.js';
import type { KernelStatusName } from '../wire/kernel-status.js';
import type { MessageCodec } from '../wire/message-schema.js';

/**
 * A kernel as senders see it, wherever it runs: a local handle (straight into its ring) or a reference to a kernel
 * on another node (through NATS). `metrics()` of a remote kernel asks its node, so await it either way.
 */
export interface KernelRef<InIn = unknown, OutView = unknown> {
  /** The launch's name, cluster-wide. */
  readonly name: string;
  /** The lifecycle state (a remote kernel's as its node last published it). */
  readonly status: KernelStatusName;
  trySend(message: InIn, priority?: number): boolean;
  send(message: InIn, options?: SendOptions): Promise<void>;
  call(request: InIn, options?: CallOptions): Promise<OutView>;
  tryReceive(): OutView | undefined;
  receive(timeout?: number): Promise<OutView>;
  metrics(): KernelMetrics | Promise<KernelMetrics>;
}

/** What a node needs of a kernel it hosts for the cluster. The runtime's kernel handles are these. */
export interface HostedKernel extends KernelRef<unknown, unknown> {
  readonly kernelId: string;
  readonly inputCodec: MessageCodec<unknown, unknown>;
  readonly outputCodec: MessageCodec<unknown, unknown>;
  metrics(): KernelMetrics;
  /** The kernel's message counters, cheap to poll. */
  counters(): {
    readonly received: number;
    readonly processed: number;
    readonly failed: number;
    readonly dropped: number;
  };
  /** Resolves when the kernel has left its worker. */
  readonly exited: Promise<void>;
}

/** What a cluster node needs of the runtime it belongs to: its kernels, and where dead letters go. */
export interface ClusterRuntimePort {
  /** The runtime's backend, published in the registry. */
  readonly backend: string;
  /** The live kernel launched under `name`, if any. */
  localKernel(name: string): HostedKernel | undefined;
  /** Every live kernel. */
  localKernels(): readonly HostedKernel[];
  /** Tells `listener` when a kernel is launched or has ended; returns the function that stops it. */
  watchKernels(listener: (event: { type: 'launched' | 'ended'; kernel: HostedKernel }) => void): () => void;
  /** Records a dead letter. */
  deadLetter(letter: DeadLetter): void;
}
