import type { MessagePort } from 'node:worker_threads';
import type { SerializedWebGpuError } from '../errors/webgpu-errors.js';
import type { LifecycleInspection } from '../kernel/lifecycle-inspection.js';
import type { KernelTelemetry } from '../telemetry/kernel-span-writer.js';
import type { FrameRingMemory } from '../wire/frame-ring.js';

/**
 * The control plane between the runtime (host) and the worker hosting a kernel: one Piscina task to attach the
 * kernel, then its control port — a MessagePort of its own on a device thread, its share of the worker's control
 * line on a CPU worker. Messages only — never on the data path.
 */

/** The Piscina task that attaches a kernel to a worker. */
export interface AttachTask {
  readonly kernelId: string;
  readonly moduleUrl: string;
  /** Numeric id of this launch: frames' source/destination, the ControlBlock's kernel_id, the HLC node. */
  readonly instanceId: number;
  readonly controlBlock: SharedArrayBuffer;
  /**
   * The kernel's latency histograms ({@link KERNEL_HISTOGRAMS_BYTES}; a WebGPU kernel's batch metrics after them),
   * from `histogramOffset` — the ControlBlock's own buffer, past the block, when the host launched the kernel.
   */
  readonly histogram: SharedArrayBuffer;
  /** Where in `histogram` the histograms start (8-byte aligned). Default 0. */
  readonly histogramOffset?: number;
  readonly input: FrameRingMemory;
  readonly output: FrameRingMemory;
  /**
   * The kernel's control port: a MessagePort (transferred; device threads), or the key of the kernel's share of
   * its CPU worker's control line (see `control-line.ts`).
   */
  readonly port: MessagePort | number;
  readonly enableTelemetry: boolean;
  /** A handler that throws fails the kernel (after dead-lettering the message) instead of only the message. */
  readonly failOnHandlerError: boolean;
  /** Tracing on: the kernel's telemetry ring, for its processing spans. Absent when tracing is off. */
  readonly tracing?: KernelTelemetry | undefined;
  /** The (virtual) device whose worker hosts the kernel. */
  readonly device?: number;
  /**
   * The kernel's state as a checkpoint took it (`snapshot` hook or v8 serialization): the new instance starts from
   * it (through the `restore` hook) instead of `init()`. A restore that throws fails the attach task.
   */
  readonly restoreState?: Uint8Array | undefined;
  /**
   * Attach dormant (a migration's new instance, attached before the kernel pauses): load the module, but do not
   * touch the ControlBlock or the rings — the old instance still owns them. Then RESTORE gives it the state, START
   * makes it take over, DISCARD drops it.
   */
  readonly dormant?: boolean;
  /** Post the lifecycle actor's inspection events to the host (the runtime's `inspect` option). */
  readonly inspect?: boolean;
  /**
   * Activate the kernel as soon as it has started (the launch's `autoActivate`): Launched → Active within the
   * attach, in the lifecycle's LAUNCHED macrostep, rather than by an ACTIVATE command and its reply after it.
   */
  readonly activate?: boolean;
  /** A CUDA kernel (attached to the CUDA device thread): its launch shape and the device thread's poll interval. */
  /** A WebGPU kernel (attached to the WebGPU device thread): which adapter the thread opens its device on. */
  readonly webgpu?: {
    readonly allowFallback: boolean;
    readonly nativeBackend: 'default' | 'opengles';
  };
  readonly cuda?: {
    readonly gridSize: number;
    readonly blockSize: number;
    readonly pollIntervalUs: number;
    /** `dma`: the rings' device replicas the kernel reads and writes (else it maps the host's rings). */
    readonly devicePointers?: { readonly input: bigint; readonly output: bigint } | undefined;
  };
}

/**
 * The Piscina task of a CPU worker: the kernels launched together (in one turn of the host's event loop) that the
 * host placed on this worker, attached in one task rather than a task each. Each kernel's control port is a key
 * on the worker's control line.
 */
export interface AttachBatch {
  readonly attach: readonly AttachTask[];
}

/** What a CPU worker's attach batch resolves with: each kernel's result, in order, and the line once. */
export interface AttachBatchResult {
  readonly results: readonly AttachResult[];
  /** The host's end of the worker's control line, with the first batch the worker ran (transferred). */
  readonly line?: MessagePort | undefined;
}

/** The adapter of a WebGPU kernel's device, as its driver describes it (the backend's `WebGpuAdapterDescription`). */
export interface AttachedWebGpuAdapter {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly isFallback: boolean;
  readonly nativeBackend: 'default' | 'opengles';
  readonly timestampQuery: boolean;
}

