/* The CUDA driver emulator: native/build/libcuda-emu.so, a stand-in for libcuda.so.1 on machines without an NVIDIA
 * GPU (these development machines and CI). It exports the driver-API functions src/backends/cuda/driver.ts binds,
 * with cuda.h's names, C signatures and CUresult numbers, and runs kernels for real on CPU threads: a kernel module
 * is a host shared object built from the same .cu file as the PTX (-DRK_EMULATED_DEVICE, see
 * native/cuda/emu/include/rk_emu_abi.h for the module contract and rk_emu_device.h for the device side).
 *
 * What it models, and how:
 *   - Devices: RINGKERNEL_EMU_DEVICES of them (default 1, 1..16), each an sm_90 with RK_EMU_SM_COUNT SMs and
 *     RINGKERNEL_EMU_MEMORY_MB of memory (default 1 GiB). Every pair can access each other (P2P rank 0).
 *   - Contexts: one primary context per device, reference counted; the current context is per thread, as in CUDA.
 *   - Memory: device memory is host memory (256-aligned, tracked); registered host memory is mapped at the same
 *     address (unified addressing), so a kernel reads a SharedArrayBuffer ring in place, as on a GPU.
 *   - Launches: grid × block host threads (at most RK_EMU_MAX_THREADS per launch, else
 *     CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES), with a barrier per block (__syncthreads) and one for the grid
 *     (grid.sync); launches on one stream run one after another, streams run concurrently; copies complete
 *     synchronously (allowed for the *Async calls: the caller may not assume they are still pending).
 * What it does not model: the legacy default stream's implicit synchronisation with other streams, context
 * teardown freeing memory, memory protection (a bad pointer in a kernel crashes the process, not the context).
 *
 * Thread safety: one mutex guards every table; kernels never take it (they only use their launch's barriers). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rk_emu_abi.h"

#define EXPORT __attribute__((visibility("default")))

/* CUresult numbers (cuda.h enum cudaError_enum). */
enum {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_INVALID_VALUE = 1,
  CUDA_ERROR_OUT_OF_MEMORY = 2,
  CUDA_ERROR_NOT_INITIALIZED = 3,
  CUDA_ERROR_NO_DEVICE = 100,
  CUDA_ERROR_INVALID_DEVICE = 101,
  CUDA_ERROR_INVALID_IMAGE = 200,
  CUDA_ERROR_INVALID_CONTEXT = 201,
  CUDA_ERROR_NO_BINARY_FOR_GPU = 209,
  CUDA_ERROR_PEER_ACCESS_UNSUPPORTED = 217,
  CUDA_ERROR_INVALID_HANDLE = 400,
  CUDA_ERROR_NOT_FOUND = 500,
  CUDA_ERROR_NOT_READY = 600,
  CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
  CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED = 704,
  CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED = 712,
  CUDA_ERROR_LAUNCH_FAILED = 719,
  CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED = 713,
  CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE = 720,
  CUDA_ERROR_NOT_SUPPORTED = 801,
  CUDA_ERROR_UNKNOWN = 999,
};

/* The emulator's version (rkEmuVersion): bumped with any behaviour change the TS side may need to know about. */
#define RK_EMU_VERSION 2 /* 2: a trap poisons its context (sticky error), as on a GPU */
/* The driver version it claims (cuDriverGetVersion): CUDA 13.0, the toolkit these machines build PTX with. */
#define RK_EMU_DRIVER_VERSION 13000
#define RK_EMU_MAX_DEVICES 16
/* Multiprocessors per emulated device: small, so a cooperative grid of one block per SM stays a few threads. */
#define RK_EMU_SM_COUNT 2
/* Most host threads one launch may run. A GPU runs thousands of threads; a 2-core host running that many
 * pthreads that all meet at a barrier every round would only thrash. Above it: CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES. */
#define RK_EMU_MAX_THREADS 256
#define RK_EMU_MAX_THREADS_PER_BLOCK 1024
#define RK_EMU_ALLOC_ALIGN 256
/* A pointer that is a context handle: the address of its entry in contexts[] (stable, never freed). */

typedef struct emu_context {
  int device;
  int retain_count;     /* primary-context references; 0 = inactive */
  uint32_t peer_mask;   /* devices whose memory this context has enabled peer access to */
  /* A launch of this context trapped: as on a GPU, the error is sticky. Every later call on the context returns
   * it, and every other launch of the context is ended too. CUDA documents no recovery but a new process. */
  int sticky_error;
} emu_context;

typedef struct emu_allocation {
  struct emu_allocation *next;
  uint8_t *base;
  size_t bytes;
  int device;
} emu_allocation;

typedef struct emu_registration {
  struct emu_registration *next;
  uint8_t *base;
  size_t bytes;
} emu_registration;

typedef struct emu_event {
  struct emu_event *next;         /* all events */
  struct emu_event *next_pending; /* on its stream's pending list */
  uint32_t flags;
  int recorded;
  int completed;
  uint64_t wait_for; /* the stream's launch sequence number that must complete */
  uint64_t timestamp_ns;
} emu_event;

typedef struct emu_stream {
  struct emu_stream *next;
  emu_context *context;
  uint64_t submitted; /* launches submitted so far */
  uint64_t completed; /* launches finished so far (they finish in order) */
  pthread_t last_coordinator; /* the newest launch's coordinator thread (the next one joins it first) */
  int has_last;
  int destroyed; /* cuStreamDestroy with work pending: freed when the last launch finishes */
  emu_event *pending_events;
  int error; /* a launch on it failed (__trap): CUDA_ERROR_LAUNCH_FAILED from every later query or sync */
} emu_stream;

typedef struct emu_module {
  struct emu_module *next;
  void *library;
  int unloaded;
  int references; /* 1 for the module itself + one per running launch */
} emu_module;

typedef struct emu_function {
  struct emu_function *next;
  emu_module *module;
  const rk_emu_kernel *kernel;
} emu_function;

/* A sense-reversing barrier on a futex: arrivals count up atomically, the last one bumps the generation word and
 * wakes everyone sleeping on it. No mutex: with a mutex and a condition variable, 256 threads woken at once queue
 * on the mutex one by one (measured: an idle 256-thread kernel took 40 % of a core that way, 22 % this way). */
typedef struct emu_barrier {
  uint32_t count;
  uint32_t waiting;    /* arrivals this generation */
  uint32_t generation; /* the futex word */
} emu_barrier;

