/* ringkernel binary layouts. Generated from the TypeScript tables in src/wire by `npm run gen:native`; do not edit. */

#ifndef RINGKERNEL_LAYOUT_H
#define RINGKERNEL_LAYOUT_H


#if defined(__CUDACC_RTC__)
/* NVRTC has no C library headers: libcu++ (the toolkit's include path) gives it the fixed-width types in the
   global namespace and size_t, from libcu++ 1.x (CUDA 11) to CCCL 3 (CUDA 13). Its offsetof is no constant
   expression to NVRTC's front end (a pointer difference); the classic form is, so the layout asserts use that. */
#include <cuda/std/cstddef>
#include <cuda/std/cstdint>
#define RK_OFFSETOF(type, member) ((size_t) & (((type *)0)->member))
#else
#include <stddef.h>
#include <stdint.h>
#define RK_OFFSETOF(type, member) offsetof(type, member)
#endif

#ifdef __cplusplus
#define RK_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#define RK_ALIGNOF(type) alignof(type)
/* C++ and CUDA: shared words are plain integers accessed through atomic intrinsics
   (cuda::atomic_ref, or volatile loads with __threadfence on the device). */
#define RK_ATOMIC(type) type
#else
#define RK_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define RK_ALIGNOF(type) _Alignof(type)
/* C11: shared words are _Atomic; use atomic_load_explicit(memory_order_acquire) and
   atomic_store_explicit(memory_order_release). */
#define RK_ATOMIC(type) _Atomic type
#endif


#define RK_FRAME_MAGIC 0x31464b52u
#define RK_FRAME_VERSION 1u
#define RK_FRAME_ALIGN 8u
#define RK_FRAME_FLAG_CHECKSUM 1u
#define RK_FRAME_FLAG_RESPONSE 2u
#define RK_FRAME_FLAG_ERROR 4u
#define RK_FRAME_FLAG_REQUEST 8u
#define RK_FRAME_FLAG_DEAD_LETTER 16u
#define RK_CONTROL_BLOCK_VERSION 1u

/* Kernel lifecycle status word. */
#define RK_STATUS_CREATED 0u
#define RK_STATUS_LAUNCHED 1u
#define RK_STATUS_ACTIVE 2u
#define RK_STATUS_DEACTIVATED 3u
#define RK_STATUS_TERMINATING 4u
#define RK_STATUS_TERMINATED 5u
#define RK_STATUS_FAILED 6u

/* Error codes (ControlBlock.last_error_code). */
#define RK_E_NONE 0u
#define RK_E_FRAME_TOO_LARGE 101u
#define RK_E_FRAME_BAD_MAGIC 102u
#define RK_E_FRAME_BAD_VERSION 103u
#define RK_E_FRAME_BAD_LENGTH 104u
#define RK_E_FRAME_PAYLOAD_SIZE_MISMATCH 105u
#define RK_E_FRAME_BAD_CHECKSUM 106u
#define RK_E_VALUE_OUT_OF_RANGE 201u
#define RK_E_STRING_TOO_LONG 202u
#define RK_E_MESSAGE_TYPE_MISMATCH 203u
#define RK_E_INVALID_ENVELOPE 204u
#define RK_E_CLOCK_SKEW 301u
#define RK_E_TIMEOUT 401u
#define RK_E_ABORTED 402u
#define RK_E_KERNEL_NOT_FOUND 501u
#define RK_E_INVALID_STATE 502u
#define RK_E_QUEUE_FULL 503u
#define RK_E_BACKEND_UNAVAILABLE 504u
#define RK_E_KERNEL_FAILED 505u
#define RK_E_HANDLER_FAILED 506u
#define RK_E_RUNTIME_SHUT_DOWN 507u
#define RK_E_DUPLICATE_KERNEL 508u
#define RK_E_TERMINATION_TIMEOUT 509u
#define RK_E_CIRCUIT_OPEN 510u
#define RK_E_RESTART_LIMIT 511u
#define RK_E_NOT_ACCEPTING_WORK 512u
#define RK_E_LOAD_SHED 513u
#define RK_E_STATE_SNAPSHOT_FAILED 514u
#define RK_E_MIGRATION_FAILED 515u
#define RK_E_PLACEMENT_FAILED 516u
#define RK_E_CUDA_ERROR 517u
#define RK_E_CUDA_COMPILE_FAILED 518u
#define RK_E_NVML_ERROR 519u
#define RK_E_CUDA_DEVICE_LOST 520u
#define RK_E_KERNEL_MODULE 530u
#define RK_E_INVALID_MESSAGE_SCHEMA 531u
#define RK_E_WGSL_SCHEMA_UNSUPPORTED 601u
#define RK_E_WGSL_COMPILE_FAILED 602u
#define RK_E_WEB_GPU_ERROR 603u
#define RK_E_WEB_GPU_DEVICE_LOST 604u
#define RK_E_INVALID_ARGUMENT 701u
#define RK_E_CLUSTER_UNREACHABLE 801u
#define RK_E_CLUSTER_AUTH_FAILED 802u
#define RK_E_CLUSTER_NAME_UNKNOWN 803u
#define RK_E_CLUSTER_NODE_DOWN 804u
#define RK_E_CLUSTER_UNAVAILABLE 805u
#define RK_E_CLUSTER_MESSAGE_LOST 806u
#define RK_E_CLUSTER_NODE_UNKNOWN 807u
#define RK_E_CLUSTER_PLACEMENT_FAILED 808u
#define RK_E_CLUSTER_REGISTRY_STALE 809u

