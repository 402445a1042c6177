import { defineStructLayout } from '../wire/struct-layout.js';

/**
 * One finished span, as the hot path writes it: ids, parent, true start and end, the kernel, the message and how
 * it ended. 80 bytes, fixed, so a worker (and later a CUDA kernel, with GPU timestamps) writes it without the
 * OpenTelemetry SDK; {@link TelemetryExporter} turns records into OpenTelemetry spans off the hot path.
 * Offsets in bytes from the record's start; records start 8-byte aligned.
 */
export const SpanRecordOffset = {
  /** 16 bytes: W3C trace id. */
  TRACE_ID: 0,
  /** 8 bytes: this span's id. */
  SPAN_ID: 16,
  /** 8 bytes: the parent span's id (all zero = a root span). */
  PARENT_SPAN_ID: 24,
  /** u64: start, ns since the telemetry epoch (see {@link TelemetryClock}). */
  START_NS: 32,
  /** u64: end, ns since the telemetry epoch. */
  END_NS: 40,
  /** u64: the message id (0 for lifecycle spans). */
  MESSAGE_ID: 48,
  /** u32: the kernel's instance id (frames' destination; the ControlBlock's kernel_id). */
  KERNEL: 56,
  /** u32: the message schema's type id. */
  TYPE_ID: 60,
  /** u32: payload bytes of the message. */
  PAYLOAD_SIZE: 64,
  /** u32: an `ErrorNumber` when the span failed, else 0. */
  ERROR_CODE: 68,
  /** u8: {@link SpanRecordKind}. */
  KIND: 72,
  /** u8: {@link SpanRecordStatus}. */
  STATUS: 73,
  /** u8: W3C trace flags of the span (bit 0 = sampled; always set in a written record). */
  TRACE_FLAGS: 74,
  /** u8: for lifecycle spans, the {@link LifecycleTransition}; else 0. */
  DETAIL: 75,
  /** u32: the kernel the message came from (0 = host). */
  PEER_KERNEL: 76,
  /** Record size in bytes. */
  SIZE: 80,
} as const;

/** What a record's span did. */
export const SpanRecordKind = {
  /** The host wrote a message into a kernel's input ring (`send` / `trySend`): a PRODUCER span. */
  SEND: 1,
  /** The host sent a request and waited for its response (`call`): a CLIENT span. */
  CALL: 2,
  /** A kernel handled a message (its handler ran): a CONSUMER span, in the worker. */
  PROCESS: 3,
  /** The host took a kernel's output (or a call's response) off its output ring: a CONSUMER span. */
  RECEIVE: 4,
  /** A lifecycle transition (launch, activate, …): an INTERNAL span on the host. */
  LIFECYCLE: 5,
} as const;

/**
 * Flags in a message span's DETAIL byte (lifecycle spans use it for the transition instead).
 */
export const SpanRecordDetail = {
  /** Downstream of this span a telemetry ring was full: the trace stops there (its later spans were not recorded). */
  TRUNCATED: 0x80,
} as const;

/**
 * W3C trace-flags bit, in a frame's TRACE_FLAGS byte, with the sampled bit clear: the message came from a traced one
 * whose span could not be recorded (a full telemetry ring), so it and what follows it are not traced, and a call's
 * answer tells the caller its trace was cut short.
 */
export const TRACE_FLAG_TRUNCATED = 0x02;

/** How a record's span ended. */
export const SpanRecordStatus = {
  OK: 0,
  ERROR: 2,
} as const;

/** Lifecycle transitions recorded as spans (a record's DETAIL byte). */
export const LifecycleTransition = {
  LAUNCH: 1,
  ACTIVATE: 2,
  DEACTIVATE: 3,
  TERMINATE: 4,
  RESTART: 5,
  FAIL: 6,
} as const;

/** The lower-case names of {@link LifecycleTransition}, indexed by its value. */
export const LIFECYCLE_TRANSITION_NAMES: readonly string[] = [
  '',
  'launch',
  'activate',
  'deactivate',
  'terminate',
  'restart',
  'fail',
];

/** The span record layout table, from which the C header is generated. */
export const SPAN_RECORD_LAYOUT = defineStructLayout(
  'rk_span_record',
  "One finished span in a telemetry ring. The executor (worker thread, later the GPU) writes processing spans; the host writes send/call/receive/lifecycle spans into its own ring. Written completely before the ring's write index publishes it; the exporter turns it into an OpenTelemetry span. Times are ns since the telemetry epoch (the ring header's epoch_unix_ms).",
  SpanRecordOffset.SIZE,
  [
    ['trace_id', 'u8', SpanRecordOffset.TRACE_ID, 'producer', 'W3C trace id.', { count: 16 }],
    ['span_id', 'u8', SpanRecordOffset.SPAN_ID, 'producer', "This span's id.", { count: 8 }],
    ['parent_span_id', 'u8', SpanRecordOffset.PARENT_SPAN_ID, 'producer', 'Parent span id; zero = root.', { count: 8 }],
    ['start_ns', 'u64', SpanRecordOffset.START_NS, 'producer', 'Start, ns since the epoch.'],
    ['end_ns', 'u64', SpanRecordOffset.END_NS, 'producer', 'End, ns since the epoch.'],
    ['message_id', 'u64', SpanRecordOffset.MESSAGE_ID, 'producer', 'Message id; 0 for lifecycle spans.'],
    ['kernel', 'u32', SpanRecordOffset.KERNEL, 'producer', 'Kernel instance id.'],
    ['type_id', 'u32', SpanRecordOffset.TYPE_ID, 'producer', 'Message type id.'],
    ['payload_size', 'u32', SpanRecordOffset.PAYLOAD_SIZE, 'producer', 'Message body bytes.'],
    ['error_code', 'u32', SpanRecordOffset.ERROR_CODE, 'producer', 'RK_E_* when failed, else 0.'],
    [
      'kind',
      'u8',
      SpanRecordOffset.KIND,
      'producer',
      'RK_SPAN_KIND_*: 1 send, 2 call, 3 process, 4 receive, 5 lifecycle.',
    ],
    ['status', 'u8', SpanRecordOffset.STATUS, 'producer', '0 ok, 2 error.'],
    ['trace_flags', 'u8', SpanRecordOffset.TRACE_FLAGS, 'producer', 'W3C trace flags; bit 0 set.'],
    ['detail', 'u8', SpanRecordOffset.DETAIL, 'producer', 'Lifecycle transition for kind 5, else 0.'],
    ['peer_kernel', 'u32', SpanRecordOffset.PEER_KERNEL, 'producer', 'Kernel the message came from; 0 = host.'],
  ],
);