typedef struct emu_launch {
  const rk_emu_kernel *kernel;
  emu_module *module;
  emu_stream *stream;
  void *captured;
  rk_emu_dim3 grid, block;
  uint32_t cooperative;
  uint32_t blocks, threads_per_block, threads;
  emu_barrier grid_barrier;
  emu_barrier *block_barriers;
  rk_emu_thread_context *contexts;
  pthread_t *threads_ids;
  int has_previous;
  pthread_t previous; /* the coordinator of the launch before it on the same stream */
  int aborted;        /* a thread called __trap(): every thread leaves at its next barrier (atomic) */
  struct emu_launch *next_live; /* on live_launches (under the lock) */
} emu_launch;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Signalled whenever a launch completes (stream and context synchronisation wait on it). */
static pthread_cond_t launch_done = PTHREAD_COND_INITIALIZER;
static int initialised;
static int device_count = 1;
static uint64_t device_memory_bytes = 1ull << 30;
static emu_context contexts[RK_EMU_MAX_DEVICES];
static _Thread_local emu_context *current_context;
static emu_allocation *allocations;
static uint64_t allocated_bytes[RK_EMU_MAX_DEVICES];
static emu_registration *registrations;
static emu_stream *streams;
static emu_stream default_streams[RK_EMU_MAX_DEVICES]; /* stream handle 0, per device */
static emu_event *events;
static emu_module *modules;
static emu_function *functions;
static uint64_t launches_running;
/* Every launch not yet completed (under the lock): a trap ends the other launches of its context. */
static emu_launch *live_launches;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* ---- identification ---- */

EXPORT int rkEmuVersion(void) { return RK_EMU_VERSION; }

EXPORT int cuGetErrorName(int error, const char **name) {
  static const struct {
    int code;
    const char *name;
  } table[] = {
      {0, "CUDA_SUCCESS"},
      {1, "CUDA_ERROR_INVALID_VALUE"},
      {2, "CUDA_ERROR_OUT_OF_MEMORY"},
      {3, "CUDA_ERROR_NOT_INITIALIZED"},
      {4, "CUDA_ERROR_DEINITIALIZED"},
      {100, "CUDA_ERROR_NO_DEVICE"},
      {101, "CUDA_ERROR_INVALID_DEVICE"},
      {200, "CUDA_ERROR_INVALID_IMAGE"},
      {201, "CUDA_ERROR_INVALID_CONTEXT"},
      {209, "CUDA_ERROR_NO_BINARY_FOR_GPU"},
      {217, "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED"},
      {218, "CUDA_ERROR_INVALID_PTX"},
      {301, "CUDA_ERROR_FILE_NOT_FOUND"},
      {400, "CUDA_ERROR_INVALID_HANDLE"},
      {500, "CUDA_ERROR_NOT_FOUND"},
      {600, "CUDA_ERROR_NOT_READY"},
      {700, "CUDA_ERROR_ILLEGAL_ADDRESS"},
      {701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"},
      {704, "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED"},
      {705, "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED"},
      {709, "CUDA_ERROR_CONTEXT_IS_DESTROYED"},
      {712, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED"},
      {713, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED"},
      {719, "CUDA_ERROR_LAUNCH_FAILED"},
      {720, "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE"},
      {801, "CUDA_ERROR_NOT_SUPPORTED"},
      {999, "CUDA_ERROR_UNKNOWN"},
  };
  if (name == NULL) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (table[i].code == error) {
      *name = table[i].name;
      return CUDA_SUCCESS;
    }
  }
  /* As the driver does for a number it does not know (driver.ts then falls back to its own table). */
  *name = NULL;
  return CUDA_ERROR_INVALID_VALUE;
}

static int env_int(const char *name, int fallback, int min, int max) {
  const char *text = getenv(name);
  if (text == NULL || *text == 0) return fallback;
  char *end;
  long value = strtol(text, &end, 10);
  if (*end != 0 || value < min || value > max) return -1;
  return (int)value;
}

EXPORT int cuInit(uint32_t flags) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&lock);
  int rc = CUDA_SUCCESS;
  if (!initialised) {
    const int count = env_int("RINGKERNEL_EMU_DEVICES", 1, 1, RK_EMU_MAX_DEVICES);
    const int memory_mb = env_int("RINGKERNEL_EMU_MEMORY_MB", 1024, 1, 1 << 20);
    if (count < 0 || memory_mb < 0) {
      /* A malformed setting is a broken installation, not zero devices: say so the way a driver would. */
      rc = CUDA_ERROR_INVALID_VALUE;
    } else {
      device_count = count;
      device_memory_bytes = (uint64_t)memory_mb << 20;
      for (int d = 0; d < RK_EMU_MAX_DEVICES; d++) {
        contexts[d].device = d;
        default_streams[d].context = &contexts[d];
      }
      initialised = 1;
    }
  }
  pthread_mutex_unlock(&lock);
  return rc;
}

EXPORT int cuDriverGetVersion(int *version) {
  if (version == NULL) return CUDA_ERROR_INVALID_VALUE;
  *version = RK_EMU_DRIVER_VERSION;
  return CUDA_SUCCESS;
}

static int check_device(int device) {
  if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
  if (device < 0 || device >= device_count) return CUDA_ERROR_INVALID_DEVICE;
  return CUDA_SUCCESS;
}

/* The current context, or why there is none. */
/* The current context, for a call that needs one: fails once the context holds a sticky error. */
static int need_context(emu_context **out) {
  if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
  emu_context *context = current_context;
  if (context == NULL || context->retain_count == 0) return CUDA_ERROR_INVALID_CONTEXT;
  const int sticky = __atomic_load_n(&context->sticky_error, __ATOMIC_ACQUIRE);
  if (sticky != CUDA_SUCCESS) return sticky;
  *out = context;
  return CUDA_SUCCESS;
}