/* Span records (telemetry rings). */
#define RK_SPAN_KIND_SEND 1u
#define RK_SPAN_KIND_CALL 2u
#define RK_SPAN_KIND_PROCESS 3u
#define RK_SPAN_KIND_RECEIVE 4u
#define RK_SPAN_KIND_LIFECYCLE 5u
#define RK_SPAN_STATUS_OK 0u
#define RK_SPAN_STATUS_ERROR 2u
#define RK_LIFECYCLE_LAUNCH 1u
#define RK_LIFECYCLE_ACTIVATE 2u
#define RK_LIFECYCLE_DEACTIVATE 3u
#define RK_LIFECYCLE_TERMINATE 4u
#define RK_LIFECYCLE_RESTART 5u
#define RK_LIFECYCLE_FAIL 6u

/* rk_frame_header: Frame = this header, then payload_size bytes of payload, then zero to seven bytes of padding to the next 8-byte boundary. Written once by the producer before the ring publishes it; read-only afterwards. */
typedef struct rk_frame_header {
  uint32_t length; /* @0, writer: frame. Header + payload bytes, excluding padding. */
  uint32_t magic; /* @4, writer: frame. RK_FRAME_MAGIC. */
  uint16_t version; /* @8, writer: frame. RK_FRAME_VERSION. */
  uint16_t flags; /* @10, writer: frame. RK_FRAME_FLAG_* bits. */
  uint32_t type_id; /* @12, writer: frame. The message schema's stable type id. */
  uint64_t message_id; /* @16, writer: frame. Unique per producer. */
  uint64_t correlation_id; /* @24, writer: frame. Request this frame answers; 0 = none. */
  uint32_t source_kernel; /* @32, writer: frame. Source kernel id; 0 = host. */
  uint32_t destination_kernel; /* @36, writer: frame. Destination kernel id. */
  uint32_t payload_size; /* @40, writer: frame. Payload bytes = length - sizeof(header). */
  uint32_t checksum; /* @44, writer: frame. CRC32-C of bytes [4,44) and [48,length) when flagged. */
  uint64_t hlc_physical_us; /* @48, writer: frame. HLC physical time, µs since the epoch. */
  uint32_t hlc_logical; /* @56, writer: frame. HLC logical counter. */
  uint32_t hlc_node; /* @60, writer: frame. HLC node id. */
  uint8_t trace_id[16]; /* @64, writer: frame. W3C trace id; all zero = untraced. */
  uint8_t span_id[8]; /* @80, writer: frame. W3C parent span id. */
  uint8_t priority; /* @88, writer: frame. 0 (lowest) to 255. */
  uint8_t trace_flags; /* @89, writer: frame. W3C trace flags; bit 0 = sampled. */
  uint16_t reserved0; /* @90, writer: frame. Zero. */
  uint32_t error_code; /* @92, writer: frame. With the DEAD_LETTER flag: the RK_E_* error that failed the message. Else 0. */
} rk_frame_header;
#define RK_FRAME_HEADER_SIZE 96u
#define RK_FRAME_HEADER_LENGTH_OFFSET 0u
#define RK_FRAME_HEADER_MAGIC_OFFSET 4u
#define RK_FRAME_HEADER_VERSION_OFFSET 8u
#define RK_FRAME_HEADER_FLAGS_OFFSET 10u
#define RK_FRAME_HEADER_TYPE_ID_OFFSET 12u
#define RK_FRAME_HEADER_MESSAGE_ID_OFFSET 16u
#define RK_FRAME_HEADER_CORRELATION_ID_OFFSET 24u
#define RK_FRAME_HEADER_SOURCE_KERNEL_OFFSET 32u
#define RK_FRAME_HEADER_DESTINATION_KERNEL_OFFSET 36u
#define RK_FRAME_HEADER_PAYLOAD_SIZE_OFFSET 40u
#define RK_FRAME_HEADER_CHECKSUM_OFFSET 44u
#define RK_FRAME_HEADER_HLC_PHYSICAL_US_OFFSET 48u
#define RK_FRAME_HEADER_HLC_LOGICAL_OFFSET 56u
#define RK_FRAME_HEADER_HLC_NODE_OFFSET 60u
#define RK_FRAME_HEADER_TRACE_ID_OFFSET 64u
#define RK_FRAME_HEADER_SPAN_ID_OFFSET 80u
#define RK_FRAME_HEADER_PRIORITY_OFFSET 88u
#define RK_FRAME_HEADER_TRACE_FLAGS_OFFSET 89u
#define RK_FRAME_HEADER_RESERVED0_OFFSET 90u
#define RK_FRAME_HEADER_ERROR_CODE_OFFSET 92u
RK_STATIC_ASSERT(sizeof(rk_frame_header) == 96, "rk_frame_header: size");
RK_STATIC_ASSERT(RK_ALIGNOF(rk_frame_header) == 8, "rk_frame_header: alignment");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, length) == 0, "rk_frame_header.length: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, magic) == 4, "rk_frame_header.magic: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, version) == 8, "rk_frame_header.version: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, flags) == 10, "rk_frame_header.flags: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, type_id) == 12, "rk_frame_header.type_id: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, message_id) == 16, "rk_frame_header.message_id: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, correlation_id) == 24, "rk_frame_header.correlation_id: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, source_kernel) == 32, "rk_frame_header.source_kernel: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, destination_kernel) == 36, "rk_frame_header.destination_kernel: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, payload_size) == 40, "rk_frame_header.payload_size: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, checksum) == 44, "rk_frame_header.checksum: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, hlc_physical_us) == 48, "rk_frame_header.hlc_physical_us: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, hlc_logical) == 56, "rk_frame_header.hlc_logical: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, hlc_node) == 60, "rk_frame_header.hlc_node: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, trace_id) == 64, "rk_frame_header.trace_id: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, span_id) == 80, "rk_frame_header.span_id: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, priority) == 88, "rk_frame_header.priority: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, trace_flags) == 89, "rk_frame_header.trace_flags: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, reserved0) == 90, "rk_frame_header.reserved0: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, error_code) == 92, "rk_frame_header.error_code: offset");

