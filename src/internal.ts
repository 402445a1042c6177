/**
 * ringkernel's internals, for its tests, benchmarks and tools (`ringkernel/internal`): the public API plus drivers,
 * binary layouts, span records, the executor shell and the modules behind the runtime. No promise of stability —
 * an application imports `ringkernel`.
 *
 * @packageDocumentation
 */

// Everything else the package exported before its public API was curated.
export { LAYOUT_HEADER_PATH, NATIVE_LAYOUTS, renderLayoutHeader } from './backends/c-header.js';
export type { CudaDriverLoad, CudaKernelArg, CudaLaunchConfig, CudaProbe } from './backends/cuda/driver.js';
export {
  CuDeviceAttribute,
  CuDeviceP2PAttribute,
  CudaDriver,
  CuMemHostRegisterFlag,
  cudaErrorName,
  emulatorLibraryPath,
  loadCudaDriver,
  probeCuda,
  requireCudaDriver,
} from './backends/cuda/driver.js';
export type { EmulatedBuild, EmulatedBuildOptions } from './backends/cuda/emulated-build.js';
export { buildEmulatedKernel, EMULATED_IMAGE_PREFIX } from './backends/cuda/emulated-build.js';
export type { CompiledCudaKernel, CudaCompiler, CudaCompileTarget } from './backends/cuda/kernel-compiler.js';
export {
  compileCudaKernel,
  KERNEL_MESSAGES_HEADER,
  kernelCacheDir,
  kernelMessagesHeader,
} from './backends/cuda/kernel-compiler.js';
export type { NvLinkRemoteType, NvmlLoad, NvmlNvLink, NvmlPciInfo } from './backends/cuda/nvml.js';
export { libnvmlPath, loadNvml, Nvml, nvmlReturnName, pciKey } from './backends/cuda/nvml.js';
export { PinnedHostMemory } from './backends/cuda/pinned-host-memory.js';
export { nativePath, packageRoot } from './backends/package-root.js';
export type { Relaunch } from './bridge/relaunch.js';
export { relaunchOf } from './bridge/relaunch.js';
export * from './cluster.js';
export * from './cuda.js';
export type { DeviceMemoryReading } from './devices/cuda-device-memory.js';
export { CudaDeviceMemory } from './devices/cuda-device-memory.js';
export type { CudaTopologyOptions } from './devices/cuda-topology.js';
export { cudaTopology } from './devices/cuda-topology.js';
export type { DormantTarget, MigratableKernel, MigrationHost } from './devices/kernel-migrator.js';
export { KernelMigrator } from './devices/kernel-migrator.js';
export { MultiGpuCoordinator } from './devices/multi-gpu-coordinator.js';
export { measureHostLink } from './devices/topology.js';
// The executor shell every backend implements, and the host ↔ executor protocol.
export { attachFailureError } from './executor/attach-failure.js';
export type { AttachInfo, ExecutorBackend, PreparedKernel, RunningKernel } from './executor/executor-shell.js';
export { attachKernel, ExecutorShell } from './executor/executor-shell.js';
export type {
  AttachFailure,
  AttachResult,
  AttachStage,
  AttachTask,
  ControlCommand,
  DeadLetterReport,
  TerminationMode,
  WorkerReport,
} from './executor/protocol.js';
export { ERROR_REPLY_MAX_BYTES, ERROR_REPLY_TYPE_ID, serializeError, terminationModeOf } from './executor/protocol.js';
export * from './index.js';
export { findKernel } from './kernel/kernel-definition.js';
export type { KernelLifecycleEvent, LifecycleCommand } from './kernel/kernel-lifecycle.js';
export { kernelLifecycle, lifecycleAccepts } from './kernel/kernel-lifecycle.js';
export { CircuitBreaker } from './operations/circuit-breaker.js';
export { DegradationManager } from './operations/degradation-manager.js';
export type { HealthSource } from './operations/health-checker.js';
export { HealthChecker } from './operations/health-checker.js';
export type { MeteredKernel } from './operations/kernel-series.js';
export type { StaleRecovery } from './operations/kernel-watchdog.js';
export { KernelWatchdog } from './operations/kernel-watchdog.js';
export { GpuMemoryDashboard } from './operations/memory-dashboard.js';
export type { MetricsSource } from './operations/prometheus-exporter.js';
export { PrometheusExporter } from './operations/prometheus-exporter.js';
export { resolveConfig } from './runtime/config.js';
export { DeadLetterStream } from './runtime/dead-letters.js';
export { KernelRegistry } from './runtime/kernel-registry.js';
export { createLogger, LOG_LEVELS } from './runtime/logger.js';
export { runtimeLifecycle } from './runtime/runtime-lifecycle.js';
export { Supervisor } from './supervision/supervisor.js';
export type { KernelTelemetry } from './telemetry/kernel-span-writer.js';
export { OriginSampler } from './telemetry/origin-sampler.js';
export { RuntimeTracing } from './telemetry/runtime-tracing.js';
export {
  LIFECYCLE_TRANSITION_NAMES,
  LifecycleTransition,
  SPAN_RECORD_LAYOUT,
  SpanRecordKind,
  SpanRecordOffset,
  SpanRecordStatus,
} from './telemetry/span-record.js';
export {
  createTelemetryRing,
  SpanRecordReader,
  SpanRecordWriter,
  TELEMETRY_RING_LAYOUT,
  TelemetryRingOffset,
} from './telemetry/telemetry-ring.js';
export type { ResolvedTracingOptions } from './telemetry/tracing-options.js';
export { resolveTracingOptions } from './telemetry/tracing-options.js';
export * from './webgpu.js';
export { CONTROL_BLOCK_LAYOUT, CONTROL_BLOCK_VERSION, ControlBlock, ControlBlockOffset } from './wire/control-block.js';
export { CRC32C_INIT, crc32c, crc32cFinish, crc32cUpdate } from './wire/crc32c.js';
export { DEFAULT_SPIN } from './wire/eventcount.js';
export {
  alignedFrameSize,
  FRAME_ALIGN,
  FRAME_HEADER_LAYOUT,
  FRAME_MAGIC,
  FRAME_VERSION,
  FrameFlags,
  FrameHeader,
} from './wire/frame-header.js';
export { FrameView } from './wire/frame-view.js';
export { wallClockUs } from './wire/hlc.js';
export { fnv1a32 } from './wire/message-schema.js';
export { MIRROR_CHANNEL_LAYOUT, MIRROR_STATE_LAYOUT, MirrorDirection } from './wire/mirror-layout.js';
export { RING_HEADER_LAYOUT, RING_SIGNAL_LAYOUT, RingOffset, RingSignalOffset } from './wire/ring-signal.js';
export type { FieldWriter, LayoutField, LayoutFieldSpec, ScalarKind, StructLayout } from './wire/struct-layout.js';
export { defineStructLayout, layoutField, SCALAR_C_TYPE, SCALAR_SIZE } from './wire/struct-layout.js';