EXPORT int cuDeviceGetCount(int *count) {
  if (count == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
  *count = device_count;
  return CUDA_SUCCESS;
}

EXPORT int cuDeviceGet(int *device, int ordinal) {
  if (device == NULL) return CUDA_ERROR_INVALID_VALUE;
  int rc = check_device(ordinal);
  if (rc != CUDA_SUCCESS) return rc;
  *device = ordinal;
  return CUDA_SUCCESS;
}

EXPORT int cuDeviceGetAttribute(int *value, int attribute, int device) {
  if (value == NULL) return CUDA_ERROR_INVALID_VALUE;
  int rc = check_device(device);
  if (rc != CUDA_SUCCESS) return rc;
  /* An H100-like sm_90 (cuda.h CUdevice_attribute numbers), scaled down where the host is the limit. */
  switch (attribute) {
    case 1: *value = RK_EMU_MAX_THREADS_PER_BLOCK; break; /* MAX_THREADS_PER_BLOCK */
    case 2: case 3: *value = 1024; break;                 /* MAX_BLOCK_DIM_X/Y */
    case 4: *value = 64; break;                           /* MAX_BLOCK_DIM_Z */
    case 5: *value = 2147483647; break;                   /* MAX_GRID_DIM_X */
    case 6: case 7: *value = 65535; break;                /* MAX_GRID_DIM_Y/Z */
    case 8: *value = 49152; break;                        /* MAX_SHARED_MEMORY_PER_BLOCK */
    case 9: *value = 65536; break;                        /* TOTAL_CONSTANT_MEMORY */
    case 10: *value = 32; break;                          /* WARP_SIZE */
    case 11: *value = 2147483647; break;                  /* MAX_PITCH */
    case 12: case 82: *value = 65536; break;              /* MAX_REGISTERS_PER_BLOCK / _PER_MULTIPROCESSOR */
    case 13: *value = 1980000; break;                     /* CLOCK_RATE, kHz */
    case 14: *value = 512; break;                         /* TEXTURE_ALIGNMENT */
    case 15: *value = 1; break;                           /* GPU_OVERLAP */
    case 16: *value = RK_EMU_SM_COUNT; break;             /* MULTIPROCESSOR_COUNT */
    case 19: *value = 1; break;                           /* CAN_MAP_HOST_MEMORY */
    case 31: *value = 1; break;                           /* CONCURRENT_KERNELS */
    case 33: *value = device + 1; break;                  /* PCI_BUS_ID (as cuDeviceGetPCIBusId says) */
    case 36: *value = 2619000; break;                     /* MEMORY_CLOCK_RATE, kHz */
    case 37: *value = 5120; break;                        /* GLOBAL_MEMORY_BUS_WIDTH */
    case 38: *value = 52428800; break;                    /* L2_CACHE_SIZE */
    case 39: *value = 2048; break;                        /* MAX_THREADS_PER_MULTIPROCESSOR */
    case 40: *value = 2; break;                           /* ASYNC_ENGINE_COUNT */
    case 41: *value = 1; break;                           /* UNIFIED_ADDRESSING */
    case 75: *value = 9; break;                           /* COMPUTE_CAPABILITY_MAJOR */
    case 76: *value = 0; break;                           /* COMPUTE_CAPABILITY_MINOR */
    case 81: *value = 233472; break;                      /* MAX_SHARED_MEMORY_PER_MULTIPROCESSOR */
    case 83: *value = 1; break;                           /* MANAGED_MEMORY */
    case 86: *value = 1; break;                           /* HOST_NATIVE_ATOMIC_SUPPORTED (one coherent memory) */
    case 89: *value = 1; break;                           /* CONCURRENT_MANAGED_ACCESS */
    case 91: *value = 1; break;                           /* CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM (UVA) */
    case 95: *value = 1; break;                           /* COOPERATIVE_LAUNCH */
    case 97: *value = 232448; break;                      /* MAX_SHARED_MEMORY_PER_BLOCK_OPTIN */
    case 106: *value = 32; break;                         /* MAX_BLOCKS_PER_MULTIPROCESSOR */
    default:
      /* Past CU_DEVICE_ATTRIBUTE_MAX (148 in CUDA 13.0) the driver refuses; known ones not modelled read 0. */
      if (attribute <= 0 || attribute >= 148) return CUDA_ERROR_INVALID_VALUE;
      *value = 0;
  }
  return CUDA_SUCCESS;
}

EXPORT int cuDeviceGetName(char *name, int length, int device) {
  if (name == NULL || length <= 0) return CUDA_ERROR_INVALID_VALUE;
  int rc = check_device(device);
  if (rc != CUDA_SUCCESS) return rc;
  snprintf(name, (size_t)length, "ringkernel emulated device %d (CPU threads)", device);
  return CUDA_SUCCESS;
}

EXPORT int cuDeviceTotalMem_v2(uint64_t *bytes, int device) {
  if (bytes == NULL) return CUDA_ERROR_INVALID_VALUE;
  int rc = check_device(device);
  if (rc != CUDA_SUCCESS) return rc;
  *bytes = device_memory_bytes;
  return CUDA_SUCCESS;
}

EXPORT int cuDeviceGetPCIBusId(char *bus_id, int length, int device) {
  if (bus_id == NULL || length <= 0) return CUDA_ERROR_INVALID_VALUE;
  int rc = check_device(device);
  if (rc != CUDA_SUCCESS) return rc;
  /* domain:bus:device.function, bus = ordinal + 1 (bus 0 is the host bridge on a real machine). */
  snprintf(bus_id, (size_t)length, "0000:%02x:00.0", device + 1);
  return CUDA_SUCCESS;
}

/* RINGKERNEL_EMU_NO_PEER switches peer access off, as a machine whose GPUs sit under different root complexes (or
 * with P2P disabled) reports it: "1" for every pair, or pairs such as "0-1,2-3". Read on every call (not by cuInit)
 * so one test process can look at both topologies. */
static int peer_disabled(int a, int b) {
  const char *text = getenv("RINGKERNEL_EMU_NO_PEER");
  if (text == NULL || *text == 0 || strcmp(text, "0") == 0) return 0;
  if (strcmp(text, "1") == 0) return 1;
  for (const char *p = text; *p != 0;) {
    char *end;
    const long x = strtol(p, &end, 10);
    if (*end != '-') return 0;
    const long y = strtol(end + 1, &end, 10);
    if ((x == a && y == b) || (x == b && y == a)) return 1;
    if (*end != ',') return 0;
    p = end + 1;
  }
  return 0;
}

EXPORT int cuDeviceCanAccessPeer(int *can_access, int device, int peer) {
  if (can_access == NULL) return CUDA_ERROR_INVALID_VALUE;
  int rc = check_device(device);
  if (rc == CUDA_SUCCESS) rc = check_device(peer);
  if (rc != CUDA_SUCCESS) return rc;
  /* One host memory: every pair can (unless switched off); a device is not its own peer (the driver answers 0). */
  *can_access = device != peer && !peer_disabled(device, peer);
  return CUDA_SUCCESS;
}

EXPORT int cuDeviceGetP2PAttribute(int *value, int attribute, int source, int destination) {
  if (value == NULL) return CUDA_ERROR_INVALID_VALUE;
  int rc = check_device(source);
  if (rc == CUDA_SUCCESS) rc = check_device(destination);
  if (rc != CUDA_SUCCESS) return rc;
  if (source == destination) return CUDA_ERROR_INVALID_DEVICE;
  if (peer_disabled(source, destination)) {
    /* No peer path: the driver answers 0 for every attribute of the pair (the rank included). */
    if (attribute < 1 || attribute > 5) return CUDA_ERROR_INVALID_VALUE;
    *value = 0;
    return CUDA_SUCCESS;
  }
  switch (attribute) {
    case 1: *value = 0; return CUDA_SUCCESS; /* PERFORMANCE_RANK: 0 = the best link */
    case 2:                                  /* ACCESS_SUPPORTED */
    case 3:                                  /* NATIVE_ATOMIC_SUPPORTED */
    case 4: *value = 1; return CUDA_SUCCESS; /* CUDA_ARRAY_ACCESS_SUPPORTED */
    case 5: *value = 0; return CUDA_SUCCESS; /* ONLY_PARTIAL_NATIVE_ATOMIC_SUPPORTED: all of them are */
    default: return CUDA_ERROR_INVALID_VALUE;
  }
}

/* ---- contexts ---- */

static emu_context *context_of_handle(uint64_t handle) {
  for (int d = 0; d < device_count; d++) {
    if ((uint64_t)(uintptr_t)&contexts[d] == handle) return &contexts[d];
  }
  return NULL;
}

EXPORT int cuDevicePrimaryCtxRetain(uint64_t *context, int device) {
  if (context == NULL) return CUDA_ERROR_INVALID_VALUE;
  int rc = check_device(device);
  if (rc != CUDA_SUCCESS) return rc;
  pthread_mutex_lock(&lock);
  contexts[device].retain_count++;
  pthread_mutex_unlock(&lock);
  *context = (uint64_t)(uintptr_t)&contexts[device];
  return CUDA_SUCCESS;
}

EXPORT int cuDevicePrimaryCtxRelease_v2(int device) {
  int rc = check_device(device);
  if (rc != CUDA_SUCCESS) return rc;
  pthread_mutex_lock(&lock);
  /* Releasing an unretained primary context: the driver says CUDA_ERROR_INVALID_CONTEXT. */
  if (contexts[device].retain_count == 0) rc = CUDA_ERROR_INVALID_CONTEXT;
  else contexts[device].retain_count--;
  pthread_mutex_unlock(&lock);
  return rc;
}

EXPORT int cuCtxSetCurrent(uint64_t handle) {
  if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
  if (handle == 0) {
    current_context = NULL;
    return CUDA_SUCCESS;
  }
  emu_context *context = context_of_handle(handle);
  if (context == NULL || context->retain_count == 0) return CUDA_ERROR_INVALID_CONTEXT;
  current_context = context;
  return CUDA_SUCCESS;
}

EXPORT int cuCtxSynchronize(void) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  pthread_mutex_lock(&lock);
  /* Every stream of this context (the default one included) has finished what was submitted before this call. */
  for (;;) {
    int busy = default_streams[context->device].completed < default_streams[context->device].submitted;
    for (emu_stream *s = streams; s != NULL && !busy; s = s->next) {
      if (s->context == context && s->completed < s->submitted) busy = 1;
    }
    if (!busy) break;
    pthread_cond_wait(&launch_done, &lock);
  }
  pthread_mutex_unlock(&lock);
  return CUDA_SUCCESS;
}