/* rk_control_block: One per kernel. Each field has exactly one writer (named beside it); all access is atomic: acquire loads, release stores. Counters are u64 and only ever grow. */
typedef struct rk_control_block {
  RK_ATOMIC(uint32_t) status; /* @0, writer: lifecycle. RK_STATUS_*: the lifecycle machine state. */
  RK_ATOMIC(uint32_t) is_active; /* @4, writer: lifecycle. 1 = consume input; 0 = paused. */
  RK_ATOMIC(uint32_t) should_terminate; /* @8, writer: host. 0 = run; 1 = finish, then exit; 2 = exit now (forced). */
  RK_ATOMIC(uint32_t) has_terminated; /* @12, writer: executor. 1 = the loop has exited. */
  RK_ATOMIC(uint64_t) messages_received; /* @16, writer: executor. Frames taken off the input ring. */
  RK_ATOMIC(uint64_t) messages_processed; /* @24, writer: executor. Handled without error. */
  RK_ATOMIC(uint64_t) messages_failed; /* @32, writer: executor. Handler raised an error. */
  RK_ATOMIC(uint64_t) messages_dropped; /* @40, writer: executor. Malformed or undeliverable. */
  RK_ATOMIC(uint64_t) heartbeat_us; /* @48, writer: executor. Last sign of life, µs since the epoch. */
  RK_ATOMIC(uint64_t) hlc_physical_us; /* @56, writer: executor. The kernel's HLC physical time. */
  RK_ATOMIC(uint32_t) hlc_logical; /* @64, writer: executor. The kernel's HLC logical counter. */
  uint32_t hlc_node; /* @68, writer: host. HLC node id; set before the block is shared. */
  RK_ATOMIC(uint32_t) messages_in_flight; /* @72, writer: executor. Taken, not finished. */
  RK_ATOMIC(uint32_t) last_error_code; /* @76, writer: executor. RK_E_* of the last error; 0 = none. */
  RK_ATOMIC(uint32_t) error_count; /* @80, writer: executor. Errors recorded so far. */
  uint32_t kernel_id; /* @84, writer: host. Numeric kernel id; set before sharing. */
  RK_ATOMIC(uint32_t) generation; /* @88, writer: host. Restarts so far; bumped between two executors. */
  uint32_t layout_version; /* @92, writer: host. RK_CONTROL_BLOCK_VERSION. */
  RK_ATOMIC(uint32_t) handled_cursor; /* @96, writer: executor. Input ring offset just past the last frame whose handler returned: where a host resumes if the executor dies mid-batch. */
  RK_ATOMIC(uint32_t) draining_input; /* @100, writer: executor. Which input a batch is draining: 0 = none, 1 = the own input ring, 2 + k = kernel-to-kernel link k. If the executor dies, the frame in hand is the one at that ring's handled cursor. */
  RK_ATOMIC(uint32_t) terminate_discard; /* @104, writer: host. With should_terminate = 1: 0 = handle the queued input before exiting; 1 = leave it in the ring (the host dead-letters it, or keeps it for the kernel's next instance). Written before should_terminate. */
  RK_ATOMIC(uint32_t) pause_request; /* @108, writer: host. 1 = stop between batches and say so in paused (a device executor's checkpoint); 0 = go on. */
  RK_ATOMIC(uint32_t) paused; /* @112, writer: executor. 1 while the executor honours pause_request: no batch in hand, the kernel state is at rest. */
  uint32_t integrity; /* @116, writer: host. 1 = the kernel's rings require a CRC32-C on every frame: a device executor checks its inputs' and checksums its outputs. Set before launch. */
  RK_ATOMIC(uint64_t) messages_fused; /* @120, writer: executor. Of messages_received, those a producer kernel on the same worker thread had this kernel handle on its own turn (a fused kernel-to-kernel link). */
} rk_control_block;
#define RK_CONTROL_BLOCK_SIZE 128u
#define RK_CONTROL_BLOCK_STATUS_OFFSET 0u
#define RK_CONTROL_BLOCK_IS_ACTIVE_OFFSET 4u
#define RK_CONTROL_BLOCK_SHOULD_TERMINATE_OFFSET 8u
#define RK_CONTROL_BLOCK_HAS_TERMINATED_OFFSET 12u
#define RK_CONTROL_BLOCK_MESSAGES_RECEIVED_OFFSET 16u
#define RK_CONTROL_BLOCK_MESSAGES_PROCESSED_OFFSET 24u
#define RK_CONTROL_BLOCK_MESSAGES_FAILED_OFFSET 32u
#define RK_CONTROL_BLOCK_MESSAGES_DROPPED_OFFSET 40u
#define RK_CONTROL_BLOCK_HEARTBEAT_US_OFFSET 48u
#define RK_CONTROL_BLOCK_HLC_PHYSICAL_US_OFFSET 56u
#define RK_CONTROL_BLOCK_HLC_LOGICAL_OFFSET 64u
#define RK_CONTROL_BLOCK_HLC_NODE_OFFSET 68u
#define RK_CONTROL_BLOCK_MESSAGES_IN_FLIGHT_OFFSET 72u
#define RK_CONTROL_BLOCK_LAST_ERROR_CODE_OFFSET 76u
#define RK_CONTROL_BLOCK_ERROR_COUNT_OFFSET 80u
#define RK_CONTROL_BLOCK_KERNEL_ID_OFFSET 84u
#define RK_CONTROL_BLOCK_GENERATION_OFFSET 88u
#define RK_CONTROL_BLOCK_LAYOUT_VERSION_OFFSET 92u
#define RK_CONTROL_BLOCK_HANDLED_CURSOR_OFFSET 96u
#define RK_CONTROL_BLOCK_DRAINING_INPUT_OFFSET 100u
#define RK_CONTROL_BLOCK_TERMINATE_DISCARD_OFFSET 104u
#define RK_CONTROL_BLOCK_PAUSE_REQUEST_OFFSET 108u
#define RK_CONTROL_BLOCK_PAUSED_OFFSET 112u
#define RK_CONTROL_BLOCK_INTEGRITY_OFFSET 116u
#define RK_CONTROL_BLOCK_MESSAGES_FUSED_OFFSET 120u
RK_STATIC_ASSERT(sizeof(rk_control_block) == 128, "rk_control_block: size");
RK_STATIC_ASSERT(RK_ALIGNOF(rk_control_block) == 8, "rk_control_block: alignment");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, status) == 0, "rk_control_block.status: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, is_active) == 4, "rk_control_block.is_active: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, should_terminate) == 8, "rk_control_block.should_terminate: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, has_terminated) == 12, "rk_control_block.has_terminated: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, messages_received) == 16, "rk_control_block.messages_received: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, messages_processed) == 24, "rk_control_block.messages_processed: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, messages_failed) == 32, "rk_control_block.messages_failed: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, messages_dropped) == 40, "rk_control_block.messages_dropped: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, heartbeat_us) == 48, "rk_control_block.heartbeat_us: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, hlc_physical_us) == 56, "rk_control_block.hlc_physical_us: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, hlc_logical) == 64, "rk_control_block.hlc_logical: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, hlc_node) == 68, "rk_control_block.hlc_node: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, messages_in_flight) == 72, "rk_control_block.messages_in_flight: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, last_error_code) == 76, "rk_control_block.last_error_code: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, error_count) == 80, "rk_control_block.error_count: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, kernel_id) == 84, "rk_control_block.kernel_id: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, generation) == 88, "rk_control_block.generation: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, layout_version) == 92, "rk_control_block.layout_version: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, handled_cursor) == 96, "rk_control_block.handled_cursor: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, draining_input) == 100, "rk_control_block.draining_input: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, terminate_discard) == 104, "rk_control_block.terminate_discard: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, pause_request) == 108, "rk_control_block.pause_request: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, paused) == 112, "rk_control_block.paused: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, integrity) == 116, "rk_control_block.integrity: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, messages_fused) == 120, "rk_control_block.messages_fused: offset");

