import type { KernelCheckpoint } from '../devices/checkpoint.js';
import type { DeadLetterReport } from '../executor/protocol.js';
import type { CallOptions, SendOptions } from '../operations/message-options.js';
import type { KernelStatusName } from '../wire/kernel-status.js';
import type { MessageCodec } from '../wire/message-schema.js';
import type { MovableKernel } from './kernel-move.js';
import type { PlacedLaunchOptions } from './kernel-placement.js';

export type { CallOptions, SendOptions } from '../operations/message-options.js';

/**
 * A kernel's metrics as a reference sees them: its counters and queues (a local handle's `KernelMetrics` has these
 * and more; a remote kernel's node sends its whole `KernelMetrics`).
 */
export interface KernelRefMetrics {
  readonly name: string;
  readonly kernelId: string;
  readonly status: KernelStatusName;
  readonly messagesSent: number;
  readonly messagesReceived: number;
  readonly messagesProcessed: number;
  readonly messagesFailed: number;
  readonly messagesDropped: number;
  readonly inputQueueDepth: number;
  readonly inputQueueCapacity: number;
  readonly outputQueueDepth: number;
  readonly uptimeMs: number;
}

/** A dead letter as the runtime's stream takes it. */
export interface ClusterDeadLetter extends DeadLetterReport {
  readonly kernel: string;
  readonly at: Date;
}

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
  metrics(): KernelRefMetrics | Promise<KernelRefMetrics>;
}

/** What a node needs of a kernel it hosts for the cluster. The runtime's kernel handles are these. */
export interface HostedKernel extends KernelRef<unknown, unknown> {
  readonly kernelId: string;
  readonly inputCodec: MessageCodec<unknown, unknown>;
  readonly outputCodec: MessageCodec<unknown, unknown>;
  metrics(): KernelRefMetrics;
  /** The kernel's message counters, cheap to poll. */
  counters(): {
    readonly received: number;
    readonly processed: number;
    readonly failed: number;
    readonly dropped: number;
  };
  /** Resolves when the kernel has left its worker. */
  readonly exited: Promise<void>;
  /**
   * `trySend` of a payload already encoded as the kernel's input type (its type id and size checked): copied into
   * the ring as it is, with no decode and no re-encode.
   */
  trySendEncoded(payload: Uint8Array, priority: number): boolean;
  /** Runs `body` (a batch of sends) with the kernel woken once at its end, not once per message. */
  burst<T>(body: () => T): T;
  /** Ends the kernel (a move ends its instance on the node it left). */
  terminate(): Promise<void>;
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
  deadLetter(letter: ClusterDeadLetter): void;
  /**
   * Launches the kernel defined under `kernelId` (defined in this process) with `options`: a failover (activated)
   * or a launch another node placed here.
   */
  launch(
    kernelId: string,
    options: PlacedLaunchOptions & { readonly restore?: KernelCheckpoint },
  ): Promise<HostedKernel>;
  /** The live local kernel `name`'s pause and checkpoint, for a move to another node. */
  movable(name: string): MovableKernel | undefined;
}