EXPORT int cuCtxEnablePeerAccess(uint64_t peer_handle, uint32_t flags) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  emu_context *peer = context_of_handle(peer_handle);
  if (peer == NULL || peer->retain_count == 0) return CUDA_ERROR_INVALID_CONTEXT;
  if (peer == context) return CUDA_ERROR_INVALID_DEVICE; /* a context is not its own peer */
  if (peer_disabled(context->device, peer->device)) return CUDA_ERROR_PEER_ACCESS_UNSUPPORTED;
  pthread_mutex_lock(&lock);
  const uint32_t bit = 1u << peer->device;
  if (context->peer_mask & bit) rc = CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED;
  else context->peer_mask |= bit;
  pthread_mutex_unlock(&lock);
  return rc;
}

/* ---- memory ---- */

/* Whether [pointer, pointer + bytes) lies in one device allocation or one registered host range (device-visible
 * memory under unified addressing). Called with the lock held. */
static int device_visible(uint64_t pointer, size_t bytes) {
  const uint8_t *p = (const uint8_t *)(uintptr_t)pointer;
  for (emu_allocation *a = allocations; a != NULL; a = a->next) {
    if (p >= a->base && bytes <= a->bytes && (size_t)(p - a->base) <= a->bytes - bytes) return 1;
  }
  for (emu_registration *r = registrations; r != NULL; r = r->next) {
    if (p >= r->base && bytes <= r->bytes && (size_t)(p - r->base) <= r->bytes - bytes) return 1;
  }
  return 0;
}

static int check_device_range(uint64_t pointer, size_t bytes) {
  pthread_mutex_lock(&lock);
  const int ok = device_visible(pointer, bytes);
  pthread_mutex_unlock(&lock);
  return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

EXPORT int cuMemAlloc_v2(uint64_t *pointer, size_t bytes) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  if (pointer == NULL || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&lock);
  const int device = context->device;
  if (bytes > device_memory_bytes - allocated_bytes[device]) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  const size_t rounded = (bytes + RK_EMU_ALLOC_ALIGN - 1) / RK_EMU_ALLOC_ALIGN * RK_EMU_ALLOC_ALIGN;
  emu_allocation *a = malloc(sizeof *a);
  uint8_t *base = a != NULL ? aligned_alloc(RK_EMU_ALLOC_ALIGN, rounded) : NULL;
  if (base == NULL) {
    free(a);
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  a->base = base;
  a->bytes = bytes;
  a->device = device;
  a->next = allocations;
  allocations = a;
  allocated_bytes[device] += bytes;
  pthread_mutex_unlock(&lock);
  *pointer = (uint64_t)(uintptr_t)base;
  return CUDA_SUCCESS;
}

EXPORT int cuMemFree_v2(uint64_t pointer) {
  if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
  if (pointer == 0) return CUDA_SUCCESS; /* as cudaFree(NULL) */
  pthread_mutex_lock(&lock);
  for (emu_allocation **link = &allocations; *link != NULL; link = &(*link)->next) {
    emu_allocation *a = *link;
    if ((uint64_t)(uintptr_t)a->base == pointer) {
      *link = a->next;
      allocated_bytes[a->device] -= a->bytes;
      pthread_mutex_unlock(&lock);
      free(a->base);
      free(a);
      return CUDA_SUCCESS;
    }
  }
  pthread_mutex_unlock(&lock);
  return CUDA_ERROR_INVALID_VALUE;
}

EXPORT int cuMemGetInfo_v2(size_t *free_bytes, size_t *total_bytes) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  if (free_bytes == NULL || total_bytes == NULL) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&lock);
  *total_bytes = device_memory_bytes;
  *free_bytes = device_memory_bytes - allocated_bytes[context->device];
  pthread_mutex_unlock(&lock);
  return CUDA_SUCCESS;
}

EXPORT int cuMemHostRegister_v2(void *memory, size_t bytes, uint32_t flags) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  /* PORTABLE | DEVICEMAP | IOMEMORY | READ_ONLY are the flags cuda.h defines. */
  if (memory == NULL || bytes == 0 || (flags & ~0x0fu) != 0) return CUDA_ERROR_INVALID_VALUE;
  uint8_t *base = memory;
  /* The driver pins whole pages, so two ranges that share a page overlap even when their bytes do not. */
  const uintptr_t page = 4096;
  const uintptr_t first = (uintptr_t)base & ~(page - 1);
  const uintptr_t end = ((uintptr_t)base + bytes + page - 1) & ~(page - 1);
  pthread_mutex_lock(&lock);
  for (emu_registration *r = registrations; r != NULL; r = r->next) {
    const uintptr_t r_first = (uintptr_t)r->base & ~(page - 1);
    const uintptr_t r_end = ((uintptr_t)r->base + r->bytes + page - 1) & ~(page - 1);
    if (first < r_end && r_first < end) {
      pthread_mutex_unlock(&lock);
      return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
    }
  }
  emu_registration *r = malloc(sizeof *r);
  if (r == NULL) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  r->base = base;
  r->bytes = bytes;
  r->next = registrations;
  registrations = r;
  pthread_mutex_unlock(&lock);
  return CUDA_SUCCESS;
}

