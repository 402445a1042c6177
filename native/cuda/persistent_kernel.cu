/* ringkernel persistent kernel template (CUDA C++17, sm_75 and newer: the oldest target of nvcc 13).
 *
 * Launched once and resident until told to stop: the grid polls the kernel's input ring, runs the user's device
 * handler (rk_handle, pre-included: `nvcc --pre-include handler.cu persistent_kernel.cu`) on each frame, writes
 * outputs to the output ring and keeps the kernel's control block up to date. All binary layouts come from the
 * generated header (native/include/ringkernel_layout.h), so host, worker and device agree on every offset.
 *
 * Roles. Thread 0 of block 0 (the "leader") is the only consumer of the input ring, the only producer of the
 * output and telemetry rings and the only device writer of the control block: every ring stays single-producer
 * single-consumer and every control-block field keeps exactly one writer, as the layout's contract says. Each
 * round, the leader plans a batch (frame offsets in the input ring), the grid synchronises, every thread handles
 * frames (one thread per frame, strided over the grid), the grid synchronises again, and the leader writes the
 * outputs in input order, the span records and the counters, then releases the input room.
 *
 * Grid-wide synchronisation needs a cooperative launch (cuLaunchCooperativeKernel); a non-cooperative launch must
 * use one block (the template refuses more, reporting RK_E_INVALID_STATE and terminating).
 *
 * Memory ordering. Rings and the control block may live in host memory mapped into the device (the `mapped`
 * strategy) or in device memory (the `dma` strategy), so shared words are accessed with system-scope atomics:
 * acquire loads of the other side's index, release stores of our own after the bytes they publish. Plain loads
 * and stores move frame bytes between those.
 *
 * Control. is_active = 0 pauses consumption without exiting (the kernel stays resident; heartbeat continues).
 * should_terminate = 1 drains the input ring, then exits (with terminate_discard = 1: exits after the batch in hand,
 * leaving the queue to the host, which dead-letters it); 2 exits after the batch in hand. pause_request = 1 stops
 * between batches and acknowledges in paused (the host then reads the kernel state at rest: a checkpoint). The leader sets
 * has_terminated = 1 as the very last store. The status word belongs to the host's lifecycle machine; the kernel
 * never writes it.
 *
 * Output ring full: the leader holds the output and retries (never overwrites unread frames); while holding it
 * keeps the heartbeat and stops only on should_terminate = 2, counting the outputs it could not deliver as dropped
 * (RK_E_QUEUE_FULL). */
#include <cooperative_groups.h>

#include <cuda/atomic>
#include <cuda/std/type_traits>

#include "ringkernel_layout.h"
#include "rk_handler.cuh"

#ifndef RK_HANDLER_DEFINED
#error "persistent_kernel.cu needs a handler: compile with --pre-include <handler.cu> (it defines rk_handle and RK_HANDLER_DEFINED)"
#endif

namespace cg = cooperative_groups;

/* The reply type id of an error reply (src/executor/protocol.ts ERROR_REPLY_TYPE_ID). */
#define RK_ERROR_REPLY_TYPE_ID 2u
/* How often the leader refreshes heartbeat_us while idle or holding, ns. */
#define RK_HEARTBEAT_INTERVAL_NS 1000000ull
/* Idle back-off between polls of an empty (or paused) input ring, ns: short while input has just stopped (the next
 * message of a conversation is usually microseconds away), longer once the ring has been empty for
 * RK_IDLE_SPIN_ROUNDS polls (about a millisecond on a GPU), so a resident kernel nobody talks to stops polling
 * host memory over the bus every few hundred nanoseconds. */
#define RK_IDLE_SLEEP_NS 200u
#define RK_IDLE_DEEP_SLEEP_NS 20000u
#define RK_IDLE_SPIN_ROUNDS 4096u

enum rk_action : uint32_t { RK_ACTION_IDLE = 0, RK_ACTION_BATCH = 1, RK_ACTION_EXIT = 2 };

/* What the leader decided this round; read by every thread after the grid sync. Lives in scratch memory. */
typedef struct rk_batch_plan {
  uint32_t action;
  uint32_t count;      /* frames in the batch */
  uint32_t read_end;   /* input ring offset just past the batch */
  uint32_t idle_rounds; /* polls of an empty ring since the last batch (leader only) */
  uint64_t next_message_id; /* the leader's output message-id counter, kept across rounds */
  uint64_t last_heartbeat_ns;
  uint32_t link_count; /* link rings this round (rk_link_table.count, at most RK_MAX_LINKS) */
  uint32_t link_next;  /* which link ring goes first next round (fair fan-in) */
} rk_batch_plan;

/* The link table's capacity (rk_link_table's arrays). */
#define RK_MAX_LINKS ((uint32_t)(sizeof(((rk_link_table *)0)->storage) / sizeof(uint32_t)))


/* One frame of the batch: where it is, and what its handler did. */
typedef struct rk_frame_slot {
  uint32_t ring_offset; /* where the frame starts in the input ring's data area */
  uint32_t length;      /* header + payload bytes */
  uint32_t result;      /* RK_E_* (0 = handled) */
  uint32_t dropped;     /* 1 = malformed: counted as dropped, no handler call */
  uint32_t emit;
  uint32_t out_type_id;
  uint32_t out_payload_size;
  uint32_t ring; /* 0: the kernel's own input ring; 1 + k: link ring k */
  uint64_t start_ns; /* %globaltimer around the handler call, for the span record */
  uint64_t end_ns;
} rk_frame_slot;

