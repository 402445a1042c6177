/**
 * ringkernel's WebGPU backend, for applications that opt into it (`ringkernel/webgpu`): adapter probing, the WGSL
 * declarations generated from a kernel's messages, the backend's errors and the adapter's types. A WebGPU kernel
 * spec's type is in the main entry, whose signatures name it. The backend itself is chosen with
 * `RingKernelRuntime.builder().backend('webgpu')`; it loads the optional `webgpu` package lazily, so installing it
 * is part of opting in.
 *
 * @example
 * ```ts
 * import { probeWebGpu } from 'ringkernel/webgpu';
 *
 * const probe = await probeWebGpu();
 * console.log(probe.available ? probe.adapter : probe.reason);
 * ```
 *
 * @packageDocumentation
 */

export type {
  WebGpuAdapterDescription,
  WebGpuAdapterOptions,
  WebGpuProbe,
} from './backends/webgpu/webgpu-adapter.js';
export { probeWebGpu } from './backends/webgpu/webgpu-adapter.js';
export { renderWgslStruct } from './backends/webgpu/wgsl-structs.js';
export type { WgslCompilerMessage } from './errors/webgpu-errors.js';
export { WebGpuError, WgslCompileError, WgslSchemaError } from './errors/webgpu-errors.js';