/* rk_ring_header: ringbuf.js 0.4 SPSC ring: this header, then storage_size data bytes (capacity + 1 slots). Indices wrap modulo storage_size; the ring is empty when they are equal and full when write + 1 == read (mod storage_size). Producer: copy, then release-store write_index. Consumer: acquire-load write_index, read, then release-store read_index. */
typedef struct rk_ring_header {
  RK_ATOMIC(uint32_t) write_index; /* @0, writer: producer. Next slot to write. */
  RK_ATOMIC(uint32_t) read_index; /* @4, writer: consumer. Next slot to read. */
} rk_ring_header;
#define RK_RING_HEADER_SIZE 8u
#define RK_RING_HEADER_WRITE_INDEX_OFFSET 0u
#define RK_RING_HEADER_READ_INDEX_OFFSET 4u
RK_STATIC_ASSERT(sizeof(rk_ring_header) == 8, "rk_ring_header: size");
RK_STATIC_ASSERT(RK_ALIGNOF(rk_ring_header) == 4, "rk_ring_header: alignment");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_ring_header, write_index) == 0, "rk_ring_header.write_index: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_ring_header, read_index) == 4, "rk_ring_header.read_index: offset");

/* rk_ring_signal: Eventcount doorbell of one ring. A sleeper sets its *_sleeping flag, re-checks the ring, then waits on the other side's *_seq; the other side, after publishing, bumps the seq and notifies only when the flag is set (a JS waker lowers the flag with an atomic exchange as it does: one notify per park). Native threads cannot wake V8 waiters (not a futex): they only bump the seq, and JS waiters use a bounded wait. */
typedef struct rk_ring_signal {
  RK_ATOMIC(int32_t) data_seq; /* @0, writer: producer. Eventcount the consumer parks on. */
  RK_ATOMIC(int32_t) consumer_sleeping; /* @4, writer: consumer. 1 while parked; a JS waker may lower it. */
  RK_ATOMIC(uint32_t) handled_cursor; /* @8, writer: consumer. Ring offset just past the last frame whose handling finished. */
  uint8_t pad0[52]; /* @12, writer: host. Cache-line padding. */
  RK_ATOMIC(int32_t) space_seq; /* @64, writer: consumer. Eventcount the producer parks on. */
  RK_ATOMIC(int32_t) producer_sleeping; /* @68, writer: producer. 1 while waiting; a JS waker may lower it. */
  uint8_t pad1[56]; /* @72, writer: host. Cache-line padding. */
} rk_ring_signal;
#define RK_RING_SIGNAL_SIZE 128u
#define RK_RING_SIGNAL_DATA_SEQ_OFFSET 0u
#define RK_RING_SIGNAL_CONSUMER_SLEEPING_OFFSET 4u
#define RK_RING_SIGNAL_HANDLED_CURSOR_OFFSET 8u
#define RK_RING_SIGNAL_PAD0_OFFSET 12u
#define RK_RING_SIGNAL_SPACE_SEQ_OFFSET 64u
#define RK_RING_SIGNAL_PRODUCER_SLEEPING_OFFSET 68u
#define RK_RING_SIGNAL_PAD1_OFFSET 72u
RK_STATIC_ASSERT(sizeof(rk_ring_signal) == 128, "rk_ring_signal: size");
RK_STATIC_ASSERT(RK_ALIGNOF(rk_ring_signal) == 4, "rk_ring_signal: alignment");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_ring_signal, data_seq) == 0, "rk_ring_signal.data_seq: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_ring_signal, consumer_sleeping) == 4, "rk_ring_signal.consumer_sleeping: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_ring_signal, handled_cursor) == 8, "rk_ring_signal.handled_cursor: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_ring_signal, pad0) == 12, "rk_ring_signal.pad0: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_ring_signal, space_seq) == 64, "rk_ring_signal.space_seq: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_ring_signal, producer_sleeping) == 68, "rk_ring_signal.producer_sleeping: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_ring_signal, pad1) == 72, "rk_ring_signal.pad1: offset");