static_assert(sizeof(rk_batch_plan) <= 64, "rk_batch_plan must fit the scratch area's first 64 bytes");
/* The host sizes scratch with this (test/cuda-gpu.test.ts FRAME_SLOT_BYTES). */
static_assert(sizeof(rk_frame_slot) == 48, "rk_frame_slot: size");

__host__ __device__ constexpr uint32_t rk_align8(uint32_t n) { return (n + 7u) & ~7u; }

/* Scratch bytes the host must allocate (device memory) for the given maximum frame length and batch size:
 * the plan, the slots, a contiguous copy of each input frame and each output payload. */
__host__ __device__ constexpr uint64_t rk_persistent_scratch_bytes(uint32_t max_frame_length, uint32_t batch_max) {
  return 64ull + (uint64_t)batch_max * (sizeof(rk_frame_slot) + 2ull * rk_align8(max_frame_length));
}

template <typename T>
__device__ __forceinline__ T rk_load_acquire(T *word) {
  return cuda::atomic_ref<T, cuda::thread_scope_system>(*word).load(cuda::std::memory_order_acquire);
}
template <typename T>
__device__ __forceinline__ void rk_store_release(T *word, cuda::std::type_identity_t<T> value) {
  cuda::atomic_ref<T, cuda::thread_scope_system>(*word).store(value, cuda::std::memory_order_release);
}
template <typename T>
__device__ __forceinline__ T rk_load_relaxed(T *word) {
  return cuda::atomic_ref<T, cuda::thread_scope_system>(*word).load(cuda::std::memory_order_relaxed);
}

__device__ __forceinline__ uint64_t rk_globaltimer() {
#ifdef RK_EMULATED_DEVICE
  /* The emulated device (CPU threads, rk_emu_device.h): %globaltimer is Unix-epoch ns on Linux, and so is this. */
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
#else
  uint64_t ns;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(ns));
  return ns;
#endif
}

/* splitmix64: span ids from (kernel, generation, message id); never zero (W3C forbids an all-zero span id). */
__device__ __forceinline__ uint64_t rk_span_id(uint32_t kernel, uint32_t generation, uint64_t message_id) {
  uint64_t z = message_id + ((uint64_t)kernel << 32 | generation) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return z == 0 ? 1 : z;
}

/* Copies `bytes` (a multiple of 8) out of a ring's data area starting at `offset`, wrapping at `storage`. Frames
 * start 8-aligned and the storage is a multiple of 8, so a wrap never splits a word. */
__device__ void rk_ring_copy_out(uint64_t *to, const uint8_t *data, uint32_t storage, uint32_t offset,
                                 uint32_t bytes) {
  for (uint32_t i = 0; i < bytes; i += 8) {
    to[i / 8] = *reinterpret_cast<const uint64_t *>(data + (offset + i) % storage);
  }
}
__device__ void rk_ring_copy_in(uint8_t *data, uint32_t storage, uint32_t offset, const uint64_t *from,
                                uint32_t bytes) {
  for (uint32_t i = 0; i < bytes; i += 8) {
    *reinterpret_cast<uint64_t *>(data + (offset + i) % storage) = from[i / 8];
  }
}

/* Records an error in the control block (leader only: it is the single device writer of these fields). */
__device__ void rk_record_error(rk_control_block *control, uint32_t code) {
  rk_store_release(&control->last_error_code, code);
  rk_store_release(&control->error_count, rk_load_relaxed(&control->error_count) + 1u);
}

__device__ void rk_add_u64(uint64_t *counter, uint64_t delta) {
  if (delta != 0) rk_store_release(counter, rk_load_relaxed(counter) + delta);
}

/* Writes one span record if the telemetry ring has room, else counts it as dropped (the telemetry contract). */
__device__ void rk_write_span(rk_telemetry_ring *ring, const rk_frame_header *in, const rk_frame_slot *slot,
                              uint32_t kernel, uint32_t generation, int64_t to_epoch_ns) {
  rk_span_record *records = reinterpret_cast<rk_span_record *>(reinterpret_cast<uint8_t *>(ring) +
                                                                RK_TELEMETRY_RING_SIZE);
  const uint32_t write = rk_load_relaxed(&ring->write_count);
  const uint32_t read = rk_load_acquire(&ring->read_count);
  if (write - read >= ring->capacity) {
    rk_store_release(&ring->dropped, rk_load_relaxed(&ring->dropped) + 1u);
    return;
  }
  rk_span_record *r = &records[write & (ring->capacity - 1u)];
  for (int i = 0; i < 16; i++) r->trace_id[i] = in->trace_id[i];
  const uint64_t span = rk_span_id(kernel, generation, in->message_id);
  for (int i = 0; i < 8; i++) {
    r->span_id[i] = (uint8_t)(span >> (56 - 8 * i));
    r->parent_span_id[i] = in->span_id[i];
  }
  r->start_ns = (uint64_t)((int64_t)slot->start_ns + to_epoch_ns);
  r->end_ns = (uint64_t)((int64_t)slot->end_ns + to_epoch_ns);
  r->message_id = in->message_id;
  r->kernel = kernel;
  r->type_id = in->type_id;
  r->payload_size = in->payload_size;
  r->error_code = slot->result;
  r->kind = RK_SPAN_KIND_PROCESS;
  r->status = slot->result == RK_E_NONE ? RK_SPAN_STATUS_OK : RK_SPAN_STATUS_ERROR;
  r->trace_flags = in->trace_flags;
  r->detail = 0;
  r->peer_kernel = in->source_kernel;
  /* Release: the record's bytes are visible before the exporter sees the count that covers them. */
  rk_store_release(&ring->write_count, write + 1u);
}

