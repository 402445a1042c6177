/*
 * The DMA mirror thread. See ringkernel_mirror.h for the API and docs/benchmarks.md for what it costs.
 *
 * Each channel pairs a host ring with a device replica of the same size, kept in lockstep at the same offsets:
 *   host -> device (input):  copy host[copied, host.write) to the device, publish device.write; then mirror
 *                            device.read back into host.read, so the host producer sees the room the kernel freed.
 *   device -> host (output): copy device[copied, device.write) to the host, publish host.write; then mirror
 *                            host.read back into device.read.
 * Because the source's free room is the destination's read index mirrored back, the destination always has room
 * for what the source holds: the mirror never waits for space and never splits a frame.
 *
 * Memory ordering (the ring contract): the source write index is loaded with acquire before its bytes are read;
 * the destination write index is stored after the copy. That store and the load of the consumer's sleeping flag
 * that follows are seq_cst (not just release/acquire): together with the JS consumer's seq_cst "set sleeping
 * flag, re-check the ring" they form a Dekker pair, so either the consumer sees the data or the mirror sees the
 * flag and asks for a wake-up. Read indices are mirrored with an acquire load and a seq_cst store, which orders
 * them before the producer-sleeping flag load for the same reason.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ringkernel_mirror.h"

/* ---- the CPU device: device memory is host memory that another thread (a CPU-backend worker) reads ---------- */

static void cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
static uint32_t cpu_load_index(const void *word) {
  return atomic_load_explicit((_Atomic uint32_t *)word, memory_order_acquire);
}
static void cpu_store_index(void *word, uint32_t value) {
  atomic_store_explicit((_Atomic uint32_t *)word, value, memory_order_seq_cst);
}
static int32_t cpu_load_flag(const void *word) {
  return atomic_load_explicit((_Atomic int32_t *)word, memory_order_seq_cst);
}
static void cpu_bump_seq(void *word) { atomic_fetch_add_explicit((_Atomic int32_t *)word, 1, memory_order_seq_cst); }

static const rk_copy_ops CPU_DEVICE_OPS = {
    .name = "cpu",
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .load_device_index = cpu_load_index,
    .store_device_index = cpu_store_index,
    .load_device_flag = cpu_load_flag,
    .bump_device_seq = cpu_bump_seq,
};

/* ---- the CUDA device: device memory, reached through the driver's synchronous copies ------------------------ */

/* Bound from libcuda at rk_mirror_create_cuda (the same library the runtime's koffi binding loaded). */
static int (*cu_memcpy_htod)(uint64_t device, const void *host, size_t bytes);
static int (*cu_memcpy_dtoh)(void *host, uint64_t device, size_t bytes);
static int (*cu_ctx_set_current)(uint64_t context);
/* Copies the driver refused: counted, never fatal to the process. The channel whose copy failed stops for good
   (a refused copy means a lost device: CUDA errors from a faulted context are sticky), without publishing the
   index or bytes the copy was meant to bring, so the host never reads stale bytes as frames. The runtime
   reports the count. */
static _Atomic uint32_t cuda_copy_failures;
/* Set by a refused copy on this (copier) thread; mirror_channel reads it before it uses or publishes what the copy
   was meant to bring. */
static _Thread_local bool copy_failed;

/* Synchronous copies on the legacy default stream complete in issue order, so the bytes of a batch reach the
   device before the index that publishes them, and an index is read before the bytes it covers are copied. */
static void cuda_to_device(void *dst, const void *src, size_t bytes) {
  if (cu_memcpy_htod((uint64_t)(uintptr_t)dst, src, bytes) != 0) {
    atomic_fetch_add(&cuda_copy_failures, 1);
    copy_failed = true;
  }
}
static void cuda_to_host(void *dst, const void *src, size_t bytes) {
  if (cu_memcpy_dtoh(dst, (uint64_t)(uintptr_t)src, bytes) != 0) {
    atomic_fetch_add(&cuda_copy_failures, 1);
    copy_failed = true;
  }
}
static uint32_t cuda_load_index(const void *word) {
  uint32_t value = 0;
  cuda_to_host(&value, word, sizeof value);
  return value;
}
static void cuda_store_index(void *word, uint32_t value) { cuda_to_device(word, &value, sizeof value); }
/* A GPU consumer polls its ring and never parks on a doorbell: nobody sleeps on the device side. */
static int32_t cuda_load_flag(const void *word) {
  (void)word;
  return 0;
}
static void cuda_bump_seq(void *word) { (void)word; }