/** What the attach task resolves with. */
export interface AttachResult {
  /** The worker thread now hosting the kernel. */
  readonly threadId: number;
  /** A CUDA kernel: how its image was made (compiler, cache hit). */
  readonly cuda?: { readonly compiler: string; readonly cached: boolean; readonly key: string };
  /** A WebGPU kernel: the adapter of the `GPUDevice` it was placed on. */
  readonly webgpu?: { readonly adapter: AttachedWebGpuAdapter };
  /**
   * The attach failed (errors cross threads as data, so it comes back typed rather than thrown): the host rebuilds
   * the error from it (`attachFailureError`).
   */
  readonly failure?: AttachFailure;
}

/**
 * Where an attach failed: loading the kernel's module (`load`), preparing it on its executor (`prepare`: a
 * compile, a device allocation), rebuilding a checkpoint's state (`restore`), or starting it (`start`).
 */
export type AttachStage = 'load' | 'prepare' | 'restore' | 'start';

/** An attach that failed, typed: the error, the stage, and what a backend adds to rebuild its own error class. */
export interface AttachFailure {
  readonly error: SerializedError;
  readonly stage: AttachStage;
  /** A compile failed: the compiler and its log (`CudaCompileError`). */
  readonly compiler?: string | undefined;
  readonly log?: string | undefined;
  /** A driver call failed: which, with its result (`CudaError`). */
  readonly operation?: string | undefined;
  readonly cudaResult?: number | undefined;
  readonly cudaErrorName?: string | undefined;
  /** A WebGPU kernel's typed error (a schema WGSL cannot express, a handler that does not compile). */
  readonly webgpu?: SerializedWebGpuError | undefined;
  /** The kernel's module is the user's to fix: what is wrong, in their terms (the host's `KernelModuleError`). */
  readonly kernelModule?: string | undefined;
  /** The device is lost to the process (a sticky CUDA error): the host rethrows a `CudaDeviceLostError`. */
  readonly deviceLost?: { readonly device: number; readonly cudaErrorName: string } | undefined;
}

/** A lifecycle command from the host. ABORT is forced termination: stop now, dead-letter what is pending. */
export type ControlCommand =
  | { readonly seq: number; readonly command: 'ACTIVATE' | 'DEACTIVATE' }
  /**
   * Terminate after the message in hand: then handle what is queued (`drain`), dead-letter it, or — `keep`, for a
   * supervisor's restart — leave it in the rings for the kernel's next instance.
   */
  | { readonly seq: number; readonly command: 'TERMINATE'; readonly drain: boolean; readonly keep: boolean }
  | { readonly seq: number; readonly command: 'ABORT' }
  /** Checkpoint: answer with the kernel's state as bytes (a `snapshot` report). Between batches, so consistent. */
  | { readonly seq: number; readonly command: 'SNAPSHOT' }
  /** A dormant instance (migration): take the rings and ControlBlock over now (START), or drop out (DISCARD). */
  | { readonly seq: number; readonly command: 'START' | 'DISCARD' }
  /** A dormant instance: rebuild the state from these bytes (answered by a `restored` report). */
  | { readonly seq: number; readonly command: 'RESTORE'; readonly bytes: Uint8Array }
  /**
   * Kernel-to-kernel: also consume this ring (its producer is another kernel, in any worker). `link` names the
   * link on both ends (absent: the link is never fused).
   */
  | { readonly seq: number; readonly command: 'LINK_IN'; readonly memory: FrameRingMemory; readonly link?: number }
  /**
   * Kernel-to-kernel: send outputs (of the given type ids, or all) to this ring instead of the host, and ring the
   * consumer kernel's input doorbell (`wake`) after each frame.
   */
  | {
      readonly seq: number;
      readonly command: 'LINK_OUT';
      readonly memory: FrameRingMemory;
      readonly link?: number;
      readonly wake: SharedArrayBuffer;
      readonly types: readonly number[] | undefined;
    };

/** An error crossing the port. */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly code?: string | undefined;
  readonly stack?: string | undefined;
}

/** Why a message became a dead letter. */
export type DeadLetterReason =
  | 'handler-error'
  | 'malformed-frame'
  | 'discarded-on-terminate'
  | 'kernel-failed'
  /** Sent to a kernel that had terminated or failed: refused at the send, and recorded. */
  | 'kernel-gone'
  /** Sent by name to no kernel at all. */
  | 'unknown-kernel'
  /** Refused because the runtime was not accepting work (draining, or not started). */
  | 'not-accepting-work'
  /** Refused by load shedding: below the priority the degradation level admits. */
  | 'load-shed'
  /** Refused at the send: an argument was wrong (a priority outside 0…255, a bad timeout or signal). */
  | 'invalid-argument'
  /** A call's response that came back after the call had given up (timed out or aborted). */
  | 'late-response'
  /** Sent from another node of the cluster to a kernel whose queue was full and whose `onFull` refuses. */
  | 'queue-full'
  /** Sent at-most-once over the cluster and lost on the way (the receiving node saw a gap in the message ids). */
  | 'message-lost'
  /** Addressed over the cluster to a name no node hosts, or to a node that stopped answering. */
  | 'undeliverable';

