/**
 * ringkernel: GPU kernels as persistent actors. This module is the whole public API; anything not exported here
 * is internal.
 *
 * @packageDocumentation
 */

export type {
  FromKernelOptions,
  KernelActorEvent,
  KernelActorInput,
  KernelActorOutputEvent,
  KernelActorSnapshot,
  KernelCommandsOf,
  KernelEventsOf,
} from './actors/from-kernel.js';
// Actors
export { fromKernel, isKernelActorOutput, kernelActorExited } from './actors/from-kernel.js';
export type { BackendProbe, BackendType } from './backends/backend-type.js';
export { BACKEND_TYPES, probeBackend } from './backends/backend-type.js';
export { LAYOUT_HEADER_PATH, NATIVE_LAYOUTS, renderLayoutHeader, renderMessagesHeader } from './backends/c-header.js';
export type {
  CudaDeviceInfo,
  CudaDriverLoad,
  CudaKernelArg,
  CudaLaunchConfig,
  CudaProbe,
} from './backends/cuda/driver.js';
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
// Transfer strategies (src/bridge)
export type { MirrorChannelStats, MirrorStats } from './bridge/dma-mirror.js';
export type { KernelTransferStats } from './bridge/transfer-bridge.js';
export type { TransferStrategy, TransferStrategyChoice } from './bridge/transfer-strategy.js';
export { detectTransferStrategy, TRANSFER_STRATEGIES } from './bridge/transfer-strategy.js';
// Cluster (src/cluster): kernels addressable across processes and machines through NATS
export type { ClusterNode, ClusterNodeEvents, ClusterNodeStats } from './cluster/cluster-node.js';
export type { ClusterOptions, ClusterTlsOptions } from './cluster/cluster-options.js';
export type { KernelRef } from './cluster/cluster-ports.js';
export type {
  ClusterKernelEntry,
  ClusterNodeEntry,
  ClusterRegistry,
  ClusterRegistryEvent,
  Delivery,
} from './cluster/cluster-registry.js';
export type { DeliveryNotice } from './cluster/kernel-host.js';
export type { BatchOptions, RemoteKernel, RemoteKernelStats } from './cluster/remote-kernel.js';
// Devices: topology, placement, migration, checkpoints
export type { KernelCheckpoint, QueuedFrames } from './devices/checkpoint.js';
export type { DeviceMemoryReading } from './devices/cuda-device-memory.js';
export { CudaDeviceMemory } from './devices/cuda-device-memory.js';
export type { CudaTopologyOptions } from './devices/cuda-topology.js';
export { cudaTopology } from './devices/cuda-topology.js';
export type { MigrationOptions, MigrationReport } from './devices/kernel-migrator.js';
export { KernelMigrator } from './devices/kernel-migrator.js';
export type { DeviceLoad, DeviceSelector, PlacementRequirements } from './devices/multi-gpu-coordinator.js';
export { LoadBalancingStrategy, MultiGpuCoordinator } from './devices/multi-gpu-coordinator.js';
export type { DeviceInfo, DeviceKind, DeviceLink, DeviceLinkKind, GpuTopology } from './devices/topology.js';
export { measureHostLink } from './devices/topology.js';
export {
  ClusterAuthError,
  ClusterMessageLostError,
  ClusterNameUnknownError,
  ClusterNodeDownError,
  ClusterUnavailableError,
  ClusterUnreachableError,
} from './errors/cluster-errors.js';
export type { ErrorCodeName, ErrorCodeString } from './errors/codes.js';
// Errors
export { ErrorCode, ErrorNumber, errorNumberOf } from './errors/codes.js';
export { CudaCompileError, CudaDeviceLostError, CudaError, NvmlError } from './errors/cuda-errors.js';
export type { MigrationPhase } from './errors/device-errors.js';
export { MigrationError, PlacementError, StateSnapshotError } from './errors/device-errors.js';
export type { MalformedFrameCode } from './errors/frame-errors.js';
export { FrameTooLargeError, MalformedFrameError } from './errors/frame-errors.js';
export { RingKernelError } from './errors/ringkernel-error.js';
export {
  BackendUnavailableError,
  CircuitOpenError,
  DuplicateKernelError,
  HandlerFailedError,
  InvalidStateError,
  KernelFailedError,
  KernelModuleError,
  KernelNotFoundError,
  LinkTypeMismatchError,
  LoadShedError,
  NotAcceptingWorkError,
  QueueFullError,
  RestartLimitError,
  RuntimeShutDownError,
} from './errors/runtime-errors.js';
export {
  ClockSkewError,
  InvalidEnvelopeError,
  MessageSchemaError,
  MessageTypeMismatchError,
  StringTooLongError,
  TimeoutError,
  ValueOutOfRangeError,
} from './errors/value-errors.js';
export type { DeadLetterReason, SerializedError } from './executor/protocol.js';
// CUDA (src/backends/cuda): kernel specs, the compile pipeline, the driver API
export type { CudaKernelSpec } from './kernel/cuda-kernel-spec.js';
export type {
  AnyKernelDefinition,
  CpuHandler,
  InputOf,
  KernelContext,
  KernelDefinition,
  KernelSpec,
  OutputOf,
} from './kernel/kernel-definition.js';
export { defineKernel, findKernel } from './kernel/kernel-definition.js';
export type { KernelLifecycleEvent, LifecycleCommand } from './kernel/kernel-lifecycle.js';
export { kernelLifecycle, lifecycleAccepts } from './kernel/kernel-lifecycle.js';
export type { LatencySummary } from './kernel/latency-histogram.js';
export { Priority } from './kernel/priority.js';
export type { CircuitBreakerOptions, CircuitBreakerStats, CircuitState } from './operations/circuit-breaker.js';
// Operations
export { CircuitBreaker } from './operations/circuit-breaker.js';
export type {
  DegradationChange,
  DegradationOptions,
  DegradationSignals,
  DegradationThresholds,
} from './operations/degradation-manager.js';
export { DEFAULT_DEGRADATION, DegradationLevel, DegradationManager } from './operations/degradation-manager.js';
export type { HealthCheck, HealthLevel, HealthReport, HealthStatus } from './operations/health-checker.js';
export { HealthChecker } from './operations/health-checker.js';
export type { StaleKernel, WatchdogPolicy, WatchdogRecovery } from './operations/kernel-watchdog.js';
export { KernelWatchdog } from './operations/kernel-watchdog.js';
export type {
  MemoryAlertEvent,
  MemoryAllocation,
  MemoryKind,
  MemoryPressureAlert,
  MemoryPressureLevel,
} from './operations/memory-dashboard.js';
export { GpuMemoryDashboard } from './operations/memory-dashboard.js';
export {
  type MetricsServer,
  PrometheusExporter,
  type PrometheusExporterOptions,
  type ServeOptions,
} from './operations/prometheus-exporter.js';
export { RuntimeBuilder } from './runtime/builder.js';
export type { RuntimeConfig } from './runtime/config.js';
export { DEFAULT_RUNTIME_CONFIG, resolveConfig } from './runtime/config.js';
export type { DeadLetter } from './runtime/dead-letters.js';
export { DeadLetterStream } from './runtime/dead-letters.js';
export type { CallOptions, Dim3, KernelMetrics, SendOptions } from './runtime/kernel-handle.js';
export { KernelHandle } from './runtime/kernel-handle.js';
export type { RegistryEvent } from './runtime/kernel-registry.js';
export { KernelRegistry } from './runtime/kernel-registry.js';
export type { LogLevel, RuntimeLogger } from './runtime/logger.js';
export { createLogger, LOG_LEVELS } from './runtime/logger.js';
export type { PresetName, PresetSettings } from './runtime/presets.js';
export { PRESETS } from './runtime/presets.js';
export type { DrainReport, LaunchOptions, LostCudaDevice, RuntimeState, ShutdownReport } from './runtime/runtime.js';
// Runtime
export { RingKernelRuntime } from './runtime/runtime.js';
export type { RuntimeLifecycleEvent, RuntimeLifecycleState } from './runtime/runtime-lifecycle.js';
export { runtimeLifecycle } from './runtime/runtime-lifecycle.js';
export type {
  BackoffOptions,
  SupervisorEvent,
  SupervisorOptions,
  SupervisorStatus,
} from './supervision/supervisor.js';
export { RestartStrategy, Supervisor } from './supervision/supervisor.js';
// Tracing
export type { KernelTelemetry } from './telemetry/kernel-span-writer.js';
export type { SamplerName } from './telemetry/origin-sampler.js';
export { OriginSampler, SAMPLER_NAMES } from './telemetry/origin-sampler.js';
export { RuntimeTracing } from './telemetry/runtime-tracing.js';
export {
  LIFECYCLE_TRANSITION_NAMES,
  LifecycleTransition,
  SPAN_RECORD_LAYOUT,
  SpanRecordKind,
  SpanRecordOffset,
  SpanRecordStatus,
} from './telemetry/span-record.js';
export type { TelemetryStats } from './telemetry/telemetry-exporter.js';
export {
  createTelemetryRing,
  SpanRecordReader,
  SpanRecordWriter,
  TELEMETRY_RING_LAYOUT,
  TelemetryRingOffset,
} from './telemetry/telemetry-ring.js';
export type { ResolvedTracingOptions, TracingOptions } from './telemetry/tracing-options.js';
export { DEFAULT_OTLP_TRACES_ENDPOINT, resolveTracingOptions } from './telemetry/tracing-options.js';
export { CONTROL_BLOCK_LAYOUT, CONTROL_BLOCK_VERSION, ControlBlock, ControlBlockOffset } from './wire/control-block.js';
export { CRC32C_INIT, crc32c, crc32cFinish, crc32cUpdate } from './wire/crc32c.js';
export type { Envelope } from './wire/envelope.js';
export { DEFAULT_SPIN } from './wire/eventcount.js';
export type { FrameConsumerOptions } from './wire/frame-consumer.js';
export { FrameConsumer } from './wire/frame-consumer.js';
export {
  alignedFrameSize,
  FRAME_ALIGN,
  FRAME_HEADER_LAYOUT,
  FRAME_MAGIC,
  FRAME_VERSION,
  FrameFlags,
  FrameHeader,
} from './wire/frame-header.js';
export type { FrameProducerOptions } from './wire/frame-producer.js';
export { FrameProducer } from './wire/frame-producer.js';
export type { FrameRingMemory, FrameRingOptions } from './wire/frame-ring.js';
export { createFrameRing, MAX_RING_CAPACITY } from './wire/frame-ring.js';
export { FrameView } from './wire/frame-view.js';
export type { HlcTimestamp, HybridLogicalClockOptions } from './wire/hlc.js';
export { compareHlc, HybridLogicalClock, wallClockUs } from './wire/hlc.js';
export type { KernelStatusCode, KernelStatusName } from './wire/kernel-status.js';
export { KernelStatus, kernelStatusName } from './wire/kernel-status.js';
export type {
  ArrayFieldType,
  BytesFieldType,
  DefineMessageOptions,
  FieldInput,
  FieldsSpec,
  FieldType,
  FieldView,
  MessageCodec,
  MessageInput,
  MessageObject,
  MessageSchema,
  MessageView,
  SchemaField,
  StringFieldType,
} from './wire/message-schema.js';
// Wire: messages and frames
export {
  BYTES_TYPE_ID,
  BytesMessage,
  defineMessage,
  field,
  fnv1a32,
  RESERVED_TYPE_IDS,
} from './wire/message-schema.js';
export { MIRROR_CHANNEL_LAYOUT, MIRROR_STATE_LAYOUT, MirrorDirection } from './wire/mirror-layout.js';
export { RING_HEADER_LAYOUT, RING_SIGNAL_LAYOUT, RingOffset, RingSignalOffset } from './wire/ring-signal.js';
export type { FieldWriter, LayoutField, LayoutFieldSpec, ScalarKind, StructLayout } from './wire/struct-layout.js';
// Wire: binary contracts
export { defineStructLayout, layoutField, SCALAR_C_TYPE, SCALAR_SIZE } from './wire/struct-layout.js';
