/**
 * Every error ringkernel raises or records carries one of these codes.
 *
 * The string is what `error.code` holds in JavaScript; the number is what the
 * executor writes into a ControlBlock's `last_error_code` word and what the
 * generated C header names `RK_E_*`, so host, worker and device agree on it.
 * Numbers are part of the binary contract: never renumber, only append.
 */
export const ErrorCode = {
  /** A frame's payload is larger than the ring's maximum message size. */
  FrameTooLarge: 'RK_FRAME_TOO_LARGE',
  /** A frame's magic number is wrong: not a ringkernel frame, or overwritten. */
  FrameBadMagic: 'RK_FRAME_BAD_MAGIC',
  /** A frame was written by an incompatible envelope version. */
  FrameBadVersion: 'RK_FRAME_BAD_VERSION',
  /** A frame's length is shorter than a header, longer than the ring's maximum frame or past the published data. */
  FrameBadLength: 'RK_FRAME_BAD_LENGTH',
  /** A frame's `payload_size` does not match its length. */
  FramePayloadSizeMismatch: 'RK_FRAME_PAYLOAD_SIZE_MISMATCH',
  /** A frame that asked for integrity failed its CRC32-C check. */
  FrameBadChecksum: 'RK_FRAME_BAD_CHECKSUM',
  /** A value does not fit its field (an integer out of range, a wrong array length, a wrong type). */
  ValueOutOfRange: 'RK_VALUE_OUT_OF_RANGE',
  /** A string's UTF-8 encoding is longer than its field's capacity. */
  StringTooLong: 'RK_STRING_TOO_LONG',
  /** A frame was read as a message type it does not carry (type id or payload size differ). */
  MessageTypeMismatch: 'RK_MESSAGE_TYPE_MISMATCH',
  /** An envelope field is out of range (an id past 2^53, a priority past 255, a trace id of the wrong length). */
  InvalidEnvelope: 'RK_INVALID_ENVELOPE',
  /** A remote hybrid-logical-clock timestamp is further ahead than the allowed skew. */
  ClockSkew: 'RK_CLOCK_SKEW',
  /** A wait ran past its deadline. */
  Timeout: 'RK_TIMEOUT',
  /** A wait was cancelled through its AbortSignal. */
  Aborted: 'RK_ABORTED',
  /** No kernel is defined (or launched) under that id. */
  KernelNotFound: 'RK_KERNEL_NOT_FOUND',
  /** The operation is not valid in the kernel's current lifecycle state. */
  InvalidState: 'RK_INVALID_STATE',
  /** The kernel's input queue is full and the send asked not to wait. */
  QueueFull: 'RK_QUEUE_FULL',
  /** The requested backend cannot run on this machine. */
  BackendUnavailable: 'RK_BACKEND_UNAVAILABLE',
  /** The kernel failed (its worker died, or termination was forced); pending operations reject with this. */
  KernelFailed: 'RK_KERNEL_FAILED',
  /** The kernel's handler threw while handling a call's request. */
  HandlerFailed: 'RK_HANDLER_FAILED',
  /** The runtime has been shut down. */
  RuntimeShutDown: 'RK_RUNTIME_SHUT_DOWN',
  /** Two different kernels were defined under one id. */
  DuplicateKernel: 'RK_DUPLICATE_KERNEL',
  /** A kernel did not finish terminating within `terminationTimeout`. */
  TerminationTimeout: 'RK_TERMINATION_TIMEOUT',
  /** A circuit breaker is open: the operation was refused without being tried. */
  CircuitOpen: 'RK_CIRCUIT_OPEN',
  /** A supervisor restarted its kernels more than `maxRestarts` times within `windowMs`. */
  RestartLimit: 'RK_RESTART_LIMIT',
  /** The runtime is not accepting new work (not started yet, or draining). */
  NotAcceptingWork: 'RK_NOT_ACCEPTING_WORK',
  /** Load shedding refused a message of too low a priority for the current degradation level. */
  LoadShed: 'RK_LOAD_SHED',
  /** A kernel's state could not be checkpointed or restored (its snapshot/restore hook threw, or it is unserializable). */
  StateSnapshotFailed: 'RK_STATE_SNAPSHOT_FAILED',
  /** A kernel migration failed and was rolled back: the kernel runs on at its source device. */
  MigrationFailed: 'RK_MIGRATION_FAILED',
  /** No device satisfies a placement's requirements (unknown device, not enough memory or compute units). */
  PlacementFailed: 'RK_PLACEMENT_FAILED',
  /** A CUDA driver-API call returned an error; the error carries the CUDA error name and number. */
  CudaError: 'RK_CUDA_ERROR',
  /** A CUDA kernel's handler could not be compiled (NVRTC, nvcc, or the emulated device's host build). */
  CudaCompileFailed: 'RK_CUDA_COMPILE_FAILED',
  /** An NVML call (libnvidia-ml) returned an error; the error carries the NVML error name and number. */
  NvmlError: 'RK_NVML_ERROR',
  /**
   * A CUDA device hit a sticky error (a fault in a kernel: illegal address, trap, failed device assert): every
   * kernel on it has failed and the process cannot use it again.
   */
  CudaDeviceLost: 'RK_CUDA_DEVICE_LOST',
  /**
   * A kernel's module cannot be loaded by the runtime's workers: it is the program's entry module (every worker
   * would start the program again), it builds a runtime when imported, or Node cannot load it in a worker.
   */
  KernelModule: 'RK_KERNEL_MODULE',
  /** A message definition is malformed (a field type or name, the message name) or clashes with another one. */
  InvalidMessageSchema: 'RK_INVALID_MESSAGE_SCHEMA',
  /** A message schema cannot be expressed as a WGSL host-shareable struct; the error names the field and why. */
  WgslSchemaUnsupported: 'RK_WGSL_SCHEMA_UNSUPPORTED',
  /** A WebGPU kernel's WGSL handler did not compile; the error carries the compiler's messages with line and column. */
  WgslCompileFailed: 'RK_WGSL_COMPILE_FAILED',
  /** A WebGPU call failed (a validation, out-of-memory or internal error the device reported). */
  WebGpuError: 'RK_WEBGPU_ERROR',
  /** A WebGPU device was lost: every kernel on it has failed. */
  WebGpuDeviceLost: 'RK_WEBGPU_DEVICE_LOST',
  /**
   * An argument or option of a call into the library is wrong: of the wrong type, out of its range, or naming
   * something that does not exist. The error names the argument, is a `TypeError` or `RangeError` as the
   * ecosystem expects, and still carries this code.
   */
  InvalidArgument: 'RK_INVALID_ARGUMENT',
  /** No NATS server of the cluster could be reached (connection refused, timed out, or lost for good). */
  ClusterUnreachable: 'RK_CLUSTER_UNREACHABLE',
  /** The NATS server refused the node's credentials (or their absence). */
  ClusterAuthFailed: 'RK_CLUSTER_AUTH_FAILED',
  /** No node of the cluster hosts a kernel under that name. */
  ClusterNameUnknown: 'RK_CLUSTER_NAME_UNKNOWN',
  /** The node hosting a kernel stopped answering (it died, or it left the cluster) while a request waited. */
  ClusterNodeDown: 'RK_CLUSTER_NODE_DOWN',
  /** The NATS client packages (`@nats-io/transport-node`, `@nats-io/jetstream`, `@nats-io/kv`) are not installed. */
  ClusterUnavailable: 'RK_CLUSTER_UNAVAILABLE',
  /** A message sent at-most-once to a remote kernel was lost on the way (counted, dead-lettered). */
  ClusterMessageLost: 'RK_CLUSTER_MESSAGE_LOST',
  /** A launch named a node (`{ node }`) that is not a live node of the cluster. */
  ClusterNodeUnknown: 'RK_CLUSTER_NODE_UNKNOWN',
  /** The node a launch was placed on could not launch the kernel (its module would not load there, or the launch failed). */
  ClusterPlacementFailed: 'RK_CLUSTER_PLACEMENT_FAILED',
  /**
   * A node's copy of the cluster registry stopped following the registry's bucket (its watch ended, failed, or fell
   * behind the node's own heartbeats); the node read the bucket anew.
   */
  ClusterRegistryStale: 'RK_CLUSTER_REGISTRY_STALE',
} as const;

