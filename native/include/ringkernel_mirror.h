/*
 * ringkernel DMA mirror: one native thread that keeps a device-side replica of every ring of the kernels on the
 * `dma` transfer strategy, in the same ringbuf.js layout, behind a table of copy operations (a CPU "device" now:
 * plain host memory another thread reads; CUDA copies later). Loaded with koffi by src/bridge/native-mirror.ts.
 *
 * Threads: the copy thread (the mirror) and, when a wake callback is given, a waker thread that calls it. The
 * callback runs JavaScript on the main thread (koffi blocks the calling thread until it has run), so the copy
 * thread never calls it itself.
 */
#ifndef RINGKERNEL_MIRROR_H
#define RINGKERNEL_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#include "ringkernel_layout.h"

#define RK_MIRROR_ABI_VERSION 2u
#define RK_MIRROR_HOST_TO_DEVICE 0u
#define RK_MIRROR_DEVICE_TO_HOST 1u
/* rk_mirror_serve's result bits. */
#define RK_SERVE_MOVED 1
#define RK_SERVE_WAKE 2
#define RK_SERVE_BUSY 4
/* The channel table grows by chunks of this many channels, up to this many chunks. */
#define RK_CHANNEL_CHUNK 64
#define RK_CHANNEL_CHUNKS 1024

/* How bytes and ring indices reach the device. Host pointers are plain memory; device pointers are whatever the
   device's allocator returned (for the CPU device, host memory too). */
typedef struct rk_copy_ops {
  const char *name;
  void (*to_device)(void *device_dst, const void *host_src, size_t bytes);
  void (*to_host)(void *host_dst, const void *device_src, size_t bytes);
  /* Acquire load / seq_cst store of a u32 ring index in device memory. */
  uint32_t (*load_device_index)(const void *device_word);
  void (*store_device_index)(void *device_word, uint32_t value);
  /* seq_cst load and fetch-add of an i32 doorbell word in device memory. */
  int32_t (*load_device_flag)(const void *device_word);
  void (*bump_device_seq)(void *device_word);
} rk_copy_ops;

typedef void (*rk_wake_fn)(void);
typedef struct rk_mirror rk_mirror;

#if defined(__GNUC__)
#define RK_EXPORT __attribute__((visibility("default")))
#else
#define RK_EXPORT
#endif

/* The copy operations of a device by name ("cpu"); NULL when unknown. */
RK_EXPORT const rk_copy_ops *rk_copy_ops_for(const char *device);
RK_EXPORT uint32_t rk_mirror_abi_version(void);
/* Starts the copy thread (and the waker thread when `wake` is not NULL). `state` is an rk_mirror_state block the
   caller keeps alive until rk_mirror_destroy. poll_us: longest idle sleep before rescanning (worker-produced
   output cannot kick the thread); spin_us: how long an idle thread keeps scanning before it sleeps. NULL on
   failure. */
RK_EXPORT rk_mirror *rk_mirror_create(const char *device, uint32_t poll_us, uint32_t spin_us, rk_wake_fn wake,
                                      rk_mirror_state *state);
/* A mirror whose device is a CUDA device: replicas in device memory (cuMemAlloc), copied with the driver's
   synchronous cuMemcpyHtoD/DtoH from `libcuda` (the path the runtime loaded), with `context` current on the copy
   thread. The caller's thread must have that context current too (attach and detach copy on it). NULL when the
   library or its functions cannot be found. */
RK_EXPORT rk_mirror *rk_mirror_create_cuda(const char *libcuda, uint64_t context, uint32_t poll_us, uint32_t spin_us,
                                           rk_wake_fn wake, rk_mirror_state *state);
/* Driver copies the CUDA mirrors could not make (process-wide). */
RK_EXPORT uint32_t rk_mirror_cuda_copy_failures(void);
/* Mirrors a ring: host_ring and device_ring are rk_ring_header + storage_size bytes, device_ring all zero.
   Returns the channel id (>= 0), or -1 when out of memory or the arguments are bad. The memory must stay valid
   until rk_mirror_detach returns. */
RK_EXPORT int32_t rk_mirror_attach(rk_mirror *mirror, uint32_t direction, uint8_t *host_ring, uint8_t *device_ring,
                                   uint32_t storage_size, rk_ring_signal *host_signal, rk_ring_signal *device_signal,
                                   rk_mirror_channel *channel);
/* Copies what is left to copy on the channel one last time, then forgets it: when it returns, the mirror thread
   no longer touches any of the channel's memory. Returns the bytes of that final copy, or -1 for a bad id. */
RK_EXPORT int64_t rk_mirror_detach(rk_mirror *mirror, int32_t channel);
/* Steps one or two channels (-1 for none) once on the calling thread, as the copy thread would: what the source
   has published is copied and published at the destination, and the consumer's read index carried back. For a host
   thread that waits on those rings (a call's response) and would otherwise wait for the copy thread to be scheduled
   and for its wake-up to cross an event loop. A channel the copy thread is stepping right now is skipped (that step
   does the same work, and RK_SERVE_BUSY says so). Never blocks. Returns RK_SERVE_MOVED when anything moved, and
   RK_SERVE_WAKE when a waiter of these rings was parked: the caller wakes it (for JavaScript waiters:
   Atomics.notify), not the waker thread. A
   CUDA mirror serves nothing (its copies need the device context of its copy thread): 0. Call between attach and
   detach of the channels; any thread. */
RK_EXPORT int32_t rk_mirror_serve(rk_mirror *mirror, int32_t first, int32_t second);
/* Wakes a sleeping copy thread (a host producer published while rk_mirror_state.sleeping was 1). */
RK_EXPORT void rk_mirror_kick(rk_mirror *mirror);
/* Stops the copy thread and joins it; asks the waker thread to stop without waiting for it (it may be inside the
   callback, which needs the caller's thread). Idempotent. */
RK_EXPORT void rk_mirror_stop(rk_mirror *mirror);
/* 1 once the waker thread has returned (or there is none). */
RK_EXPORT int32_t rk_mirror_waker_exited(rk_mirror *mirror);
/* Stops (joins the copy thread of) every mirror the calling thread created and has not destroyed: for a
   JavaScript thread being torn down, whose memory is about to go. Returns how many it stopped. */
RK_EXPORT int32_t rk_mirror_stop_thread_mirrors(void);
/* Mirrors created and not yet destroyed, in the whole process: each has a copy thread (and a waker) that
   rk_mirror_destroy joins. For tests: 0 means no mirror thread is left. */
RK_EXPORT int32_t rk_mirror_live_count(void);
/* Joins the waker (call once rk_mirror_waker_exited is 1, or when the callback can no longer be pending) and
   frees the mirror. Stops it first if needed. */
RK_EXPORT void rk_mirror_destroy(rk_mirror *mirror);

#endif /* RINGKERNEL_MIRROR_H */
