// biome-ignore-all assist/source/organizeImports: grouped by what a user does with ringkernel, not by file path.
/**
 * ringkernel: GPU kernels as persistent actors. This module is the public API — what an application imports.
 * Tests, benchmarks and tools reach the internals (drivers, ring layouts, span records) through
 * `ringkernel/internal`, which makes no promise of stability.
 *
 * @packageDocumentation
 */

// --- The runtime: build one, launch kernels on it, shut it down -------------------------------------------------
export { RingKernelRuntime } from './runtime/runtime.js';
export type { DrainReport, LaunchOptions, LostCudaDevice, RuntimeState, ShutdownReport } from './runtime/runtime.js';
export { RuntimeBuilder } from './runtime/builder.js';
export { DEFAULT_RUNTIME_CONFIG } from './runtime/config.js';
export type { RuntimeConfig } from './runtime/config.js';
export { PRESETS } from './runtime/presets.js';
export type { PresetName, PresetSettings } from './runtime/presets.js';
export type { RuntimeLifecycleEvent, RuntimeLifecycleState } from './runtime/runtime-lifecycle.js';
export type { LogLevel, RuntimeLogger } from './runtime/logger.js';
export { BACKEND_TYPES, probeBackend } from './backends/backend-type.js';
export type { BackendProbe, BackendType } from './backends/backend-type.js';

// --- Kernels and their messages ---------------------------------------------------------------------------------
export { defineKernel } from './kernel/kernel-definition.js';
export type {
  AnyKernelDefinition,
  CpuHandler,
  InputOf,
  KernelContext,
  KernelDefinition,
  KernelSpec,
  OutputOf,
} from './kernel/kernel-definition.js';
export type { CudaKernelSpec } from './kernel/cuda-kernel-spec.js';
export type { WebGpuKernelSpec } from './kernel/webgpu-kernel-spec.js';
export { Priority } from './kernel/priority.js';
export type { LatencySummary } from './kernel/latency-histogram.js';
export { BYTES_TYPE_ID, BytesMessage, defineMessage, field, RESERVED_TYPE_IDS } from './wire/message-schema.js';
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
export { renderMessagesHeader } from './backends/c-header.js';
export type { FrameView } from './wire/frame-view.js';
export { compareHlc, HybridLogicalClock } from './wire/hlc.js';
export type { HlcTimestamp, HybridLogicalClockOptions } from './wire/hlc.js';

// --- Talking to a launched kernel -------------------------------------------------------------------------------
export { KernelHandle } from './runtime/kernel-handle.js';
export type { CallOptions, Dim3, KernelMetrics, ReceiveOptions, SendOptions } from './runtime/kernel-handle-options.js';
export { KernelStatus, kernelStatusName } from './wire/kernel-status.js';
export type { KernelStatusCode, KernelStatusName } from './wire/kernel-status.js';
export type { DeadLetter, DeadLetterStream } from './runtime/dead-letters.js';
export type { DeadLetterReason, SerializedError } from './executor/protocol.js';
export type { KernelRegistry, RegistryEvent } from './runtime/kernel-registry.js';

// --- Frames between your own threads (rings without a runtime) -------------------------------------------------
export { createFrameRing, MAX_RING_CAPACITY } from './wire/frame-ring.js';
export type { FrameRingMemory, FrameRingOptions } from './wire/frame-ring.js';
export { FrameProducer } from './wire/frame-producer.js';
export type { FrameProducerOptions } from './wire/frame-producer.js';
export { FrameConsumer } from './wire/frame-consumer.js';
export type { FrameConsumerOptions } from './wire/frame-consumer.js';
export type { Envelope } from './wire/envelope.js';

// --- XState: kernels as actors ----------------------------------------------------------------------------------
export { fromKernel, isKernelActorOutput, kernelActorExited } from './actors/from-kernel.js';
export type {
  FromKernelOptions,
  KernelActorEvent,
  KernelActorInput,
  KernelActorOutputEvent,
  KernelActorSnapshot,
  KernelCommandsOf,
  KernelEventsOf,
} from './actors/from-kernel.js';

// --- Supervision ------------------------------------------------------------------------------------------------
export { RestartStrategy } from './supervision/supervisor.js';
export type {
  BackoffOptions,
  Supervisor,
  SupervisorEvent,
  SupervisorHost,
  SupervisorOptions,
  SupervisorStatus,
} from './supervision/supervisor.js';