/** The name of an error code, e.g. `'FrameTooLarge'`. */
export type ErrorCodeName = keyof typeof ErrorCode;
/** The string code an error carries, e.g. `'RK_FRAME_TOO_LARGE'`. */
export type ErrorCodeString = (typeof ErrorCode)[ErrorCodeName];

/**
 * The numeric form of each code, shared with C and CUDA (`RK_E_*`). 0 means "no error".
 * Grouped by hundreds: 1xx frames, 2xx message values, 3xx clocks, 4xx waits, 5xx kernels and runtime, 6xx WebGPU,
 * 7xx the library's API used wrongly, 8xx the cluster.
 */
export const ErrorNumber: Readonly<Record<ErrorCodeName, number>> = {
  FrameTooLarge: 101,
  FrameBadMagic: 102,
  FrameBadVersion: 103,
  FrameBadLength: 104,
  FramePayloadSizeMismatch: 105,
  FrameBadChecksum: 106,
  ValueOutOfRange: 201,
  StringTooLong: 202,
  MessageTypeMismatch: 203,
  InvalidEnvelope: 204,
  ClockSkew: 301,
  Timeout: 401,
  Aborted: 402,
  KernelNotFound: 501,
  InvalidState: 502,
  QueueFull: 503,
  BackendUnavailable: 504,
  KernelFailed: 505,
  HandlerFailed: 506,
  RuntimeShutDown: 507,
  DuplicateKernel: 508,
  TerminationTimeout: 509,
  CircuitOpen: 510,
  RestartLimit: 511,
  NotAcceptingWork: 512,
  LoadShed: 513,
  StateSnapshotFailed: 514,
  MigrationFailed: 515,
  PlacementFailed: 516,
  CudaError: 517,
  CudaCompileFailed: 518,
  NvmlError: 519,
  CudaDeviceLost: 520,
  KernelModule: 530,
  InvalidMessageSchema: 531,
  WgslSchemaUnsupported: 601,
  WgslCompileFailed: 602,
  WebGpuError: 603,
  WebGpuDeviceLost: 604,
  InvalidArgument: 701,
  ClusterUnreachable: 801,
  ClusterAuthFailed: 802,
  ClusterNameUnknown: 803,
  ClusterNodeDown: 804,
  ClusterUnavailable: 805,
  ClusterMessageLost: 806,
  ClusterNodeUnknown: 807,
  ClusterPlacementFailed: 808,
  ClusterRegistryStale: 809,
};

const numberByCode = new Map<string, number>(
  (Object.keys(ErrorCode) as ErrorCodeName[]).map((name) => [ErrorCode[name], ErrorNumber[name]]),
);

/**
 * The numeric code for a string code, for writing into a ControlBlock.
 *
 * @example
 * errorNumberOf('RK_FRAME_BAD_MAGIC'); // 102
 */
export function errorNumberOf(code: ErrorCodeString): number {
  return numberByCode.get(code) ?? 0;
}

const codeByNumber = new Map<number, ErrorCodeString>(
  [...numberByCode].map(([code, n]) => [n, code as ErrorCodeString]),
);

/**
 * The string code for a numeric one (what a ControlBlock's `last_error_code` holds), or undefined when it is none.
 *
 * @example
 * errorCodeOf(106); // 'RK_FRAME_BAD_CHECKSUM'
 */
export function errorCodeOf(errorNumber: number): ErrorCodeString | undefined {
  return codeByNumber.get(errorNumber);
}