static const rk_copy_ops CUDA_DEVICE_OPS = {
    .name = "cuda",
    .to_device = cuda_to_device,
    .to_host = cuda_to_host,
    .load_device_index = cuda_load_index,
    .store_device_index = cuda_store_index,
    .load_device_flag = cuda_load_flag,
    .bump_device_seq = cuda_bump_seq,
};

const rk_copy_ops *rk_copy_ops_for(const char *device) {
  if (device != NULL && strcmp(device, "cpu") == 0) return &CPU_DEVICE_OPS;
  if (device != NULL && strcmp(device, "cuda") == 0 && cu_memcpy_htod != NULL) return &CUDA_DEVICE_OPS;
  return NULL;
}

uint32_t rk_mirror_cuda_copy_failures(void) { return atomic_load(&cuda_copy_failures); }

uint32_t rk_mirror_abi_version(void) { return RK_MIRROR_ABI_VERSION; }

/* ---- the mirror ------------------------------------------------------------------------------------------------ */

typedef struct channel {
  /* Who steps the channel now (the copy thread, or a host thread serving it: rk_mirror_serve); 0 when nobody. Its
     acquire/release orders the single-writer state below between them. */
  _Atomic uint32_t busy;
  /* Written under both the table lock and busy; read under either. */
  bool used;
  uint32_t direction;
  rk_ring_header *host, *device;
  uint8_t *host_data, *device_data;
  uint32_t storage;
  rk_ring_signal *host_signal, *device_signal;
  rk_mirror_channel *stats;
  /* Source offset up to which bytes are copied and published at the destination (mirror thread only). */
  uint32_t copied;
  /* The consumer's read index as last mirrored back to the producer's ring. */
  uint32_t mirrored_read;
  /* A device copy failed on this channel: it moves nothing more (mirror thread only). */
  bool broken;
} channel;

struct rk_mirror {
  const rk_copy_ops *ops;
  rk_mirror_state *state;
  rk_wake_fn wake;
  uint64_t poll_ns, spin_ns;
  /* Guards the channel table: the copy thread holds it for one pass, attach/detach for their change. */
  pthread_mutex_t lock;
  /* The table, in chunks that never move once allocated, so rk_mirror_serve reaches a channel by id without the
     table lock. A chunk is published (release) before any id in it is handed out. */
  _Atomic(channel *) chunks[RK_CHANNEL_CHUNKS];
  int32_t capacity;
  pthread_t copier, waker;
  bool has_waker, copier_joined, waker_joined;
  _Atomic int stop;
  /* Futex words, private to this process: the copy thread sleeps on kick_word, the waker on wake_word. */
  _Atomic uint32_t kick_word;
  _Atomic uint32_t wake_word;
  _Atomic int waker_exited;
  /* The JavaScript thread that created the mirror, and the process-wide list of live mirrors (see
     rk_mirror_stop_thread_mirrors: a worker thread torn down from outside stops its mirrors on the way). */
  pthread_t owner;
  struct rk_mirror *next_live;
  /* CUDA: the context the copy thread makes current before its first copy (0: not a CUDA mirror). */
  uint64_t cuda_context;
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;

/* The channel with this id (below the capacity published to the caller's thread). */
static channel *channel_at(rk_mirror *m, int32_t id) {
  channel *chunk = atomic_load_explicit(&m->chunks[id / RK_CHANNEL_CHUNK], memory_order_acquire);
  return chunk == NULL ? NULL : &chunk[id % RK_CHANNEL_CHUNK];
}

static bool channel_try_lock(channel *c) {
  return atomic_exchange_explicit(&c->busy, 1, memory_order_acquire) == 0;
}
static void channel_unlock(channel *c) { atomic_store_explicit(&c->busy, 0, memory_order_release); }
/* Only attach and detach wait: a holder steps one channel once (a copy of what is published) and lets go. */
static void channel_lock(channel *c) {
  while (!channel_try_lock(c)) sched_yield();
}
static rk_mirror *live_mirrors;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns) {
  struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000ull), .tv_nsec = (long)(timeout_ns % 1000000000ull)};
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, timeout_ns == 0 ? NULL : &ts, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word) { syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static inline void add_u64(_Atomic uint64_t *counter, uint64_t amount) {
  /* Single writer: a relaxed load + store is enough and avoids a locked instruction per batch. */
  atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + amount, memory_order_relaxed);
}