EXPORT int cuMemHostUnregister(void *memory) {
  /* Like every call, refused while the current context holds a sticky error (the registration stays). */
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  if (memory == NULL) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&lock);
  for (emu_registration **link = &registrations; *link != NULL; link = &(*link)->next) {
    emu_registration *r = *link;
    if (r->base == memory) {
      *link = r->next;
      pthread_mutex_unlock(&lock);
      free(r);
      return CUDA_SUCCESS;
    }
  }
  pthread_mutex_unlock(&lock);
  return CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
}

EXPORT int cuMemHostGetDevicePointer_v2(uint64_t *pointer, void *memory, uint32_t flags) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  if (pointer == NULL || memory == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&lock);
  int registered = 0;
  for (emu_registration *r = registrations; r != NULL && !registered; r = r->next) {
    registered = (uint8_t *)memory >= r->base && (uint8_t *)memory < r->base + r->bytes;
  }
  pthread_mutex_unlock(&lock);
  if (!registered) return CUDA_ERROR_INVALID_VALUE;
  /* Unified addressing: a mapped host page has the same address on the device. */
  *pointer = (uint64_t)(uintptr_t)memory;
  return CUDA_SUCCESS;
}

static int copy_checked(void *destination, const void *source, size_t bytes, uint64_t device_side_a,
                        uint64_t device_side_b, int two_device_sides) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  if (destination == NULL || source == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (bytes == 0) return CUDA_SUCCESS;
  rc = check_device_range(device_side_a, bytes);
  if (rc == CUDA_SUCCESS && two_device_sides) rc = check_device_range(device_side_b, bytes);
  if (rc != CUDA_SUCCESS) return rc;
  memmove(destination, source, bytes);
  return CUDA_SUCCESS;
}

static int check_stream_handle(uint64_t handle);
EXPORT int cuStreamSynchronize(uint64_t handle);

EXPORT int cuMemcpyHtoD_v2(uint64_t destination, const void *source, size_t bytes) {
  return copy_checked((void *)(uintptr_t)destination, source, bytes, destination, 0, 0);
}

EXPORT int cuMemcpyDtoH_v2(void *destination, uint64_t source, size_t bytes) {
  return copy_checked(destination, (const void *)(uintptr_t)source, bytes, source, 0, 0);
}

/* An async copy runs in stream order: after every launch queued before it on that stream (a copy of a kernel's
 * output must not overtake the kernel). The emulator waits for them, then copies at once. */
EXPORT int cuMemcpyHtoDAsync_v2(uint64_t destination, const void *source, size_t bytes, uint64_t stream) {
  int rc = cuStreamSynchronize(stream);
  return rc != CUDA_SUCCESS ? rc : cuMemcpyHtoD_v2(destination, source, bytes);
}

EXPORT int cuMemcpyDtoHAsync_v2(void *destination, uint64_t source, size_t bytes, uint64_t stream) {
  int rc = cuStreamSynchronize(stream);
  return rc != CUDA_SUCCESS ? rc : cuMemcpyDtoH_v2(destination, source, bytes);
}

EXPORT int cuMemcpyPeerAsync(uint64_t destination, uint64_t destination_context, uint64_t source,
                             uint64_t source_context, size_t bytes, uint64_t stream) {
  if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
  emu_context *dst_ctx = context_of_handle(destination_context);
  emu_context *src_ctx = context_of_handle(source_context);
  if (dst_ctx == NULL || src_ctx == NULL || dst_ctx->retain_count == 0 || src_ctx->retain_count == 0) {
    return CUDA_ERROR_INVALID_CONTEXT;
  }
  int rc = check_stream_handle(stream);
  if (rc != CUDA_SUCCESS) return rc;
  return copy_checked((void *)(uintptr_t)destination, (const void *)(uintptr_t)source, bytes, destination, source,
                      1);
}

EXPORT int cuMemsetD8_v2(uint64_t destination, uint8_t value, size_t count) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  if (count == 0) return CUDA_SUCCESS;
  rc = check_device_range(destination, count);
  if (rc != CUDA_SUCCESS) return rc;
  memset((void *)(uintptr_t)destination, value, count);
  return CUDA_SUCCESS;
}

/* ---- modules ---- */

static void module_unref(emu_module *module) {
  /* Called with the lock held. The library stays mapped while a launch still runs its code. */
  if (--module->references > 0) return;
  for (emu_module **link = &modules; *link != NULL; link = &(*link)->next) {
    if (*link == module) {
      *link = module->next;
      break;
    }
  }
  dlclose(module->library);
  free(module);
}

EXPORT int cuModuleLoadData(uint64_t *module_out, const void *image) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  if (module_out == NULL || image == NULL) return CUDA_ERROR_INVALID_VALUE;
  const char *text = image;
  const size_t prefix = strlen(RK_EMU_IMAGE_PREFIX);
  /* PTX, cubin, fatbin: code for a real GPU, which this device cannot run (what a driver says of an image built
   * for another architecture). */
  if (strncmp(text, RK_EMU_IMAGE_PREFIX, prefix) != 0 || text[prefix] != '/') return CUDA_ERROR_NO_BINARY_FOR_GPU;
  void *library = dlopen(text + prefix, RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) return CUDA_ERROR_INVALID_IMAGE;
  const uint32_t *abi = dlsym(library, RK_EMU_ABI_SYMBOL);
  if (abi == NULL || *abi != RK_EMU_ABI_VERSION) {
    dlclose(library);
    return CUDA_ERROR_INVALID_IMAGE;
  }
  emu_module *module = calloc(1, sizeof *module);
  if (module == NULL) {
    dlclose(library);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  module->library = library;
  module->references = 1;
  pthread_mutex_lock(&lock);
  module->next = modules;
  modules = module;
  pthread_mutex_unlock(&lock);
  *module_out = (uint64_t)(uintptr_t)module;
  return CUDA_SUCCESS;
}

/* Called with the lock held. */
static emu_module *live_module(uint64_t handle) {
  for (emu_module *m = modules; m != NULL; m = m->next) {
    if ((uint64_t)(uintptr_t)m == handle && !m->unloaded) return m;
  }
  return NULL;
}

EXPORT int cuModuleUnload(uint64_t handle) {
  if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
  pthread_mutex_lock(&lock);
  emu_module *module = live_module(handle);
  if (module == NULL) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  module->unloaded = 1;
  /* Its functions become invalid handles. */
  for (emu_function **link = &functions; *link != NULL;) {
    emu_function *f = *link;
    if (f->module == module) {
      *link = f->next;
      free(f);
    } else {
      link = &f->next;
    }
  }
  module_unref(module);
  pthread_mutex_unlock(&lock);
  return CUDA_SUCCESS;
}

