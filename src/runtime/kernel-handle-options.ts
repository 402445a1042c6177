import type { CudaReplicaPointers, KernelTransfer, KernelTransferStats } from '../bridge/transfer-bridge.js';
import type { TransferStrategy } from '../bridge/transfer-strategy.js';
import type { ControlPort } from '../executor/control-line.js';
import type { DeadLetterReason } from '../executor/protocol.js';
import type { DeviceBatchMetrics } from '../kernel/device-batch-metrics.js';
import type { AnyKernelDefinition } from '../kernel/kernel-definition.js';
import type { LatencyHistogram, LatencySummary } from '../kernel/latency-histogram.js';
import type { LifecycleInspection } from '../kernel/lifecycle-inspection.js';
import type { HostSpanWriter } from '../telemetry/host-span-writer.js';
import type { ControlBlock } from '../wire/control-block.js';
import type { FrameRingMemory } from '../wire/frame-ring.js';
import type { KernelStatusName } from '../wire/kernel-status.js';
import type { DeadLetter } from './dead-letters.js';
import type { KernelHandle } from './kernel-handle.js';
import type { KernelControl } from './worker-pools.js';

export type { CallOptions, SendOptions } from '../operations/message-options.js';

/**
 * What a {@link KernelHandle} is built from and speaks in: its options, its metrics, its failure listener, and the
 * init the launcher builds it with.
 */
/** A grid or block size: a count, or up to three dimensions. */
export type Dim3 = number | readonly [number, number?, number?];

/** Options of {@link KernelHandle.receive}. */
export interface ReceiveOptions {
  /** Longest wait for an output, in ms: 0…2³¹−1, or `Infinity` for no limit. Default 30 000. */
  readonly timeout?: number;
  /** Cancels the wait: rejects with `AbortedError`, the reason its cause. */
  readonly signal?: AbortSignal;
}

/** Why a kernel refuses messages below its admitted priority, built when one is refused. */
export type Refusal = (kernel: string, priority: number) => { error: Error; reason: DeadLetterReason };

/** Where a kernel's messages are, what it did with them, and how fast. Read without messaging the kernel. */
export interface KernelMetrics {
  readonly name: string;
  readonly kernelId: string;
  readonly instanceId: number;
  readonly status: KernelStatusName;
  /** Messages the host has sent (written into the input ring). */
  readonly messagesSent: number;
  /** Frames the kernel took off its input ring. */
  readonly messagesReceived: number;
  /** Handled without error. */
  readonly messagesProcessed: number;
  /** Handler threw (each dead-lettered). */
  readonly messagesFailed: number;
  /** Malformed, or discarded on terminate (each dead-lettered). */
  readonly messagesDropped: number;
  /** Frames waiting in the input ring. */
  readonly inputQueueDepth: number;
  /** Frames the input ring was sized for (`queueCapacity`). */
  readonly inputQueueCapacity: number;
  /** Frames waiting in the output ring (not yet received by the host). */
  readonly outputQueueDepth: number;
  /** Sends waiting for room in a full input ring. */
  readonly sendsWaiting: number;
  /**
   * Times sends were found deadlocked: the input queue full, the kernel holding an output for room in a full
   * output queue, and nothing on the host reading outputs (each time is also a warning naming the kernel).
   */
  readonly sendStalls: number;
  /** Last error recorded by the kernel, or null. */
  readonly lastError: { readonly code: number; readonly message: string | undefined } | null;
  readonly errorCount: number;
  readonly uptimeMs: number;
  /** Handler latency (sampled one message in eight). */
  readonly latency: LatencySummary;
  /**
   * How the rings reach the kernel: `direct` — the worker reads the host's SharedArrayBuffer rings; `dma` — the
   * native mirror thread copies them to replicas the worker reads.
   */
  readonly transferStrategy: TransferStrategy;
  /** What the DMA mirror moved for this kernel, per direction (null unless `dma`). */
  readonly transfer: KernelTransferStats | null;
  /** The worker thread hosting the kernel. */
  readonly workerThreadId: number;
  /** Times a supervisor restarted the kernel. */
  readonly restarts: number;
  /** The (virtual) device hosting the kernel; it changes when the kernel is migrated. */
  readonly device: number;
  /** Times the kernel was migrated between devices. */
  readonly migrations: number;
  readonly gridSize: readonly [number, number, number];
  readonly blockSize: readonly [number, number, number];
}