/* Frames in [from, to) of a host ring's data, walking their length prefixes (every publish ends on a frame). */
static uint64_t count_frames(const uint8_t *data, uint32_t storage, uint32_t from, uint32_t to) {
  uint64_t frames = 0;
  uint32_t at = from;
  uint32_t budget = (to - from + storage) % storage;
  while (budget > 0) {
    uint32_t length;
    memcpy(&length, data + at, sizeof length);
    uint32_t size = (length + RK_FRAME_ALIGN - 1) & ~(RK_FRAME_ALIGN - 1);
    if (length < RK_FRAME_HEADER_SIZE || size > budget) break; /* malformed: the consumer reports it */
    frames++;
    budget -= size;
    at = (at + size) % storage;
  }
  return frames;
}

/* One channel, one step. Returns the bytes copied; sets *wake when a JS waiter must be notified and *pending when
   the destination still holds bytes its consumer has not freed (its read index will move soon). */
static uint32_t mirror_channel(const rk_copy_ops *ops, channel *c, bool *wake, bool *pending) {
  uint32_t storage = c->storage;
  uint32_t moved = 0;
  bool to_device = c->direction == RK_MIRROR_HOST_TO_DEVICE;
  bool notify = false;
  if (c->broken) return 0;
  copy_failed = false;
  /* Acquire: every byte the producer published before this index is visible. */
  uint32_t source_write = to_device ? atomic_load_explicit(&c->host->write_index, memory_order_acquire)
                                    : ops->load_device_index(&c->device->write_index);
  if (copy_failed) {
    c->broken = true;
    return 0;
  }
  uint32_t from = c->copied;
  if (source_write != from) {
    uint64_t started = now_ns();
    moved = (source_write - from + storage) % storage;
    uint32_t first = source_write > from ? moved : storage - from;
    if (to_device) {
      ops->to_device(c->device_data + from, c->host_data + from, first);
      if (first < moved) ops->to_device(c->device_data, c->host_data, moved - first);
    } else {
      ops->to_host(c->host_data + from, c->device_data + from, first);
      if (first < moved) ops->to_host(c->host_data, c->device_data, moved - first);
    }
    if (copy_failed) {
      c->broken = true;
      return 0;
    }
    uint64_t frames = count_frames(c->host_data, storage, from, source_write);
    c->copied = source_write;
    /* Publish (seq_cst: ordered before the sleeping-flag load below). */
    if (to_device) {
      ops->store_device_index(&c->device->write_index, source_write);
      if (ops->load_device_flag(&c->device_signal->consumer_sleeping) != 0) {
        ops->bump_device_seq(&c->device_signal->data_seq);
        notify = true;
      }
    } else {
      atomic_store_explicit(&c->host->write_index, source_write, memory_order_seq_cst);
      if (atomic_load_explicit(&c->host_signal->consumer_sleeping, memory_order_seq_cst) != 0) {
        atomic_fetch_add_explicit(&c->host_signal->data_seq, 1, memory_order_seq_cst);
        notify = true;
      }
    }
    rk_mirror_channel *s = c->stats;
    add_u64(&s->bytes, moved);
    add_u64(&s->frames, frames);
    add_u64(&s->batches, 1);
    add_u64(&s->copy_ns, now_ns() - started);
    atomic_store_explicit(&s->lag_bytes, moved, memory_order_relaxed);
    if (moved > atomic_load_explicit(&s->max_lag_bytes, memory_order_relaxed)) {
      atomic_store_explicit(&s->max_lag_bytes, moved, memory_order_relaxed);
    }
  }
  /* The consumer's read index, mirrored back to the producer's ring (acquire, then seq_cst store). */
  uint32_t consumer_read = to_device ? ops->load_device_index(&c->device->read_index)
                                     : atomic_load_explicit(&c->host->read_index, memory_order_acquire);
  if (copy_failed) {
    c->broken = true;
    return moved;
  }
  if (consumer_read != c->mirrored_read) {
    c->mirrored_read = consumer_read;
    if (to_device) {
      atomic_store_explicit(&c->host->read_index, consumer_read, memory_order_seq_cst);
      if (atomic_load_explicit(&c->host_signal->producer_sleeping, memory_order_seq_cst) != 0) {
        atomic_fetch_add_explicit(&c->host_signal->space_seq, 1, memory_order_seq_cst);
        notify = true;
      }
    } else {
      ops->store_device_index(&c->device->read_index, consumer_read);
      if (ops->load_device_flag(&c->device_signal->producer_sleeping) != 0) {
        ops->bump_device_seq(&c->device_signal->space_seq);
        notify = true;
      }
    }
  }
  if (notify) {
    atomic_fetch_add_explicit(&c->stats->wake_seq, 1, memory_order_seq_cst);
    *wake = true;
  }
  if (consumer_read != c->copied) *pending = true;
  return moved;
}