EXPORT int cuModuleGetFunction(uint64_t *function_out, uint64_t handle, const char *name) {
  if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
  if (function_out == NULL || name == NULL) return CUDA_ERROR_INVALID_VALUE;
  char symbol[256];
  if ((size_t)snprintf(symbol, sizeof symbol, "%s%s", RK_EMU_KERNEL_SYMBOL_PREFIX, name) >= sizeof symbol) {
    return CUDA_ERROR_NOT_FOUND;
  }
  pthread_mutex_lock(&lock);
  emu_module *module = live_module(handle);
  if (module == NULL) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  const rk_emu_kernel *kernel = dlsym(module->library, symbol);
  if (kernel == NULL || kernel->abi_version != RK_EMU_ABI_VERSION) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_NOT_FOUND;
  }
  emu_function *f = NULL;
  for (emu_function *g = functions; g != NULL && f == NULL; g = g->next) {
    if (g->module == module && g->kernel == kernel) f = g;
  }
  if (f == NULL) {
    f = malloc(sizeof *f);
    if (f == NULL) {
      pthread_mutex_unlock(&lock);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    f->module = module;
    f->kernel = kernel;
    f->next = functions;
    functions = f;
  }
  pthread_mutex_unlock(&lock);
  *function_out = (uint64_t)(uintptr_t)f;
  return CUDA_SUCCESS;
}

/* Called with the lock held. */
static emu_function *live_function(uint64_t handle) {
  for (emu_function *f = functions; f != NULL; f = f->next) {
    if ((uint64_t)(uintptr_t)f == handle) return f;
  }
  return NULL;
}

/* The most blocks of `block_size` threads that may be resident per SM: what fits the thread cap, spread over the
 * SMs (so that occupancy × SM count × block size never passes RK_EMU_MAX_THREADS), and at most 32 as on sm_90. */
static int blocks_per_sm(int block_size) {
  int blocks = RK_EMU_MAX_THREADS / RK_EMU_SM_COUNT / block_size;
  return blocks > 32 ? 32 : blocks;
}

EXPORT int cuOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, uint64_t handle, int block_size,
                                                        size_t shared_bytes) {
  if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
  if (blocks == NULL || block_size <= 0 || block_size > RK_EMU_MAX_THREADS_PER_BLOCK) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&lock);
  const int known = live_function(handle) != NULL;
  pthread_mutex_unlock(&lock);
  if (!known) return CUDA_ERROR_INVALID_HANDLE;
  *blocks = shared_bytes > 233472 ? 0 : blocks_per_sm(block_size);
  return CUDA_SUCCESS;
}

/* ---- streams and events ---- */

/* Called with the lock held. Handle 0 is the current context's default stream. */
static emu_stream *stream_of_handle(uint64_t handle) {
  if (handle == 0) return current_context != NULL ? &default_streams[current_context->device] : NULL;
  for (emu_stream *s = streams; s != NULL; s = s->next) {
    if ((uint64_t)(uintptr_t)s == handle && !s->destroyed) return s;
  }
  return NULL;
}

static int check_stream_handle(uint64_t handle) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  pthread_mutex_lock(&lock);
  const int known = stream_of_handle(handle) != NULL;
  pthread_mutex_unlock(&lock);
  return known ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

EXPORT int cuStreamCreate(uint64_t *stream_out, uint32_t flags) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  if (stream_out == NULL || (flags & ~1u) != 0) return CUDA_ERROR_INVALID_VALUE;
  emu_stream *s = calloc(1, sizeof *s);
  if (s == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  s->context = context;
  pthread_mutex_lock(&lock);
  s->next = streams;
  streams = s;
  pthread_mutex_unlock(&lock);
  *stream_out = (uint64_t)(uintptr_t)s;
  return CUDA_SUCCESS;
}

static void stream_free(emu_stream *stream) {
  /* Called with the lock held, when the stream is destroyed and idle. */
  for (emu_stream **link = &streams; *link != NULL; link = &(*link)->next) {
    if (*link == stream) {
      *link = stream->next;
      break;
    }
  }
  if (stream->has_last) pthread_detach(stream->last_coordinator);
  free(stream);
}

EXPORT int cuStreamSynchronize(uint64_t handle) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  pthread_mutex_lock(&lock);
  emu_stream *stream = stream_of_handle(handle);
  if (stream == NULL) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  const uint64_t target = stream->submitted;
  while (stream->completed < target) pthread_cond_wait(&launch_done, &lock);
  rc = stream->error;
  pthread_mutex_unlock(&lock);
  return rc;
}

EXPORT int cuStreamQuery(uint64_t handle) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  pthread_mutex_lock(&lock);
  emu_stream *stream = stream_of_handle(handle);
  rc = stream == NULL                           ? CUDA_ERROR_INVALID_HANDLE
       : stream->completed < stream->submitted ? CUDA_ERROR_NOT_READY
                                               : stream->error;
  pthread_mutex_unlock(&lock);
  return rc;
}

EXPORT int cuStreamDestroy_v2(uint64_t handle) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  if (handle == 0) return CUDA_ERROR_INVALID_HANDLE;
  pthread_mutex_lock(&lock);
  emu_stream *stream = stream_of_handle(handle);
  if (stream == NULL) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  /* As the driver: returns at once; the stream's pending work still completes, then its resources go. */
  stream->destroyed = 1;
  if (stream->completed == stream->submitted) stream_free(stream);
  pthread_mutex_unlock(&lock);
  return CUDA_SUCCESS;
}

EXPORT int cuEventCreate(uint64_t *event_out, uint32_t flags) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  if (event_out == NULL || (flags & ~0x7u) != 0) return CUDA_ERROR_INVALID_VALUE;
  emu_event *e = calloc(1, sizeof *e);
  if (e == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  e->flags = flags;
  pthread_mutex_lock(&lock);
  e->next = events;
  events = e;
  pthread_mutex_unlock(&lock);
  *event_out = (uint64_t)(uintptr_t)e;
  return CUDA_SUCCESS;
}

/* Called with the lock held. */
static emu_event *event_of_handle(uint64_t handle) {
  for (emu_event *e = events; e != NULL; e = e->next) {
    if ((uint64_t)(uintptr_t)e == handle) return e;
  }
  return NULL;
}

static void unlink_pending(emu_event *event) {
  for (emu_stream *s = streams; s != NULL; s = s->next) {
    for (emu_event **link = &s->pending_events; *link != NULL; link = &(*link)->next_pending) {
      if (*link == event) {
        *link = event->next_pending;
        return;
      }
    }
  }
  for (int d = 0; d < RK_EMU_MAX_DEVICES; d++) {
    for (emu_event **link = &default_streams[d].pending_events; *link != NULL; link = &(*link)->next_pending) {
      if (*link == event) {
        *link = event->next_pending;
        return;
      }
    }
  }
}

EXPORT int cuEventRecord(uint64_t handle, uint64_t stream_handle) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  pthread_mutex_lock(&lock);
  emu_event *event = event_of_handle(handle);
  emu_stream *stream = stream_of_handle(stream_handle);
  if (event == NULL || stream == NULL) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  unlink_pending(event);
  event->recorded = 1;
  event->wait_for = stream->submitted;
  if (stream->completed >= stream->submitted) {
    /* Nothing pending before it: it completes now, with the host's clock as its timestamp. */
    event->completed = 1;
    event->timestamp_ns = now_ns();
  } else {
    /* Completes (and is stamped) when the stream's last launch so far finishes. */
    event->completed = 0;
    event->next_pending = stream->pending_events;
    stream->pending_events = event;
  }
  pthread_mutex_unlock(&lock);
  return CUDA_SUCCESS;
}