/* rk_telemetry_ring: SPSC ring of rk_span_record, which follow this header (capacity of them). Producer: if write_count - read_count == capacity, bump dropped and discard; else fill record[write_count % capacity], then release-store write_count + 1. Consumer: acquire-load write_count, read, release-store read_count. Counts wrap at 2^32; capacity is a power of two. */
typedef struct rk_telemetry_ring {
  RK_ATOMIC(uint32_t) write_count; /* @0, writer: producer. Records published. */
  RK_ATOMIC(uint32_t) read_count; /* @4, writer: consumer. Records consumed. */
  RK_ATOMIC(uint32_t) dropped; /* @8, writer: producer. Records dropped: ring full. */
  uint32_t capacity; /* @12, writer: host. Records the ring holds; a power of two. */
  uint64_t epoch_unix_ms; /* @16, writer: host. Unix time (ms) of record time 0. */
} rk_telemetry_ring;
#define RK_TELEMETRY_RING_SIZE 24u
#define RK_TELEMETRY_RING_WRITE_COUNT_OFFSET 0u
#define RK_TELEMETRY_RING_READ_COUNT_OFFSET 4u
#define RK_TELEMETRY_RING_DROPPED_OFFSET 8u
#define RK_TELEMETRY_RING_CAPACITY_OFFSET 12u
#define RK_TELEMETRY_RING_EPOCH_UNIX_MS_OFFSET 16u
RK_STATIC_ASSERT(sizeof(rk_telemetry_ring) == 24, "rk_telemetry_ring: size");
RK_STATIC_ASSERT(RK_ALIGNOF(rk_telemetry_ring) == 8, "rk_telemetry_ring: alignment");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_telemetry_ring, write_count) == 0, "rk_telemetry_ring.write_count: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_telemetry_ring, read_count) == 4, "rk_telemetry_ring.read_count: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_telemetry_ring, dropped) == 8, "rk_telemetry_ring.dropped: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_telemetry_ring, capacity) == 12, "rk_telemetry_ring.capacity: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_telemetry_ring, epoch_unix_ms) == 16, "rk_telemetry_ring.epoch_unix_ms: offset");