static void request_wake(rk_mirror *m) {
  if (!m->has_waker) return;
  if (atomic_exchange_explicit(&m->wake_word, 1, memory_order_seq_cst) == 0) futex_wake(&m->wake_word);
}

/* One pass over every channel. Returns whether anything moved (bytes or a read index); sets *pending when some
   consumer has yet to free what it was given. */
static bool mirror_pass(rk_mirror *m, bool *pending) {
  bool wake = false;
  uint64_t moved = 0;
  pthread_mutex_lock(&m->lock);
  for (int32_t i = 0; i < m->capacity; i++) {
    channel *c = channel_at(m, i);
    if (!c->used) continue;
    /* A host thread carries this ring itself (a stream written in one turn: it serves the ring as it goes and once
       more before it lowers the flag, then kicks this thread if it sleeps). Leave it alone and do not count it as
       pending: copying beside that thread would only take a core from it and from the kernel. seq_cst: this load,
       in the re-scan after the sleeping store, pairs with the host's "store 0, load sleeping" (rk_mirror_channel
       docs), so a ring handed back is either seen here or kicked for. */
    if (atomic_load_explicit(&c->stats->host_carries, memory_order_seq_cst) != 0) {
      atomic_store_explicit(&c->stats->carried_skips,
                            atomic_load_explicit(&c->stats->carried_skips, memory_order_relaxed) + 1,
                            memory_order_relaxed);
      continue;
    }
    /* A host thread is serving it right now: that step does this one's work; look again soon. */
    if (!channel_try_lock(c)) {
      *pending = true;
      continue;
    }
    uint32_t read_before = c->mirrored_read;
    moved += mirror_channel(m->ops, c, &wake, pending);
    if (c->mirrored_read != read_before) moved++;
    channel_unlock(c);
  }
  pthread_mutex_unlock(&m->lock);
  add_u64(&m->state->passes, 1);
  if (wake) request_wake(m);
  return moved != 0;
}

/* Idle sleeps grow from poll_us to DEEP_IDLE_SLEEP_NS after DEEP_IDLE_AFTER_NS without traffic. */
#define DEEP_IDLE_AFTER_NS 200000000ull
#define DEEP_IDLE_SLEEP_NS 10000000ull
/* While a consumer still holds bytes it was given, its read index will move soon and only this thread can carry
   it back (a worker cannot kick it): keep scanning, yielding the core, for up to this long without movement. A
   paused kernel with a full queue therefore costs at most this much scanning before the thread sleeps. */
#define PENDING_SPIN_NS 1000000ull