EXPORT int cuEventSynchronize(uint64_t handle) {
  if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
  pthread_mutex_lock(&lock);
  emu_event *event = event_of_handle(handle);
  if (event == NULL) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  /* An event never recorded is complete, as in CUDA. */
  while (event->recorded && !event->completed) pthread_cond_wait(&launch_done, &lock);
  pthread_mutex_unlock(&lock);
  return CUDA_SUCCESS;
}

EXPORT int cuEventElapsedTime_v2(float *milliseconds, uint64_t start_handle, uint64_t end_handle) {
  if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
  if (milliseconds == NULL) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&lock);
  emu_event *start = event_of_handle(start_handle);
  emu_event *end = event_of_handle(end_handle);
  int rc = CUDA_SUCCESS;
  if (start == NULL || end == NULL) rc = CUDA_ERROR_INVALID_HANDLE;
  else if ((start->flags | end->flags) & 0x2u) rc = CUDA_ERROR_INVALID_HANDLE; /* DISABLE_TIMING, as the driver */
  else if (!start->recorded || !end->recorded) rc = CUDA_ERROR_INVALID_HANDLE;
  else if (!start->completed || !end->completed) rc = CUDA_ERROR_NOT_READY;
  else *milliseconds = (float)((double)((int64_t)(end->timestamp_ns - start->timestamp_ns)) / 1e6);
  pthread_mutex_unlock(&lock);
  return rc;
}

EXPORT int cuEventDestroy_v2(uint64_t handle) {
  if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
  pthread_mutex_lock(&lock);
  for (emu_event **link = &events; *link != NULL; link = &(*link)->next) {
    emu_event *e = *link;
    if ((uint64_t)(uintptr_t)e == handle) {
      *link = e->next;
      unlink_pending(e);
      pthread_mutex_unlock(&lock);
      free(e);
      return CUDA_SUCCESS;
    }
  }
  pthread_mutex_unlock(&lock);
  return CUDA_ERROR_INVALID_HANDLE;
}

/* ---- launches ---- */

static void barrier_init(emu_barrier *b, uint32_t count) {
  b->count = count;
  b->waiting = 0;
  b->generation = 0;
}

static void barrier_destroy(emu_barrier *b) { (void)b; }

/* Blocks until `count` threads have arrived. The acq_rel increments chain every arriving thread's earlier writes to
 * the last arrival, whose release store of the generation hands them to every waiter's acquire load: each thread
 * sees every write made before the barrier (what __syncthreads and grid.sync promise). A barrier of one thread
 * returns at once: the idle round of a 1-thread persistent kernel costs no syscall. */
static void barrier_wait(emu_launch *l, emu_barrier *b) {
  /* A grid that trapped ends here: its threads never meet again. */
  if (__atomic_load_n(&l->aborted, __ATOMIC_ACQUIRE)) pthread_exit(NULL);
  if (b->count == 1) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return;
  }
  const uint32_t generation = __atomic_load_n(&b->generation, __ATOMIC_ACQUIRE);
  if (__atomic_add_fetch(&b->waiting, 1, __ATOMIC_ACQ_REL) == b->count) {
    /* Reset before the release: nobody re-enters until the generation moves, so nobody sees a stale count. */
    __atomic_store_n(&b->waiting, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&b->generation, generation + 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, &b->generation, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
  } else {
    /* FUTEX_WAIT returns at once if the word already moved (no lost wake-up); spurious returns loop. */
    while (__atomic_load_n(&b->generation, __ATOMIC_ACQUIRE) == generation) {
      if (__atomic_load_n(&l->aborted, __ATOMIC_ACQUIRE)) pthread_exit(NULL);
      syscall(SYS_futex, &b->generation, FUTEX_WAIT_PRIVATE, generation, NULL, NULL, 0);
    }
  }
}