/** What a handle is built from. */
export interface KernelHandleInit {
  readonly name: string;
  readonly definition: AnyKernelDefinition;
  readonly instanceId: number;
  readonly control: ControlBlock;
  readonly histogram: LatencyHistogram;
  /** Latency of kernel-to-kernel hops into the kernel (shared with the executor, which samples one in eight). */
  readonly hopHistogram: LatencyHistogram;
  /** A device kernel's batch metrics (shared with its device executor); undefined for CPU-worker kernels. */
  readonly deviceBatches?: DeviceBatchMetrics | undefined;
  readonly input: FrameRingMemory;
  readonly output: FrameRingMemory;
  /** How the rings reach the kernel (the kernel's own ends, the mirror's kick). */
  readonly transfer: KernelTransfer;
  /** The host's end of the instance's control port. */
  readonly port: ControlPort;
  readonly threadId: number;
  readonly gridSize: readonly [number, number, number];
  readonly blockSize: readonly [number, number, number];
  readonly onFull: 'wait' | 'reject';
  readonly queueCapacity: number;
  readonly drainOnTerminate: boolean;
  readonly terminationTimeout: number;
  readonly onDeadLetter: (letter: DeadLetter) => void;
  readonly onExit: (handle: KernelHandle) => void;
  /** Called when the kernel's worker thread is seen to exit. */
  readonly onWorkerExit: (threadId: number) => void;
  /** Called when a supervised kernel's instance failed and its supervisor will decide what happens next. */
  readonly onInterrupted: (handle: KernelHandle) => void;
  /**
   * Called when a forced termination found the kernel's handler stuck: its worker must be replaced. `salvaged`
   * settles once the worker has gone and what the kernel never handled is dead-lettered.
   */
  readonly onStuckTermination?: (handle: KernelHandle, salvaged: Promise<void>) => void;
  /**
   * Attaches a new instance of the kernel — same ControlBlock, same rings — to a worker, on the given control
   * port; resolves with the worker's thread id and the device it runs on (a supervisor's restart: another device
   * when the kernel's CUDA device was lost).
   */
  readonly reattach: (handle: KernelHandle, control: KernelControl) => Promise<{ threadId: number; device: number }>;
  /** A control port for a new instance of the kernel (a restart's, a migration's), of the kind its executor takes. */
  readonly openControl: () => KernelControl;
  /** The kernel's CUDA device hit a sticky error: the device is lost to the process (its CUDA error name). */
  readonly onDeviceLost?: (device: number, cudaErrorName: string) => void;
  /** An inspection event of the kernel's lifecycle actor, from its executor (the runtime's `inspect` option). */
  readonly onInspect?: ((event: LifecycleInspection) => void) | undefined;
  /** A handler that throws fails the kernel (for a supervisor to restart) instead of only its message. */
  readonly failOnHandlerError: boolean;
  /** Tracing on: where the host's spans of this kernel's messages begin. */
  readonly tracer?: HostSpanWriter | undefined;
  /** The device the kernel was placed on. */
  readonly device: number;
  /** The first message id the handle uses (past those of frames a checkpoint restored into the input ring). */
  readonly firstMessageId?: number;
  /**
   * Attaches a dormant instance (a migration's) on `device`, with the given state, on `port`; resolves with its
   * worker's thread id. It takes nothing over until START. A `dma` CUDA kernel's new instance launches over
   * `devicePointers`, its rings' replicas on the target.
   */
  readonly attachDormant: (
    handle: KernelHandle,
    control: KernelControl,
    device: number,
    devicePointers?: CudaReplicaPointers,
  ) => Promise<number>;
  /** A checkpoint of the kernel was taken. */
  readonly onCheckpoint: () => void;
  /** The kernel has ended and nothing touches its rings any more: they may be reused. */
  readonly releaseRings?: (input: FrameRingMemory, output: FrameRingMemory) => void;
}

/**
 * A kernel-to-kernel wiring command, kept so a restarted kernel is wired again. `link` names the link (the same on
 * both ends): two kernels that find themselves on one worker thread know their link by it (see fused links).
 */
export type LinkCommand =
  | { command: 'LINK_IN'; memory: FrameRingMemory; link: number }
  | {
      command: 'LINK_OUT';
      memory: FrameRingMemory;
      link: number;
      wake: SharedArrayBuffer;
      types: readonly number[] | undefined;
    };

/** What a supervisor is told when the instance of a kernel it supervises fails. */
export type KernelFailureListener = (handle: KernelHandle, error: Error) => void;