/* rk_span_record: One finished span in a telemetry ring. The executor (worker thread, later the GPU) writes processing spans; the host writes send/call/receive/lifecycle spans into its own ring. Written completely before the ring's write index publishes it; the exporter turns it into an OpenTelemetry span. Times are ns since the telemetry epoch (the ring header's epoch_unix_ms). */
typedef struct rk_span_record {
  uint8_t trace_id[16]; /* @0, writer: producer. W3C trace id. */
  uint8_t span_id[8]; /* @16, writer: producer. This span's id. */
  uint8_t parent_span_id[8]; /* @24, writer: producer. Parent span id; zero = root. */
  uint64_t start_ns; /* @32, writer: producer. Start, ns since the epoch. */
  uint64_t end_ns; /* @40, writer: producer. End, ns since the epoch. */
  uint64_t message_id; /* @48, writer: producer. Message id; 0 for lifecycle spans. */
  uint32_t kernel; /* @56, writer: producer. Kernel instance id. */
  uint32_t type_id; /* @60, writer: producer. Message type id. */
  uint32_t payload_size; /* @64, writer: producer. Message body bytes. */
  uint32_t error_code; /* @68, writer: producer. RK_E_* when failed, else 0. */
  uint8_t kind; /* @72, writer: producer. RK_SPAN_KIND_*: 1 send, 2 call, 3 process, 4 receive, 5 lifecycle. */
  uint8_t status; /* @73, writer: producer. 0 ok, 2 error. */
  uint8_t trace_flags; /* @74, writer: producer. W3C trace flags; bit 0 set. */
  uint8_t detail; /* @75, writer: producer. Lifecycle transition for kind 5, else 0. */
  uint32_t peer_kernel; /* @76, writer: producer. Kernel the message came from; 0 = host. */
} rk_span_record;
#define RK_SPAN_RECORD_SIZE 80u
#define RK_SPAN_RECORD_TRACE_ID_OFFSET 0u
#define RK_SPAN_RECORD_SPAN_ID_OFFSET 16u
#define RK_SPAN_RECORD_PARENT_SPAN_ID_OFFSET 24u
#define RK_SPAN_RECORD_START_NS_OFFSET 32u
#define RK_SPAN_RECORD_END_NS_OFFSET 40u
#define RK_SPAN_RECORD_MESSAGE_ID_OFFSET 48u
#define RK_SPAN_RECORD_KERNEL_OFFSET 56u
#define RK_SPAN_RECORD_TYPE_ID_OFFSET 60u
#define RK_SPAN_RECORD_PAYLOAD_SIZE_OFFSET 64u
#define RK_SPAN_RECORD_ERROR_CODE_OFFSET 68u
#define RK_SPAN_RECORD_KIND_OFFSET 72u
#define RK_SPAN_RECORD_STATUS_OFFSET 73u
#define RK_SPAN_RECORD_TRACE_FLAGS_OFFSET 74u
#define RK_SPAN_RECORD_DETAIL_OFFSET 75u
#define RK_SPAN_RECORD_PEER_KERNEL_OFFSET 76u
RK_STATIC_ASSERT(sizeof(rk_span_record) == 80, "rk_span_record: size");
RK_STATIC_ASSERT(RK_ALIGNOF(rk_span_record) == 8, "rk_span_record: alignment");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, trace_id) == 0, "rk_span_record.trace_id: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, span_id) == 16, "rk_span_record.span_id: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, parent_span_id) == 24, "rk_span_record.parent_span_id: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, start_ns) == 32, "rk_span_record.start_ns: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, end_ns) == 40, "rk_span_record.end_ns: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, message_id) == 48, "rk_span_record.message_id: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, kernel) == 56, "rk_span_record.kernel: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, type_id) == 60, "rk_span_record.type_id: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, payload_size) == 64, "rk_span_record.payload_size: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, error_code) == 68, "rk_span_record.error_code: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, kind) == 72, "rk_span_record.kind: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, status) == 73, "rk_span_record.status: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, trace_flags) == 74, "rk_span_record.trace_flags: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, detail) == 75, "rk_span_record.detail: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_span_record, peer_kernel) == 76, "rk_span_record.peer_kernel: offset");