/* Wakes every waiter of a barrier so it sees the launch's aborted flag. */
static void barrier_abort(emu_barrier *b) {
  __atomic_add_fetch(&b->generation, 1, __ATOMIC_RELEASE);
  syscall(SYS_futex, &b->generation, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Ends a launch's grid: every thread leaves at its next barrier, and the launch fails. */
static void abort_launch(emu_launch *l) {
  __atomic_store_n(&l->aborted, 1, __ATOMIC_RELEASE);
  for (uint32_t b = 0; b < l->blocks; b++) barrier_abort(&l->block_barriers[b]);
  barrier_abort(&l->grid_barrier);
}

/* __trap(): as on a GPU, the whole grid ends and the launch fails (its stream reports CUDA_ERROR_LAUNCH_FAILED),
 * and the error is sticky: the context is poisoned, so its other launches end too and every later call on it
 * returns the error. */
static void trap_launch(void *launch) {
  emu_launch *l = launch;
  pthread_mutex_lock(&lock);
  emu_context *context = l->stream->context;
  if (context->sticky_error == CUDA_SUCCESS) {
    __atomic_store_n(&context->sticky_error, CUDA_ERROR_LAUNCH_FAILED, __ATOMIC_RELEASE);
  }
  for (emu_launch *other = live_launches; other != NULL; other = other->next_live) {
    if (other->stream->context == context) abort_launch(other);
  }
  pthread_mutex_unlock(&lock);
  abort_launch(l);
  pthread_exit(NULL);
}

static void sync_block(void *launch, uint32_t block_linear) {
  emu_launch *l = launch;
  barrier_wait(l, &l->block_barriers[block_linear]);
}

static void sync_grid(void *launch) {
  emu_launch *l = launch;
  barrier_wait(l, &l->grid_barrier);
}

static void *emulated_thread(void *argument) {
  rk_emu_thread_context *context = argument;
  emu_launch *launch = context->launch;
  launch->kernel->run(launch->captured, context);
  return NULL;
}

static void launch_free(emu_launch *launch) {
  for (uint32_t b = 0; b < launch->blocks; b++) barrier_destroy(&launch->block_barriers[b]);
  barrier_destroy(&launch->grid_barrier);
  free(launch->block_barriers);
  free(launch->contexts);
  free(launch->threads_ids);
  free(launch);
}

/* One per launch: waits for the launch before it on the stream, runs the grid, joins it, completes it. */
static void *coordinator(void *argument) {
  emu_launch *launch = argument;
  if (launch->has_previous) pthread_join(launch->previous, NULL);
  uint32_t started = 0;
  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  /* Device threads have small stacks; 256 KiB is ample for the template and keeps 256 threads cheap. */
  pthread_attr_setstacksize(&attributes, 256 * 1024);
  for (; started < launch->threads; started++) {
    if (pthread_create(&launch->threads_ids[started], &attributes, emulated_thread, &launch->contexts[started]) != 0) {
      /* Out of host threads mid-launch: the grid can never meet at its barriers. A GPU would not get here (the
       * launch was sized against the cap); a starved host aborts loudly rather than hang. */
      fprintf(stderr, "libcuda-emu: could not start emulated thread %u of %u\n", started, launch->threads);
      abort();
    }
  }
  pthread_attr_destroy(&attributes);
  for (uint32_t i = 0; i < started; i++) pthread_join(launch->threads_ids[i], NULL);
  launch->kernel->release(launch->captured);

  pthread_mutex_lock(&lock);
  emu_stream *stream = launch->stream;
  if (__atomic_load_n(&launch->aborted, __ATOMIC_ACQUIRE)) stream->error = CUDA_ERROR_LAUNCH_FAILED;
  for (emu_launch **link = &live_launches; *link != NULL; link = &(*link)->next_live) {
    if (*link == launch) {
      *link = launch->next_live;
      break;
    }
  }
  stream->completed++;
  const uint64_t stamp = now_ns();
  for (emu_event **link = &stream->pending_events; *link != NULL;) {
    emu_event *e = *link;
    if (e->wait_for <= stream->completed) {
      e->completed = 1;
      e->timestamp_ns = stamp;
      *link = e->next_pending;
    } else {
      link = &e->next_pending;
    }
  }
  launches_running--;
  module_unref(launch->module);
  if (stream->destroyed && stream->completed == stream->submitted) {
    /* This thread is the stream's last coordinator: nobody will join it. */
    if (stream->has_last && pthread_equal(stream->last_coordinator, pthread_self())) stream->has_last = 0;
    pthread_detach(pthread_self());
    stream_free(stream);
  }
  pthread_cond_broadcast(&launch_done);
  pthread_mutex_unlock(&lock);
  launch_free(launch);
  return NULL;
}

static int launch(uint64_t function_handle, uint32_t gx, uint32_t gy, uint32_t gz, uint32_t bx, uint32_t by,
                  uint32_t bz, uint32_t shared_bytes, uint64_t stream_handle, void **params, uint32_t cooperative) {
  emu_context *context;
  int rc = need_context(&context);
  if (rc != CUDA_SUCCESS) return rc;
  if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0) return CUDA_ERROR_INVALID_VALUE;
  if (gx > 2147483647u || gy > 65535 || gz > 65535 || bx > 1024 || by > 1024 || bz > 64) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  const uint64_t threads_per_block = (uint64_t)bx * by * bz;
  if (threads_per_block > RK_EMU_MAX_THREADS_PER_BLOCK || shared_bytes > 232448) return CUDA_ERROR_INVALID_VALUE;
  const uint64_t blocks = (uint64_t)gx * gy * gz;
  pthread_mutex_lock(&lock);
  emu_function *function = live_function(function_handle);
  emu_stream *stream = stream_of_handle(stream_handle);
  if (function == NULL || stream == NULL) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  if (cooperative && blocks > (uint64_t)blocks_per_sm((int)threads_per_block) * RK_EMU_SM_COUNT) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE;
  }
  if (blocks * threads_per_block > RK_EMU_MAX_THREADS) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
  }
  if (params == NULL && function->kernel->param_count > 0) {
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_INVALID_VALUE;
  }
  emu_launch *l = calloc(1, sizeof *l);
  const uint32_t threads = (uint32_t)(blocks * threads_per_block);
  if (l != NULL) {
    l->block_barriers = calloc(blocks, sizeof *l->block_barriers);
    l->contexts = calloc(threads, sizeof *l->contexts);
    l->threads_ids = calloc(threads, sizeof *l->threads_ids);
  }
  if (l == NULL || l->block_barriers == NULL || l->contexts == NULL || l->threads_ids == NULL) {
    if (l != NULL) {
      free(l->block_barriers);
      free(l->contexts);
      free(l->threads_ids);
      free(l);
    }
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  /* As CUDA: the arguments are copied now; the caller may reuse kernelParams as soon as this returns. */
  l->captured = function->kernel->capture(params);
  l->kernel = function->kernel;
  l->module = function->module;
  l->stream = stream;
  l->grid = (rk_emu_dim3){gx, gy, gz};
  l->block = (rk_emu_dim3){bx, by, bz};
  l->cooperative = cooperative;
  l->blocks = (uint32_t)blocks;
  l->threads_per_block = (uint32_t)threads_per_block;
  l->threads = threads;
  barrier_init(&l->grid_barrier, threads);
  for (uint32_t b = 0; b < blocks; b++) barrier_init(&l->block_barriers[b], (uint32_t)threads_per_block);
  uint32_t at = 0;
  for (uint32_t z = 0; z < gz; z++)
    for (uint32_t y = 0; y < gy; y++)
      for (uint32_t x = 0; x < gx; x++)
        for (uint32_t tz = 0; tz < bz; tz++)
          for (uint32_t ty = 0; ty < by; ty++)
            for (uint32_t tx = 0; tx < bx; tx++) {
              rk_emu_thread_context *c = &l->contexts[at++];
              c->block_idx = (rk_emu_dim3){x, y, z};
              c->thread_idx = (rk_emu_dim3){tx, ty, tz};
              c->grid_dim = l->grid;
              c->block_dim = l->block;
              c->cooperative = cooperative;
              c->block_linear = x + gx * (y + gy * z);
              c->launch = l;
              c->sync_block = sync_block;
              c->sync_grid = sync_grid;
              c->trap = trap_launch;
            }
  l->has_previous = stream->has_last;
  l->previous = stream->last_coordinator;
  pthread_t coordinator_id;
  if (pthread_create(&coordinator_id, NULL, coordinator, l) != 0) {
    l->kernel->release(l->captured);
    launch_free(l);
    pthread_mutex_unlock(&lock);
    return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
  }
  function->module->references++;
  stream->submitted++;
  stream->last_coordinator = coordinator_id;
  stream->has_last = 1;
  launches_running++;
  l->next_live = live_launches;
  live_launches = l;
  pthread_mutex_unlock(&lock);
  return CUDA_SUCCESS;
}

EXPORT int cuLaunchKernel(uint64_t fn, uint32_t gx, uint32_t gy, uint32_t gz, uint32_t bx, uint32_t by, uint32_t bz,
                          uint32_t shared, uint64_t stream, void **params, void **extra) {
  /* The `extra` packing (CU_LAUNCH_PARAM_BUFFER_POINTER) is not modelled: kernelParams only. */
  if (extra != NULL) return CUDA_ERROR_NOT_SUPPORTED;
  return launch(fn, gx, gy, gz, bx, by, bz, shared, stream, params, 0);
}

EXPORT int cuLaunchCooperativeKernel(uint64_t fn, uint32_t gx, uint32_t gy, uint32_t gz, uint32_t bx, uint32_t by,
                                     uint32_t bz, uint32_t shared, uint64_t stream, void **params) {
  return launch(fn, gx, gy, gz, bx, by, bz, shared, stream, params, 1);
}
