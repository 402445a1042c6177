import type { WgslCompilerMessage } from '../../errors/webgpu-errors.js';
import type { FrameRingMemory } from '../../wire/frame-ring.js';
import type { BatchDeadLetter, BatchEngineStats } from './batch-engine.js';
import type { WebGpuAdapterDescription, WebGpuAdapterOptions } from './webgpu-adapter.js';
import type { WgslProgram } from './wgsl-program.js';

/**
 * The control plane between the host and a WebGPU device thread: messages only, never on the data path (kernels'
 * messages go through their rings). Shared by both sides; imports neither.
 */

/** What the device thread needs to launch one kernel. */
export interface DeviceKernelLaunch {
  readonly kernelId: string;
  readonly program: WgslProgram;
  readonly input: FrameRingMemory;
  readonly output: FrameRingMemory;
  readonly outputBytes?: number | undefined;
  readonly maxBatch?: number | undefined;
  readonly inFlight?: number | undefined;
  /** The kernel instance id written as its outputs' source. */
  readonly sourceId: number;
  /** State to start from (a checkpoint's), else zeros. */
  readonly restoreState?: Uint8Array | undefined;
}

/** Host → device thread. */
export type DeviceThreadCommand =
  | { readonly type: 'open'; readonly seq: number; readonly adapter: WebGpuAdapterOptions }
  | { readonly type: 'launch'; readonly seq: number; readonly kernel: DeviceKernelLaunch }
  | {
      readonly type: 'pause' | 'resume' | 'checkpoint' | 'stats';
      readonly seq: number;
      readonly kernelId: string;
    }
  | { readonly type: 'stop'; readonly seq: number; readonly kernelId: string; readonly mode: 'drain' | 'discard' }
  | { readonly type: 'restore'; readonly seq: number; readonly kernelId: string; readonly state: Uint8Array }
  | { readonly type: 'close'; readonly seq: number; readonly mode: 'drain' | 'discard' };

/** An error as it crosses the thread boundary: enough to rebuild the typed error on the host. */
export interface SerializedDeviceError {
  readonly name: string;
  readonly code: string | undefined;
  readonly message: string;
  readonly kernelId?: string | undefined;
  readonly compilerMessages?: readonly WgslCompilerMessage[] | undefined;
  readonly kind?: string | undefined;
  readonly operation?: string | undefined;
}

/** Device thread → host. */
export type DeviceThreadReport =
  | { readonly type: 'reply'; readonly seq: number; readonly ok: true; readonly value?: unknown }
  | { readonly type: 'reply'; readonly seq: number; readonly ok: false; readonly error: SerializedDeviceError }
  | { readonly type: 'deadLetters'; readonly kernelId: string; readonly letters: readonly BatchDeadLetter[] }
  | { readonly type: 'kernelFailed'; readonly kernelId: string; readonly error: SerializedDeviceError };

/** What `open` answers with. */
export type DeviceOpened = WebGpuAdapterDescription;
/** What `stats` answers with. */
export type DeviceKernelStats = BatchEngineStats;