static void *copier_main(void *arg) {
  rk_mirror *m = arg;
  if (m->cuda_context != 0 && cu_ctx_set_current(m->cuda_context) != 0) atomic_fetch_add(&cuda_copy_failures, 1);
  uint64_t idle_since = now_ns();
  while (!atomic_load_explicit(&m->stop, memory_order_acquire)) {
    bool pending = false;
    if (mirror_pass(m, &pending)) {
      idle_since = now_ns();
      continue;
    }
    uint64_t now = now_ns();
    if (now - idle_since < m->spin_ns) {
      for (int i = 0; i < 32; i++) cpu_relax();
      continue;
    }
    if (pending && now - idle_since < PENDING_SPIN_NS) {
      sched_yield();
      continue;
    }
    /* Sleep, eventcount style: announce it, re-check, then wait on the kick word. */
    uint32_t seen = atomic_load_explicit(&m->kick_word, memory_order_acquire);
    atomic_store_explicit(&m->state->sleeping, 1, memory_order_seq_cst);
    if (mirror_pass(m, &pending) || atomic_load_explicit(&m->stop, memory_order_acquire)) {
      atomic_store_explicit(&m->state->sleeping, 0, memory_order_seq_cst);
      idle_since = now_ns();
      continue;
    }
    uint64_t timeout = now - idle_since > DEEP_IDLE_AFTER_NS && m->poll_ns < DEEP_IDLE_SLEEP_NS ? DEEP_IDLE_SLEEP_NS
                                                                                              : m->poll_ns;
    add_u64(&m->state->sleeps, 1);
    futex_wait(&m->kick_word, seen, timeout);
    atomic_store_explicit(&m->state->sleeping, 0, memory_order_seq_cst);
    if (atomic_load_explicit(&m->kick_word, memory_order_acquire) != seen) idle_since = now_ns();
  }
  atomic_store_explicit(&m->state->sleeping, 0, memory_order_seq_cst);
  return NULL;
}

static void *waker_main(void *arg) {
  rk_mirror *m = arg;
  for (;;) {
    while (atomic_load_explicit(&m->wake_word, memory_order_acquire) == 0 &&
           !atomic_load_explicit(&m->stop, memory_order_acquire)) {
      futex_wait(&m->wake_word, 0, 0);
    }
    if (atomic_load_explicit(&m->stop, memory_order_acquire)) break;
    /* Clear before calling: a request made while JS runs the callback triggers another call. */
    atomic_store_explicit(&m->wake_word, 0, memory_order_seq_cst);
    add_u64(&m->state->wake_calls, 1);
    m->wake(); /* blocks until the main thread has run it */
  }
  atomic_store_explicit(&m->waker_exited, 1, memory_order_release);
  return NULL;
}

static rk_mirror *mirror_create(const char *device, uint64_t cuda_context, uint32_t poll_us, uint32_t spin_us,
                                rk_wake_fn wake, rk_mirror_state *state);

rk_mirror *rk_mirror_create(const char *device, uint32_t poll_us, uint32_t spin_us, rk_wake_fn wake,
                            rk_mirror_state *state) {
  return mirror_create(device, 0, poll_us, spin_us, wake, state);
}

rk_mirror *rk_mirror_create_cuda(const char *libcuda, uint64_t context, uint32_t poll_us, uint32_t spin_us,
                                 rk_wake_fn wake, rk_mirror_state *state) {
  if (libcuda == NULL || context == 0) return NULL;
  /* The runtime has this library loaded already (koffi): dlopen finds the same copy and its state. */
  void *lib = dlopen(libcuda, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) return NULL;
  void *htod = dlsym(lib, "cuMemcpyHtoD_v2");
  void *dtoh = dlsym(lib, "cuMemcpyDtoH_v2");
  void *set_current = dlsym(lib, "cuCtxSetCurrent");
  if (htod == NULL || dtoh == NULL || set_current == NULL) return NULL;
  cu_memcpy_htod = (int (*)(uint64_t, const void *, size_t))htod;
  cu_memcpy_dtoh = (int (*)(void *, uint64_t, size_t))dtoh;
  cu_ctx_set_current = (int (*)(uint64_t))set_current;
  return mirror_create("cuda", context, poll_us, spin_us, wake, state);
}