/* rk_mirror_state: One per mirror thread, in a SharedArrayBuffer the host reads. Written only by the mirror thread (seq_cst for the sleeping flag: it pairs with the host producer publishing then loading it, Dekker style; relaxed for the counters). */
typedef struct rk_mirror_state {
  RK_ATOMIC(int32_t) sleeping; /* @0, writer: mirror. 1 while the thread sleeps; host producers kick it. */
  uint32_t reserved0; /* @4, writer: mirror. Zero. */
  RK_ATOMIC(uint64_t) passes; /* @8, writer: mirror. Passes over the channel table. */
  RK_ATOMIC(uint64_t) sleeps; /* @16, writer: mirror. Times the thread slept, idle. */
  RK_ATOMIC(uint64_t) wake_calls; /* @24, writer: mirror. Wake-up callbacks into JS. */
  RK_ATOMIC(uint32_t) channels; /* @32, writer: mirror. Channels attached. */
  uint8_t reserved1[28]; /* @36, writer: mirror. Zero; room to grow. */
} rk_mirror_state;
#define RK_MIRROR_STATE_SIZE 64u
#define RK_MIRROR_STATE_SLEEPING_OFFSET 0u
#define RK_MIRROR_STATE_RESERVED0_OFFSET 4u
#define RK_MIRROR_STATE_PASSES_OFFSET 8u
#define RK_MIRROR_STATE_SLEEPS_OFFSET 16u
#define RK_MIRROR_STATE_WAKE_CALLS_OFFSET 24u
#define RK_MIRROR_STATE_CHANNELS_OFFSET 32u
#define RK_MIRROR_STATE_RESERVED1_OFFSET 36u
RK_STATIC_ASSERT(sizeof(rk_mirror_state) == 64, "rk_mirror_state: size");
RK_STATIC_ASSERT(RK_ALIGNOF(rk_mirror_state) == 8, "rk_mirror_state: alignment");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_state, sleeping) == 0, "rk_mirror_state.sleeping: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_state, reserved0) == 4, "rk_mirror_state.reserved0: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_state, passes) == 8, "rk_mirror_state.passes: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_state, sleeps) == 16, "rk_mirror_state.sleeps: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_state, wake_calls) == 24, "rk_mirror_state.wake_calls: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_state, channels) == 32, "rk_mirror_state.channels: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_state, reserved1) == 36, "rk_mirror_state.reserved1: offset");

/* rk_mirror_channel: One per mirrored ring (a kernel on the dma strategy has two: input, host to device; output, device to host). Statistics, the wake request word and the host-carries flag; relaxed counters, seq_cst wake_seq and host_carries. */
typedef struct rk_mirror_channel {
  RK_ATOMIC(uint64_t) bytes; /* @0, writer: mirror. Bytes copied, padding included. */
  RK_ATOMIC(uint64_t) frames; /* @8, writer: mirror. Frames copied. */
  RK_ATOMIC(uint64_t) batches; /* @16, writer: mirror. Copy batches. */
  RK_ATOMIC(uint64_t) copy_ns; /* @24, writer: mirror. Nanoseconds spent copying. */
  RK_ATOMIC(uint32_t) lag_bytes; /* @32, writer: mirror. Bytes behind at the last batch. */
  RK_ATOMIC(uint32_t) max_lag_bytes; /* @36, writer: mirror. Largest lag seen. */
  RK_ATOMIC(int32_t) wake_seq; /* @40, writer: mirror. Bumped to ask JS to notify waiters. */
  uint32_t direction; /* @44, writer: host. 0 host to device, 1 device to host. */
  RK_ATOMIC(uint64_t) served_batches; /* @48, writer: mirror. Of the batches, those a host thread made (rk_mirror_serve). */
  RK_ATOMIC(int32_t) host_carries; /* @56, writer: host. Nonzero while a host thread carries the ring itself: the mirror skips it. Host: store 1, then serve the ring at least once more before storing 0; after storing 0 (seq_cst), load the mirror state sleeping flag and kick a sleeping mirror that still has work there. Mirror: load it seq_cst in every pass, the re-scan before sleeping included (Dekker pair with that store and load). A hint only: the channel lock still keeps one stepper at a time. */
  RK_ATOMIC(uint32_t) carried_skips; /* @60, writer: mirror. Passes that left the ring to its host carrier. */
} rk_mirror_channel;
#define RK_MIRROR_CHANNEL_SIZE 64u
#define RK_MIRROR_CHANNEL_BYTES_OFFSET 0u
#define RK_MIRROR_CHANNEL_FRAMES_OFFSET 8u
#define RK_MIRROR_CHANNEL_BATCHES_OFFSET 16u
#define RK_MIRROR_CHANNEL_COPY_NS_OFFSET 24u
#define RK_MIRROR_CHANNEL_LAG_BYTES_OFFSET 32u
#define RK_MIRROR_CHANNEL_MAX_LAG_BYTES_OFFSET 36u
#define RK_MIRROR_CHANNEL_WAKE_SEQ_OFFSET 40u
#define RK_MIRROR_CHANNEL_DIRECTION_OFFSET 44u
#define RK_MIRROR_CHANNEL_SERVED_BATCHES_OFFSET 48u
#define RK_MIRROR_CHANNEL_HOST_CARRIES_OFFSET 56u
#define RK_MIRROR_CHANNEL_CARRIED_SKIPS_OFFSET 60u
RK_STATIC_ASSERT(sizeof(rk_mirror_channel) == 64, "rk_mirror_channel: size");
RK_STATIC_ASSERT(RK_ALIGNOF(rk_mirror_channel) == 8, "rk_mirror_channel: alignment");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_channel, bytes) == 0, "rk_mirror_channel.bytes: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_channel, frames) == 8, "rk_mirror_channel.frames: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_channel, batches) == 16, "rk_mirror_channel.batches: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_channel, copy_ns) == 24, "rk_mirror_channel.copy_ns: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_channel, lag_bytes) == 32, "rk_mirror_channel.lag_bytes: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_channel, max_lag_bytes) == 36, "rk_mirror_channel.max_lag_bytes: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_channel, wake_seq) == 40, "rk_mirror_channel.wake_seq: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_channel, direction) == 44, "rk_mirror_channel.direction: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_channel, served_batches) == 48, "rk_mirror_channel.served_batches: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_channel, host_carries) == 56, "rk_mirror_channel.host_carries: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_mirror_channel, carried_skips) == 60, "rk_mirror_channel.carried_skips: offset");