/* An error reply body, like the CPU executor's: {"name":...,"message":...,"code":"RK_HANDLER_FAILED"}. */
__device__ uint32_t rk_error_reply_body(uint8_t *out, uint32_t capacity, uint32_t code) {
  const char head[] = "{\"name\":\"CudaHandlerError\",\"message\":\"the CUDA handler returned error ";
  const char tail[] = "\",\"code\":\"RK_HANDLER_FAILED\"}";
  char digits[10];
  uint32_t n = 0;
  do {
    digits[n++] = (char)('0' + code % 10u);
    code /= 10u;
  } while (code != 0 && n < 10);
  const uint32_t size = (uint32_t)(sizeof head - 1 + n + sizeof tail - 1);
  if (size > capacity) return 0;
  uint32_t at = 0;
  for (uint32_t i = 0; i < sizeof head - 1; i++) out[at++] = (uint8_t)head[i];
  while (n > 0) out[at++] = (uint8_t)digits[--n];
  for (uint32_t i = 0; i < sizeof tail - 1; i++) out[at++] = (uint8_t)tail[i];
  return size;
}

/* Checks one input frame (a contiguous copy, 8-aligned) and runs the handler on it, filling `slot` (result,
 * dropped, emit, output type and size, handler times). Shared by the persistent loop and the per-message kernel,
 * so both judge and handle a frame the same way. `out_payload` has room for `max_payload` bytes. */