static rk_mirror *mirror_create(const char *device, uint64_t cuda_context, uint32_t poll_us, uint32_t spin_us,
                                rk_wake_fn wake, rk_mirror_state *state) {
  const rk_copy_ops *ops = rk_copy_ops_for(device);
  if (ops == NULL || state == NULL || poll_us == 0) return NULL;
  rk_mirror *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->cuda_context = cuda_context;
  m->ops = ops;
  m->state = state;
  m->wake = wake;
  m->poll_ns = (uint64_t)poll_us * 1000ull;
  m->spin_ns = (uint64_t)spin_us * 1000ull;
  atomic_init(&m->stop, 0);
  atomic_init(&m->kick_word, 0);
  atomic_init(&m->wake_word, 0);
  atomic_init(&m->waker_exited, wake == NULL ? 1 : 0);
  if (pthread_mutex_init(&m->lock, NULL) != 0) {
    free(m);
    return NULL;
  }
  if (pthread_create(&m->copier, NULL, copier_main, m) != 0) {
    pthread_mutex_destroy(&m->lock);
    free(m);
    return NULL;
  }
  if (wake != NULL) {
    if (pthread_create(&m->waker, NULL, waker_main, m) != 0) {
      atomic_store(&m->stop, 1);
      futex_wake(&m->kick_word);
      pthread_join(m->copier, NULL);
      pthread_mutex_destroy(&m->lock);
      free(m);
      return NULL;
    }
    m->has_waker = true;
  }
  m->owner = pthread_self();
  pthread_mutex_lock(&live_lock);
  m->next_live = live_mirrors;
  live_mirrors = m;
  pthread_mutex_unlock(&live_lock);
  return m;
}