/* rk_link_table: Kernel-to-kernel input rings of a device executor. Host: fill entry count, then release-store count + 1. Executor: acquire-load count each round; drain each ring after its own input; release-store the ring read index (and the handled cursor in its signal) once the batch is published. */
typedef struct rk_link_table {
  RK_ATOMIC(uint32_t) count; /* @0, writer: host. Entries in use (published last). */
  uint32_t reserved; /* @4, writer: host. Zero. */
  uint64_t ring[8]; /* @8, writer: host. Device address of each link ring (rk_ring_header, then its data area). */
  uint64_t signal[8]; /* @72, writer: host. Device address of each link ring's rk_ring_signal (its handled cursor). */
  uint32_t storage[8]; /* @136, writer: host. Data bytes of each link ring. */
  uint32_t plan_end[8]; /* @168, writer: executor. Where the round's batch ends in each link ring (the device loop's own bookkeeping). */
} rk_link_table;
#define RK_LINK_TABLE_SIZE 200u
#define RK_LINK_TABLE_COUNT_OFFSET 0u
#define RK_LINK_TABLE_RESERVED_OFFSET 4u
#define RK_LINK_TABLE_RING_OFFSET 8u
#define RK_LINK_TABLE_SIGNAL_OFFSET 72u
#define RK_LINK_TABLE_STORAGE_OFFSET 136u
#define RK_LINK_TABLE_PLAN_END_OFFSET 168u
RK_STATIC_ASSERT(sizeof(rk_link_table) == 200, "rk_link_table: size");
RK_STATIC_ASSERT(RK_ALIGNOF(rk_link_table) == 8, "rk_link_table: alignment");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_link_table, count) == 0, "rk_link_table.count: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_link_table, reserved) == 4, "rk_link_table.reserved: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_link_table, ring) == 8, "rk_link_table.ring: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_link_table, signal) == 72, "rk_link_table.signal: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_link_table, storage) == 136, "rk_link_table.storage: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_link_table, plan_end) == 168, "rk_link_table.plan_end: offset");

/* rk_route_table: Kernel-to-kernel output rings of a device executor. Host: fill entry count, then release-store count + 1. Executor: acquire-load count when it writes outputs; it is each ring's only producer (hold until room, copy, release-store the write index). */
typedef struct rk_route_table {
  RK_ATOMIC(uint32_t) count; /* @0, writer: host. Entries in use (published last). */
  uint32_t reserved; /* @4, writer: host. Zero. */
  uint64_t ring[8]; /* @8, writer: host. Device address of each link ring (rk_ring_header, then its data area). */
  uint32_t storage[8]; /* @72, writer: host. Data bytes of each link ring. */
  uint32_t type_id[8]; /* @104, writer: host. The message type each link takes; 0 = every type. */
  uint64_t dead_letters; /* @136, writer: host. Device address of the kernel's dead-letter ring (the messages its handler failed and the frames it would not handle, back whole), or 0. Set before launch; the host's device thread consumes it. */
  uint32_t dead_letter_storage; /* @144, writer: host. Data bytes of the dead-letter ring. */
  uint32_t reserved2; /* @148, writer: host. Zero. */
} rk_route_table;
#define RK_ROUTE_TABLE_SIZE 152u
#define RK_ROUTE_TABLE_COUNT_OFFSET 0u
#define RK_ROUTE_TABLE_RESERVED_OFFSET 4u
#define RK_ROUTE_TABLE_RING_OFFSET 8u
#define RK_ROUTE_TABLE_STORAGE_OFFSET 72u
#define RK_ROUTE_TABLE_TYPE_ID_OFFSET 104u
#define RK_ROUTE_TABLE_DEAD_LETTERS_OFFSET 136u
#define RK_ROUTE_TABLE_DEAD_LETTER_STORAGE_OFFSET 144u
#define RK_ROUTE_TABLE_RESERVED2_OFFSET 148u
RK_STATIC_ASSERT(sizeof(rk_route_table) == 152, "rk_route_table: size");
RK_STATIC_ASSERT(RK_ALIGNOF(rk_route_table) == 8, "rk_route_table: alignment");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_route_table, count) == 0, "rk_route_table.count: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_route_table, reserved) == 4, "rk_route_table.reserved: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_route_table, ring) == 8, "rk_route_table.ring: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_route_table, storage) == 72, "rk_route_table.storage: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_route_table, type_id) == 104, "rk_route_table.type_id: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_route_table, dead_letters) == 136, "rk_route_table.dead_letters: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_route_table, dead_letter_storage) == 144, "rk_route_table.dead_letter_storage: offset");
RK_STATIC_ASSERT(RK_OFFSETOF(rk_route_table, reserved2) == 148, "rk_route_table.reserved2: offset");

#endif /* RINGKERNEL_LAYOUT_H */