/** A dead letter as the worker reports it. */
export interface DeadLetterReport {
  readonly reason: DeadLetterReason;
  readonly error: SerializedError;
  readonly messageId: number;
  readonly correlationId: number;
  readonly typeId: number;
  /** A copy of the payload (or of the raw bytes, for a malformed frame). */
  readonly payload: Uint8Array;
}

/** Messages from the worker to the host about one kernel. */
export type WorkerReport =
  /** An inspection event of the kernel's lifecycle actor (with `inspect`). */
  | { readonly type: 'inspect'; readonly event: LifecycleInspection }
  | { readonly type: 'reply'; readonly seq: number; readonly ok: true }
  | {
      readonly type: 'reply';
      readonly seq: number;
      readonly ok: false;
      readonly state: string;
      readonly target: string;
    }
  | {
      readonly type: 'deadLetter';
      readonly letter: DeadLetterReport;
      /** The message was a host `call` (its request frame, on the kernel's own input): the letter answers it. */
      readonly request?: boolean;
    }
  /** The answer to SNAPSHOT: the state's bytes, or why it could not be taken. */
  | { readonly type: 'snapshot'; readonly seq: number; readonly bytes: Uint8Array }
  | { readonly type: 'snapshot'; readonly seq: number; readonly error: SerializedError }
  /** The answer to RESTORE: done, or why not. */
  | { readonly type: 'restored'; readonly seq: number; readonly error?: SerializedError }
  | {
      readonly type: 'exit';
      readonly status: 'Terminated' | 'Failed';
      readonly reason?: string;
      /** A CUDA kernel failed with a sticky error: its device is lost to the process (the CUDA error name). */
      readonly deviceLost?: string;
      /** A WebGPU kernel failed with a device error (its device lost): the host fails it with that typed error. */
      readonly webgpu?: SerializedWebGpuError;
    };

/** Turns anything thrown into something a port can carry. */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name,
      message: error.message,
      code: typeof code === 'string' ? code : undefined,
      stack: error.stack,
    };
  }
  return { name: 'Error', message: String(error) };
}

/** Type id of the error response a kernel sends when the handler of a call's request throws (JSON payload). */
export const ERROR_REPLY_TYPE_ID = 2;

/** Room every output ring keeps for an error response's payload, whatever the kernel's output type. */
export const ERROR_REPLY_MAX_BYTES = 512;

/**
 * How a terminating kernel ends its queue: handle it (`drain`), dead-letter it (`discard`), or leave it in the
 * rings for the kernel's next instance (`keep`, a supervisor's restart).
 */
export type TerminationMode = 'drain' | 'discard' | 'keep';

/** The one drain rule: a TERMINATE keeps the queue when asked to, else drains or discards it as asked. */
export function terminationModeOf(command: { readonly drain: boolean; readonly keep: boolean }): TerminationMode {
  if (command.keep) return 'keep';
  return command.drain ? 'drain' : 'discard';
}

/** The commands that drive the lifecycle machine. */
export type LifecycleCommand = Extract<ControlCommand, { command: 'ACTIVATE' | 'DEACTIVATE' | 'TERMINATE' }>;

/**
 * The lifecycle event a command sends to a kernel's lifecycle actor, or the refusal to report when its state does
 * not take it (the host turns it into `InvalidStateError`). Shared by every executor that runs the lifecycle
 * machine (CPU workers, the CUDA device thread).
 */
export function lifecycleEventOf(
  command: LifecycleCommand,
  drain: boolean,
): { type: 'ACTIVATE' } | { type: 'DEACTIVATE' } | { type: 'TERMINATE'; drain: boolean } {
  return command.command === 'TERMINATE' ? { type: 'TERMINATE', drain } : { type: command.command };
}

/** The refusal of a lifecycle command the actor's state does not take. */
export function lifecycleRefusal(command: LifecycleCommand, state: unknown): WorkerReport {
  const target = { ACTIVATE: 'Active', DEACTIVATE: 'Deactivated', TERMINATE: 'Terminating' }[command.command];
  return { type: 'reply', seq: command.seq, ok: false, state: String(state), target };
}