/* CRC32-C (Castagnoli, reflected 0x82F63B78), bit by bit: frames are small and one thread checks one frame. */
__device__ __forceinline__ uint32_t rk_crc32c_update(uint32_t crc, const uint8_t *bytes, uint32_t count) {
  for (uint32_t i = 0; i < count; i++) {
    crc ^= bytes[i];
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return crc;
}

/* A frame's checksum, as the host computes it (src/wire/frame-producer.ts): every header byte but the length and
 * the checksum itself, then the payload. `header` and `payload` may be apart. */
__device__ uint32_t rk_frame_crc(const uint8_t *header, const uint8_t *payload, uint32_t payload_size) {
  uint32_t crc = 0xFFFFFFFFu;
  crc = rk_crc32c_update(crc, header + RK_FRAME_HEADER_MAGIC_OFFSET,
                         RK_FRAME_HEADER_CHECKSUM_OFFSET - RK_FRAME_HEADER_MAGIC_OFFSET);
  crc = rk_crc32c_update(crc, header + RK_FRAME_HEADER_CHECKSUM_OFFSET + 4u,
                         RK_FRAME_HEADER_SIZE - RK_FRAME_HEADER_CHECKSUM_OFFSET - 4u);
  crc = rk_crc32c_update(crc, payload, payload_size);
  return ~crc;
}

/* Puts a frame the device failed back on the kernel's dead-letter ring, whole: its header (flags DEAD_LETTER and
 * the error code), then its payload, checksummed under integrity. Never waits: false, and nothing written, when
 * the ring has no room. Only this kernel's leader writes the ring. */
__device__ bool rk_return_frame(const rk_route_table *routes, const uint8_t *frame, uint32_t length, uint32_t error,
                                bool integrity) {
  union {
    rk_frame_header header;
    uint64_t words[RK_FRAME_HEADER_SIZE / 8];
  } out;
  for (uint32_t w = 0; w < RK_FRAME_HEADER_SIZE / 8; w++) out.words[w] = reinterpret_cast<const uint64_t *>(frame)[w];
  /* Parseable by the host's consumer whatever was wrong: the error code says what that was. */
  out.header.length = length;
  out.header.magic = RK_FRAME_MAGIC;
  out.header.version = RK_FRAME_VERSION;
  out.header.payload_size = length - RK_FRAME_HEADER_SIZE;
  out.header.flags = (uint16_t)RK_FRAME_FLAG_DEAD_LETTER;
  out.header.error_code = error;
  const uint8_t *payload = frame + RK_FRAME_HEADER_SIZE;
  if (integrity) {
    out.header.flags = (uint16_t)(out.header.flags | RK_FRAME_FLAG_CHECKSUM);
    out.header.checksum = rk_frame_crc(reinterpret_cast<const uint8_t *>(out.words), payload, out.header.payload_size);
  }
  uint8_t *ring = reinterpret_cast<uint8_t *>(routes->dead_letters);
  rk_ring_header *header = reinterpret_cast<rk_ring_header *>(ring);
  const uint32_t storage = routes->dead_letter_storage;
  const uint32_t size = rk_align8(length);
  const uint32_t write = rk_load_relaxed(&header->write_index);
  const uint32_t used = (write - rk_load_acquire(&header->read_index) + storage) % storage;
  if (storage - 1u - used < size) return false;
  uint8_t *data = ring + RK_RING_HEADER_SIZE;
  rk_ring_copy_in(data, storage, write, out.words, RK_FRAME_HEADER_SIZE);
  /* The frame copy in scratch holds whole words up to the aligned size (as the handler-error path sends). */
  rk_ring_copy_in(data, storage, (write + RK_FRAME_HEADER_SIZE) % storage, reinterpret_cast<const uint64_t *>(payload),
                  size - RK_FRAME_HEADER_SIZE);
  /* Release: the frame's bytes are visible before the consumer sees the index that covers them. */
  rk_store_release(&header->write_index, (write + size) % storage);
  return true;
}

__device__ void rk_handle_frame(const uint8_t *frame, rk_frame_slot *slot, uint8_t *out_payload, uint32_t max_payload,
                                void *user_state, bool integrity) {
  const rk_frame_header *header = reinterpret_cast<const rk_frame_header *>(frame);
  slot->result = RK_E_NONE;
  slot->dropped = 0;
  slot->emit = 0;
  if (header->magic != RK_FRAME_MAGIC) {
    slot->result = RK_E_FRAME_BAD_MAGIC;
  } else if (header->version != RK_FRAME_VERSION) {
    slot->result = RK_E_FRAME_BAD_VERSION;
  } else if (header->payload_size != slot->length - RK_FRAME_HEADER_SIZE) {
    slot->result = RK_E_FRAME_PAYLOAD_SIZE_MISMATCH;
  } else if ((header->flags & RK_FRAME_FLAG_CHECKSUM) != 0
                 ? rk_frame_crc(frame, frame + RK_FRAME_HEADER_SIZE, header->payload_size) != header->checksum
                 : integrity) {
    /* A wrong CRC32-C, or none on a ring that requires one (as the host's consumer judges it). */
    slot->result = RK_E_FRAME_BAD_CHECKSUM;
  }
  if (slot->result != RK_E_NONE) {
    slot->dropped = 1;
    return;
  }
  const bool request = (header->flags & RK_FRAME_FLAG_REQUEST) != 0;
  rk_handler_output out;
  out.payload = out_payload;
  out.capacity = max_payload;
  out.payload_size = 0;
  out.type_id = header->type_id;
  out.emit = request ? 1u : 0u;
  slot->start_ns = rk_globaltimer();
  slot->result = rk_handle(header, frame + RK_FRAME_HEADER_SIZE, &out, user_state);
  slot->end_ns = rk_globaltimer();
  if (slot->result != RK_E_NONE) {
    slot->emit = request ? 1u : 0u;
    slot->out_type_id = RK_ERROR_REPLY_TYPE_ID;
    slot->out_payload_size = request ? rk_error_reply_body(out.payload, max_payload, slot->result) : 0u;
  } else if (out.payload_size > max_payload) {
    slot->result = RK_E_FRAME_TOO_LARGE;
    slot->emit = 0;
  } else {
    slot->emit = out.emit;
    slot->out_type_id = out.type_id;
    slot->out_payload_size = out.payload_size;
  }
}

/* The header of the output frame for input `in` handled as `slot` says (into a zeroed header): a response to a
 * request (correlated by its message id), ERROR when the handler failed, the input's trace id with this kernel's
 * span id. Shared by the persistent loop and the per-message kernel. */
__device__ void rk_build_output_header(rk_frame_header *out, const rk_frame_header *in, const rk_frame_slot *slot,
                                       uint64_t message_id, uint32_t kernel, uint32_t generation, uint32_t hlc_node,
                                       int64_t to_unix_ns) {
  const bool request = (in->flags & RK_FRAME_FLAG_REQUEST) != 0;
  out->length = RK_FRAME_HEADER_SIZE + slot->out_payload_size;
  out->magic = RK_FRAME_MAGIC;
  out->version = RK_FRAME_VERSION;
  out->flags = (uint16_t)((request ? RK_FRAME_FLAG_RESPONSE : 0u) | (slot->result != RK_E_NONE ? RK_FRAME_FLAG_ERROR : 0u));
  out->type_id = slot->out_type_id;
  out->message_id = message_id;
  out->correlation_id = request ? in->message_id : 0ull;
  out->source_kernel = kernel;
  out->destination_kernel = in->source_kernel;
  out->payload_size = slot->out_payload_size;
  out->hlc_physical_us = (uint64_t)((int64_t)slot->end_ns + to_unix_ns) / 1000ull;
  out->hlc_node = hlc_node;
  for (int b = 0; b < 16; b++) out->trace_id[b] = in->trace_id[b];
  const uint64_t span = rk_span_id(kernel, generation, in->message_id);
  for (int b = 0; b < 8; b++) out->span_id[b] = (uint8_t)(span >> (56 - 8 * b));
  out->priority = in->priority;
  out->trace_flags = in->trace_flags;
}

/* Plans frames of one ring into the batch: from `at` towards `write`, while the batch has room. A bad length poisons
 * everything after it in that ring (no way to find the next frame): it is counted and dropped up to `write`, as the
 * CPU consumer does. Returns where planning stopped. */
__device__ uint32_t rk_plan_ring(rk_control_block *control, const uint8_t *data, uint32_t storage, uint32_t at,
                                 uint32_t write, uint32_t max_frame_length, uint32_t batch_max, uint32_t ring_id,
                                 rk_frame_slot *slots, uint32_t *count) {
  while (at != write && *count < batch_max) {
    const uint32_t available = (write - at + storage) % storage;
    const uint32_t length = *reinterpret_cast<const uint32_t *>(data + at);
    const uint32_t size = rk_align8(length);
    if (length < RK_FRAME_HEADER_SIZE || length > max_frame_length || size > available) {
      rk_add_u64(&control->messages_dropped, 1);
      rk_record_error(control, RK_E_FRAME_BAD_LENGTH);
      return write;
    }
    slots[*count].ring_offset = at;
    slots[*count].length = length;
    slots[*count].ring = ring_id;
    (*count)++;
    at = (at + size) % storage;
  }
  return at;
}

/* The link rings' room and handled cursors, up to where this round's batch ended in each (leader only). The handled
 * cursor goes first: a host that takes a ring over resumes there. Release: the batch's bytes are read. */
__device__ void rk_release_links(rk_link_table *links, uint32_t link_count) {
  for (uint32_t l = 0; l < link_count; l++) {
    const uint32_t end = links->plan_end[l];
    rk_ring_signal *signal = reinterpret_cast<rk_ring_signal *>(links->signal[l]);
    rk_store_release(&signal->handled_cursor, end);
    rk_store_release(&reinterpret_cast<rk_ring_header *>(links->ring[l])->read_index, end);
  }
}

/**
 * The persistent loop. Arguments (each 8 bytes or less, as CudaDriver.launchKernel packs them):
 *   control           the kernel's rk_control_block (mapped host memory or device memory)
 *   input, output     ring headers (rk_ring_header) followed by their data areas of *_storage bytes (multiples of 8)
 *   telemetry         an rk_telemetry_ring followed by its records, or null (tracing off)
 *   scratch           device memory of rk_persistent_scratch_bytes(max_frame_length, batch_max) bytes, zeroed
 *   max_frame_length  header + largest payload, as the host's FrameConsumer allows
 *   batch_max         frames per round (at least 1)
 *   to_unix_ns        add to %globaltimer for Unix-epoch ns (the host measures it at launch)
 *   to_epoch_ns       add to %globaltimer for ns since the telemetry ring's epoch
 *   user_state        passed to every rk_handle call
 *   links             the kernel's kernel-to-kernel input rings (rk_link_table, mapped host memory), or null
 *   routes            the kernel's kernel-to-kernel output rings (rk_route_table, mapped host memory), or null
 */
extern "C" __global__ void rk_persistent_kernel(rk_control_block *control, uint8_t *input, uint32_t input_storage,
                                                uint8_t *output, uint32_t output_storage,
                                                rk_telemetry_ring *telemetry, uint8_t *scratch,
                                                uint32_t max_frame_length, uint32_t batch_max, int64_t to_unix_ns,
                                                int64_t to_epoch_ns, void *user_state, rk_link_table *links,
                                                rk_route_table *routes) {
  cg::grid_group grid = cg::this_grid();
  const bool leader = blockIdx.x == 0 && threadIdx.x == 0;
  if (!grid.is_valid() && gridDim.x > 1) {
    if (leader) {
      rk_record_error(control, RK_E_INVALID_STATE);
      rk_store_release(&control->has_terminated, 1u);
    }
    return;
  }
  auto sync = [&]() {
    if (grid.is_valid())
      grid.sync();
    else
      __syncthreads();
  };

  rk_ring_header *in_ring = reinterpret_cast<rk_ring_header *>(input);
  rk_ring_header *out_ring = reinterpret_cast<rk_ring_header *>(output);
  uint8_t *in_data = input + RK_RING_HEADER_SIZE;
  uint8_t *out_data = output + RK_RING_HEADER_SIZE;
  rk_batch_plan *plan = reinterpret_cast<rk_batch_plan *>(scratch);
  rk_frame_slot *slots = reinterpret_cast<rk_frame_slot *>(scratch + 64);
  const uint32_t stride = rk_align8(max_frame_length);
  uint8_t *in_frames = scratch + 64 + (uint64_t)batch_max * sizeof(rk_frame_slot);
  uint8_t *out_payloads = in_frames + (uint64_t)batch_max * stride;
  const uint32_t kernel = control->kernel_id;
  /* Written by the host before the launch: every frame in and out carries a CRC32-C. */
  const bool integrity = control->integrity != 0;
  const uint32_t max_payload = max_frame_length - RK_FRAME_HEADER_SIZE;
  const uint32_t global_thread = blockIdx.x * blockDim.x + threadIdx.x;
  const uint32_t grid_threads = gridDim.x * blockDim.x;

  if (leader) {
    plan->next_message_id = 1;
    plan->last_heartbeat_ns = 0;
    plan->idle_rounds = 0;
  }

  for (;;) {
    /* ---- plan (leader) ---- */
    if (leader) {
      const uint64_t now = rk_globaltimer();
      if (now - plan->last_heartbeat_ns >= RK_HEARTBEAT_INTERVAL_NS) {
        rk_store_release(&control->heartbeat_us, (uint64_t)((int64_t)now + to_unix_ns) / 1000u);
        plan->last_heartbeat_ns = now;
      }
      const uint32_t terminate = rk_load_acquire(&control->should_terminate);
      const uint32_t active = rk_load_acquire(&control->is_active);
      const uint32_t read = rk_load_relaxed(&in_ring->read_index); /* our own word */
      /* Acquire: every byte of every frame before `write` is visible from here on. */
      const uint32_t write = rk_load_acquire(&in_ring->write_index);
      uint32_t count = 0;
      uint32_t at = read;
      /* terminate_discard is stored before should_terminate: read after it, it says how to finish. */
      const uint32_t discard = terminate == 1 ? rk_load_acquire(&control->terminate_discard) : 0u;
      /* A pause (the host's checkpoint of the kernel state): no batch while it lasts, and say so. Release: every
         state write of the batches before (ordered to the leader by the grid sync) is visible with the flag. */
      const bool pausing = terminate == 0 && rk_load_acquire(&control->pause_request) != 0;
      if (pausing != (rk_load_relaxed(&control->paused) != 0)) rk_store_release(&control->paused, pausing ? 1u : 0u);
      const bool consume = !pausing && terminate != 2 && (terminate == 1 ? discard == 0 : active != 0);
      if (consume) {
        at = rk_plan_ring(control, in_data, input_storage, at, write, max_frame_length, batch_max, 0u, slots, &count);
      }
      /* Then the link rings, a different one first each round. Acquire: the entries below `count` are filled. */
      uint32_t link_count = links == nullptr ? 0u : rk_load_acquire(&links->count);
      if (link_count > RK_MAX_LINKS) link_count = RK_MAX_LINKS;
      bool links_pending = false;
      bool links_moved = false;
      for (uint32_t k = 0; k < link_count; k++) {
        const uint32_t l = (plan->link_next + k) % link_count;
        rk_ring_header *ring = reinterpret_cast<rk_ring_header *>(links->ring[l]);
        const uint8_t *data = reinterpret_cast<const uint8_t *>(links->ring[l]) + RK_RING_HEADER_SIZE;
        const uint32_t from = rk_load_relaxed(&ring->read_index); /* our own word */
        const uint32_t link_write = rk_load_acquire(&ring->write_index);
        uint32_t end = from;
        if (consume) {
          end = rk_plan_ring(control, data, links->storage[l], from, link_write, max_frame_length, batch_max, l + 1u,
                             slots, &count);
        }
        links->plan_end[l] = end;
        if (end != link_write) links_pending = true;
        if (end != from) links_moved = true;
      }
      plan->link_count = link_count;
      if (link_count > 0) plan->link_next = (plan->link_next + 1u) % link_count;
      plan->count = count;
      plan->read_end = at;
      if (count > 0) {
        plan->action = RK_ACTION_BATCH;
        plan->idle_rounds = 0;
        rk_add_u64(&control->messages_received, count);
        rk_store_release(&control->messages_in_flight, count);
        rk_store_release(&control->draining_input, 1u);
      } else if (terminate == 2 || (terminate == 1 && (discard != 0 || (at == write && !links_pending)))) {
        plan->action = RK_ACTION_EXIT;
      } else {
        plan->action = RK_ACTION_IDLE;
        if (at != read) {
          /* Only dropped bytes: release them. */
          rk_store_release(&in_ring->read_index, at);
          rk_store_release(&control->handled_cursor, at);
        }
        if (links_moved) rk_release_links(links, link_count);
      }
    }
    sync();
    const uint32_t action = plan->action;
    if (action == RK_ACTION_EXIT) break;
    if (action == RK_ACTION_IDLE) {
      if (leader) {
        if (plan->idle_rounds < RK_IDLE_SPIN_ROUNDS) plan->idle_rounds++;
        __nanosleep(plan->idle_rounds < RK_IDLE_SPIN_ROUNDS ? RK_IDLE_SLEEP_NS : RK_IDLE_DEEP_SLEEP_NS);
      }
      sync();
      continue;
    }

    /* ---- handle (every thread, one frame each, strided) ---- */
    const uint32_t count = plan->count;
    for (uint32_t i = global_thread; i < count; i += grid_threads) {
      rk_frame_slot *slot = &slots[i];
      uint8_t *frame = in_frames + (uint64_t)i * stride;
      const uint8_t *source = slot->ring == 0u
                                  ? in_data
                                  : reinterpret_cast<const uint8_t *>(links->ring[slot->ring - 1u]) + RK_RING_HEADER_SIZE;
      const uint32_t storage = slot->ring == 0u ? input_storage : links->storage[slot->ring - 1u];
      rk_ring_copy_out(reinterpret_cast<uint64_t *>(frame), source, storage, slot->ring_offset, rk_align8(slot->length));
      rk_handle_frame(frame, slot, out_payloads + (uint64_t)i * stride, max_payload, user_state, integrity);
    }
    sync();

    /* ---- publish (leader): outputs in input order, spans, counters, then the input room ---- */
    if (leader) {
      uint64_t processed = 0, failed = 0, dropped = 0;
      bool abandon = false;
      for (uint32_t i = 0; i < count; i++) {
        const rk_frame_slot *slot = &slots[i];
        const rk_frame_header *in = reinterpret_cast<const rk_frame_header *>(in_frames + (uint64_t)i * stride);
        if (slot->dropped) {
          dropped++;
          rk_record_error(control, slot->result);
          /* A frame the device would not handle (bad magic, version, size or checksum) still has a known extent:
             it goes back to the host whole on the dead-letter ring, flagged DEAD_LETTER with the error, before
             the counters below are published (the host pairs each with its count). No room: counted only. */
          if (routes != nullptr && routes->dead_letters != 0 && slot->length >= RK_FRAME_HEADER_SIZE) {
            rk_return_frame(routes, reinterpret_cast<const uint8_t *>(in), slot->length, slot->result, integrity);
          }
          continue;
        }
        if (slot->result == RK_E_NONE) {
          processed++;
        } else {
          failed++;
          rk_record_error(control, slot->result);
        }
        if (telemetry != nullptr && (in->trace_flags & 1u) != 0) {
          rk_write_span(telemetry, in, slot, kernel, control->generation, to_epoch_ns);
        }
        if (abandon) {
          if (slot->emit || slot->result != RK_E_NONE) dropped++;
          continue;
        }
        /* Writes one frame (header words, then `size - header` payload bytes) into a ring this kernel is the only
           producer of, holding until it has room: never overwrites unread frames. False when the hold is
           abandoned (should_terminate = 2). */
        auto write_frame = [&](rk_ring_header *ring, uint8_t *data, uint32_t storage, const uint64_t *header,
                               const uint8_t *payload, uint32_t size) -> bool {
          for (;;) {
            const uint32_t write = rk_load_relaxed(&ring->write_index);
            const uint32_t read = rk_load_acquire(&ring->read_index);
            const uint32_t used = (write - read + storage) % storage;
            if (storage - 1u - used >= size) break;
            const uint64_t now = rk_globaltimer();
            if (now - plan->last_heartbeat_ns >= RK_HEARTBEAT_INTERVAL_NS) {
              rk_store_release(&control->heartbeat_us, (uint64_t)((int64_t)now + to_unix_ns) / 1000u);
              plan->last_heartbeat_ns = now;
            }
            if (rk_load_acquire(&control->should_terminate) == 2u) return false;
            __nanosleep(RK_IDLE_SLEEP_NS);
          }
          const uint32_t write = rk_load_relaxed(&ring->write_index);
          rk_ring_copy_in(data, storage, write, header, RK_FRAME_HEADER_SIZE);
          rk_ring_copy_in(data, storage, (write + RK_FRAME_HEADER_SIZE) % storage,
                          reinterpret_cast<const uint64_t *>(payload), size - RK_FRAME_HEADER_SIZE);
          /* Release: the frame's bytes are visible before the consumer sees the index that covers them. */
          rk_store_release(&ring->write_index, (write + size) % storage);
          return true;
        };
        union {
          rk_frame_header header;
          uint64_t words[RK_FRAME_HEADER_SIZE / 8];
        } out = {};
        /* With integrity: flag the header and checksum it with its payload, as the host's producer does. */
        auto seal = [&](const uint8_t *payload) {
          if (!integrity) return;
          out.header.flags = (uint16_t)(out.header.flags | RK_FRAME_FLAG_CHECKSUM);
          out.header.checksum = rk_frame_crc(reinterpret_cast<const uint8_t *>(out.words), payload,
                                             out.header.payload_size);
        };
        if (slot->emit) {
          const uint32_t length = RK_FRAME_HEADER_SIZE + slot->out_payload_size;
          const uint32_t size = rk_align8(length);
          uint8_t *payload_bytes = out_payloads + (uint64_t)i * stride;
          /* Zero the padding so the consumer never reads stale bytes. */
          for (uint32_t b = length - RK_FRAME_HEADER_SIZE; b < size - RK_FRAME_HEADER_SIZE; b++) payload_bytes[b] = 0;
          /* As on the CPU: to every link that takes the output's type, to the host when none does; a call's
             response always to the host. Acquire: the route entries below count are filled. */
          bool routed = false;
          if ((in->flags & RK_FRAME_FLAG_REQUEST) == 0 && routes != nullptr) {
            uint32_t route_count = rk_load_acquire(&routes->count);
            if (route_count > RK_MAX_LINKS) route_count = RK_MAX_LINKS;
            for (uint32_t r = 0; r < route_count && !abandon; r++) {
              if (routes->type_id[r] != 0u && routes->type_id[r] != slot->out_type_id) continue;
              routed = true;
              rk_build_output_header(&out.header, in, slot, plan->next_message_id++, kernel, control->generation,
                                     control->hlc_node, to_unix_ns);
              seal(payload_bytes);
              uint8_t *ring = reinterpret_cast<uint8_t *>(routes->ring[r]);
              abandon = !write_frame(reinterpret_cast<rk_ring_header *>(ring), ring + RK_RING_HEADER_SIZE,
                                     routes->storage[r], out.words, payload_bytes, size);
            }
          }
          if (!routed && !abandon) {
            rk_build_output_header(&out.header, in, slot, plan->next_message_id++, kernel, control->generation,
                                   control->hlc_node, to_unix_ns);
            seal(payload_bytes);
            abandon = !write_frame(out_ring, out_data, output_storage, out.words, payload_bytes, size);
          }
        }
        /* A failed message goes back to the host whole, flagged DEAD_LETTER with the error code, on the kernel's
           dead-letter ring (the device releases the input's bytes with the batch, and the host's dead letters
           carry payloads). Never held for: a full dead-letter ring only counts the message as dropped. */
        if (slot->result != RK_E_NONE && !abandon && routes != nullptr && routes->dead_letters != 0) {
          for (uint32_t w = 0; w < RK_FRAME_HEADER_SIZE / 8; w++) out.words[w] = reinterpret_cast<const uint64_t *>(in)[w];
          out.header.flags = (uint16_t)RK_FRAME_FLAG_DEAD_LETTER;
          out.header.error_code = slot->result;
          seal(reinterpret_cast<const uint8_t *>(in) + RK_FRAME_HEADER_SIZE);
          uint8_t *ring = reinterpret_cast<uint8_t *>(routes->dead_letters);
          rk_ring_header *header = reinterpret_cast<rk_ring_header *>(ring);
          const uint32_t storage = routes->dead_letter_storage;
          const uint32_t size = rk_align8(slot->length);
          const uint32_t write = rk_load_relaxed(&header->write_index);
          const uint32_t used = (write - rk_load_acquire(&header->read_index) + storage) % storage;
          if (storage - 1u - used >= size) {
            write_frame(header, ring + RK_RING_HEADER_SIZE, storage, out.words,
                        reinterpret_cast<const uint8_t *>(in) + RK_FRAME_HEADER_SIZE, size);
          } else {
            dropped++;
            rk_record_error(control, RK_E_QUEUE_FULL);
          }
        }
        if (abandon) {
          dropped++;
          rk_record_error(control, RK_E_QUEUE_FULL);
        }
      }
      rk_add_u64(&control->messages_processed, processed);
      rk_add_u64(&control->messages_failed, failed);
      rk_add_u64(&control->messages_dropped, dropped);
      rk_store_release(&control->messages_in_flight, 0u);
      rk_store_release(&control->draining_input, 0u);
      rk_store_release(&control->handled_cursor, plan->read_end);
      /* Release: we are done reading the batch's bytes; the host producer may reuse the room. */
      rk_store_release(&in_ring->read_index, plan->read_end);
      if (plan->link_count > 0) rk_release_links(links, plan->link_count);
    }
    sync();
  }

  if (leader) {
    rk_store_release(&control->messages_in_flight, 0u);
    rk_store_release(&control->heartbeat_us, (uint64_t)((int64_t)rk_globaltimer() + to_unix_ns) / 1000u);
    /* Last store: the host may free the rings once it sees this. */
    rk_store_release(&control->has_terminated, 1u);
  }
}

/**
 * Launch-per-message, for the benchmark's comparison with the persistent loop: one thread handles one frame with
 * the same rk_handle and writes one complete output frame (header built as the persistent loop builds it).
 *   frame_in          one input frame (header + payload), 8-aligned, device or mapped memory
 *   frame_out         rk_align8(max_frame_length) bytes: receives the output frame. Its header's length is 0 when
 *                     there is no output (a malformed frame, or the handler emitted nothing); error_code then holds
 *                     the RK_E_* result, so the launcher can count what a persistent kernel would count
 *   max_frame_length  header + largest payload
 *   user_state        passed to rk_handle
 * Extra threads of a bigger launch return at once. The output's message id is the input's (there is no state
 * between launches), its source kernel the input's destination, its HLC time %globaltimer (Unix ns on Linux).
 */
extern "C" __global__ void rk_single_frame_kernel(const uint8_t *frame_in, uint8_t *frame_out,
                                                  uint32_t max_frame_length, void *user_state) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  const rk_frame_header *in = reinterpret_cast<const rk_frame_header *>(frame_in);
  rk_frame_header *out = reinterpret_cast<rk_frame_header *>(frame_out);
  rk_frame_slot slot = {};
  slot.length = in->length;
  if (slot.length < RK_FRAME_HEADER_SIZE || slot.length > max_frame_length) {
    slot.result = RK_E_FRAME_BAD_LENGTH;
  } else {
    rk_handle_frame(frame_in, &slot, frame_out + RK_FRAME_HEADER_SIZE, max_frame_length - RK_FRAME_HEADER_SIZE,
                    user_state, false);
  }
  for (uint32_t b = 0; b < RK_FRAME_HEADER_SIZE; b++) frame_out[b] = 0;
  if (!slot.emit) {
    out->error_code = slot.result;
    return;
  }
  rk_build_output_header(out, in, &slot, in->message_id, in->destination_kernel, 0u, 0u, 0);
  /* Zero the padding after the payload, as the persistent loop does in its ring. */
  const uint32_t length = RK_FRAME_HEADER_SIZE + slot.out_payload_size;
  for (uint32_t b = length; b < rk_align8(length); b++) frame_out[b] = 0;
}

#ifdef RK_EMULATED_DEVICE
/* The emulated device's entries (rk_emu_kernel_<name>) for the launchable kernels above. */
#include "rk_emu_entries.inc"
#endif