// --- Devices: topology, placement, migration, checkpoints, transfer strategies -----------------------------------
export { LoadBalancingStrategy } from './devices/multi-gpu-coordinator.js';
export type {
  DeviceLoad,
  DeviceSelector,
  MultiGpuCoordinator,
  PlacementRequirements,
} from './devices/multi-gpu-coordinator.js';
export type { DeviceInfo, DeviceKind, DeviceLink, DeviceLinkKind, GpuTopology } from './devices/topology.js';
export type { DeviceMemoryReport } from './runtime/device-registry.js';
export type { KernelMigrator, MigrationOptions, MigrationReport } from './devices/kernel-migrator.js';
export type { KernelCheckpoint, QueuedFrames } from './devices/checkpoint.js';
export { detectTransferStrategy, TRANSFER_STRATEGIES } from './bridge/transfer-strategy.js';
export type { TransferStrategy, TransferStrategyChoice } from './bridge/transfer-strategy.js';
export type { KernelTransferStats } from './bridge/transfer-bridge.js';
export type { MirrorChannelStats, MirrorStats } from './bridge/dma-mirror.js';
export type { CudaDeviceInfo } from './backends/cuda/driver.js';

// --- Operations: health, watchdog, circuit breakers, degradation, metrics, memory -------------------------------
export type {
  HealthCheck,
  HealthChecker,
  HealthLevel,
  HealthReport,
  HealthStatus,
} from './operations/health-checker.js';
export type {
  KernelWatchdog,
  StaleKernel,
  WatchdogPolicy,
  WatchdogRecovery,
  WatchedKernel,
} from './operations/kernel-watchdog.js';
export type {
  CircuitBreaker,
  CircuitBreakerOptions,
  CircuitBreakerStats,
  CircuitState,
} from './operations/circuit-breaker.js';
export { DEFAULT_DEGRADATION, DegradationLevel } from './operations/degradation-manager.js';
export type {
  DegradationChange,
  DegradationManager,
  DegradationOptions,
  DegradationSignals,
  DegradationThresholds,
} from './operations/degradation-manager.js';
export type {
  MetricsServer,
  PrometheusExporter,
  PrometheusExporterOptions,
  ServeOptions,
} from './operations/prometheus-exporter.js';
export type { InspectionObserver } from './operations/lifecycle-inspector.js';
export type {
  GpuMemoryDashboard,
  MemoryAlertEvent,
  MemoryAllocation,
  MemoryKind,
  MemoryPressureAlert,
  MemoryPressureLevel,
} from './operations/memory-dashboard.js';

// --- A cluster over NATS: the types the runtime's cluster members are written in -------------------------------
// The cluster's errors are in `ringkernel/cluster`, the CUDA backend's in `ringkernel/cuda`, the WebGPU backend's
// (with adapter probing and WGSL generation) in `ringkernel/webgpu`.
export type { ClusterNode, ClusterNodeEvents, ClusterNodeStats } from './cluster/cluster-node.js';
export type { ClusterOptions, ClusterTlsOptions } from './cluster/cluster-options.js';
export type { KernelRef, KernelRefMetrics } from './cluster/cluster-ports.js';
export type {
  ClusterKernelEntry,
  ClusterNodeEntry,
  ClusterRegistry,
  ClusterRegistryEvent,
  Delivery,
} from './cluster/cluster-registry.js';
export type { DeliveryNotice } from './cluster/kernel-host.js';
export type { NodeMoveOptions, NodeMoveReport } from './cluster/kernel-move.js';
export type { BatchOptions, RemoteKernel, RemoteKernelStats } from './cluster/remote-kernel.js';

// --- Tracing ----------------------------------------------------------------------------------------------------
export { DEFAULT_OTLP_TRACES_ENDPOINT } from './telemetry/tracing-options.js';
export type { TracingOptions } from './telemetry/tracing-options.js';
export { SAMPLER_NAMES } from './telemetry/origin-sampler.js';
export type { SamplerName } from './telemetry/origin-sampler.js';
export type { RuntimeTracing, TracingStats } from './telemetry/runtime-tracing.js';
export type { ObservabilityContext } from './telemetry/observability-context.js';
export type { TelemetryStats } from './telemetry/telemetry-exporter.js';

// --- Errors: every one has a code (`RK_*`) and a numeric twin shared with C --------------------------------------
export { RingKernelError } from './errors/ringkernel-error.js';
export { ArgumentTypeError, InvalidArgumentError } from './errors/argument-errors.js';
export { ErrorCode, ErrorNumber, errorNumberOf } from './errors/codes.js';
export type { ErrorCodeName, ErrorCodeString } from './errors/codes.js';
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
  AbortedError,
  ClockSkewError,
  InvalidEnvelopeError,
  MessageSchemaError,
  MessageTypeMismatchError,
  StringTooLongError,
  TimeoutError,
  ValueOutOfRangeError,
} from './errors/value-errors.js';
export { FrameTooLargeError, MalformedFrameError } from './errors/frame-errors.js';
export type { MalformedFrameCode } from './errors/frame-errors.js';
export { MigrationError, PlacementError, StateSnapshotError } from './errors/device-errors.js';
export type { MigrationPhase } from './errors/device-errors.js';