int32_t rk_mirror_attach(rk_mirror *m, uint32_t direction, uint8_t *host_ring, uint8_t *device_ring,
                         uint32_t storage_size, rk_ring_signal *host_signal, rk_ring_signal *device_signal,
                         rk_mirror_channel *stats) {
  if (m == NULL || host_ring == NULL || device_ring == NULL || host_signal == NULL || device_signal == NULL ||
      stats == NULL || storage_size == 0 || storage_size % RK_FRAME_ALIGN != 0 || direction > 1) {
    return -1;
  }
  pthread_mutex_lock(&m->lock);
  int32_t id = -1;
  for (int32_t i = 0; i < m->capacity; i++) {
    if (!channel_at(m, i)->used) {
      id = i;
      break;
    }
  }
  if (id < 0) {
    int32_t chunk = m->capacity / RK_CHANNEL_CHUNK;
    channel *fresh = chunk < RK_CHANNEL_CHUNKS ? calloc(RK_CHANNEL_CHUNK, sizeof *fresh) : NULL;
    if (fresh == NULL) {
      pthread_mutex_unlock(&m->lock);
      return -1;
    }
    atomic_store_explicit(&m->chunks[chunk], fresh, memory_order_release);
    id = m->capacity;
    m->capacity += RK_CHANNEL_CHUNK;
  }
  channel *c = channel_at(m, id);
  /* A host thread may still try to serve the id's former channel: it waits for this, then sees the new one. */
  channel_lock(c);
  c->used = true;
  c->direction = direction;
  c->host = (rk_ring_header *)host_ring;
  c->device = (rk_ring_header *)device_ring;
  c->host_data = host_ring + RK_RING_HEADER_SIZE;
  c->device_data = device_ring + RK_RING_HEADER_SIZE;
  c->storage = storage_size;
  c->host_signal = host_signal;
  c->device_signal = device_signal;
  c->stats = stats;
  c->broken = false;
  /* Start the replica where the host ring is: nothing copied yet (input), everything published already there
     (output: the host ring is the destination). Device indices are written before the device consumer runs. */
  uint32_t host_read = atomic_load_explicit(&c->host->read_index, memory_order_acquire);
  uint32_t host_write = atomic_load_explicit(&c->host->write_index, memory_order_acquire);
  uint32_t start_write = direction == RK_MIRROR_HOST_TO_DEVICE ? host_read : host_write;
  m->ops->store_device_index(&c->device->read_index, host_read);
  m->ops->store_device_index(&c->device->write_index, start_write);
  c->copied = start_write;
  c->mirrored_read = host_read;
  atomic_store_explicit(&m->state->channels, atomic_load_explicit(&m->state->channels, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  channel_unlock(c);
  pthread_mutex_unlock(&m->lock);
  return id;
}

int64_t rk_mirror_detach(rk_mirror *m, int32_t id) {
  if (m == NULL) return -1;
  pthread_mutex_lock(&m->lock);
  if (id < 0 || id >= m->capacity || !channel_at(m, id)->used) {
    pthread_mutex_unlock(&m->lock);
    return -1;
  }
  bool wake = false, pending = false;
  channel *c = channel_at(m, id);
  channel_lock(c);
  int64_t moved = mirror_channel(m->ops, c, &wake, &pending);
  c->used = false;
  channel_unlock(c);
  atomic_store_explicit(&m->state->channels, atomic_load_explicit(&m->state->channels, memory_order_relaxed) - 1,
                        memory_order_relaxed);
  pthread_mutex_unlock(&m->lock);
  return moved;
}

int32_t rk_mirror_serve(rk_mirror *m, int32_t first, int32_t second) {
  /* A CUDA mirror's copies need its context current: only its copy thread has it. */
  if (m == NULL || m->ops != &CPU_DEVICE_OPS || atomic_load_explicit(&m->stop, memory_order_acquire)) return 0;
  int32_t result = 0;
  int32_t ids[2] = {first, second};
  for (int k = 0; k < 2; k++) {
    int32_t id = ids[k];
    /* The ids this thread holds were handed out below the capacity it saw; a stale or foreign id finds nothing. */
    if (id < 0 || id >= RK_CHANNEL_CHUNKS * RK_CHANNEL_CHUNK) continue;
    channel *c = channel_at(m, id);
    if (c == NULL) continue;
    if (!channel_try_lock(c)) {
      result |= RK_SERVE_BUSY; /* the copy thread is stepping it */
      continue;
    }
    if (c->used) {
      bool wake = false, pending = false;
      uint32_t read_before = c->mirrored_read;
      if (mirror_channel(m->ops, c, &wake, &pending) > 0) {
        add_u64(&c->stats->served_batches, 1);
        result |= RK_SERVE_MOVED;
      }
      if (c->mirrored_read != read_before) result |= RK_SERVE_MOVED;
      if (wake) result |= RK_SERVE_WAKE;
    }
    channel_unlock(c);
  }
  return result;
}

void rk_mirror_kick(rk_mirror *m) {
  atomic_fetch_add_explicit(&m->kick_word, 1, memory_order_seq_cst);
  futex_wake(&m->kick_word);
}

void rk_mirror_stop(rk_mirror *m) {
  if (m == NULL) return;
  atomic_store_explicit(&m->stop, 1, memory_order_seq_cst);
  atomic_fetch_add_explicit(&m->kick_word, 1, memory_order_seq_cst);
  futex_wake(&m->kick_word);
  atomic_fetch_add_explicit(&m->wake_word, 1, memory_order_seq_cst);
  futex_wake(&m->wake_word);
  if (!m->copier_joined) {
    pthread_join(m->copier, NULL);
    m->copier_joined = true;
  }
}

int32_t rk_mirror_waker_exited(rk_mirror *m) {
  return m == NULL ? 1 : atomic_load_explicit(&m->waker_exited, memory_order_acquire);
}

int32_t rk_mirror_stop_thread_mirrors(void) {
  int32_t stopped = 0;
  pthread_t self = pthread_self();
  pthread_mutex_lock(&live_lock);
  for (rk_mirror *m = live_mirrors; m != NULL; m = m->next_live) {
    if (!pthread_equal(m->owner, self) || m->copier_joined) continue;
    rk_mirror_stop(m);
    stopped++;
  }
  pthread_mutex_unlock(&live_lock);
  return stopped;
}

int32_t rk_mirror_live_count(void) {
  int32_t live = 0;
  pthread_mutex_lock(&live_lock);
  for (rk_mirror *m = live_mirrors; m != NULL; m = m->next_live) live++;
  pthread_mutex_unlock(&live_lock);
  return live;
}

void rk_mirror_destroy(rk_mirror *m) {
  if (m == NULL) return;
  pthread_mutex_lock(&live_lock);
  for (rk_mirror **link = &live_mirrors; *link != NULL; link = &(*link)->next_live) {
    if (*link == m) {
      *link = m->next_live;
      break;
    }
  }
  pthread_mutex_unlock(&live_lock);
  rk_mirror_stop(m);
  if (m->has_waker && !m->waker_joined) {
    pthread_join(m->waker, NULL);
    m->waker_joined = true;
  }
  pthread_mutex_destroy(&m->lock);
  for (int32_t i = 0; i < RK_CHANNEL_CHUNKS; i++) free(atomic_load_explicit(&m->chunks[i], memory_order_relaxed));
  free(m);
}
