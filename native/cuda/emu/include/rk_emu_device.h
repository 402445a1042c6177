/* The emulated-device compile target: pre-included (g++ -include rk_emu_device.h) when the persistent kernel
 * template and its handler are built as a host shared object for the CUDA driver emulator
 * (native/cuda/emu/libcuda_emu.c). It gives the CUDA C++ the template uses a host meaning:
 *   - __global__/__device__/__host__ vanish, __forceinline__ is an always-inline hint;
 *   - blockIdx/threadIdx/gridDim/blockDim are thread-locals, set from the context the emulator passes to each
 *     emulated thread (so the module needs no symbol from the emulator);
 *   - __syncthreads() and cg::grid_group::sync() call the emulator's barriers through that context;
 *   - __nanosleep sleeps at least RK_EMU_MIN_NANOSLEEP_NS per thread of the launch (see there why);
 *   - cuda::atomic_ref is std::atomic_ref (C++20) — on a CPU every scope is system scope.
 * The fake <cooperative_groups.h>, <cuda/atomic> and <cuda/std/type_traits> beside this file complete it.
 * Nothing here is used by nvcc: the PTX build never sees this directory. */
#ifndef RK_EMU_DEVICE_H
#define RK_EMU_DEVICE_H

#ifndef RK_EMULATED_DEVICE
#error "rk_emu_device.h is the emulated-device target: compile with -DRK_EMULATED_DEVICE"
#endif

#include <stdint.h>
#include <sched.h>
#include <time.h>

#include <atomic>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "rk_emu_abi.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))

/* CUDA's built-in vector types, as far as the template uses them. */
struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
};

/* This thread's coordinates and barriers: set by the entry (rk_emu_run) before the kernel body runs. One
 * translation unit per module, so `inline thread_local` has exactly one instance per emulated thread. */
inline thread_local uint3 blockIdx;
inline thread_local uint3 threadIdx;
inline thread_local dim3 gridDim;
inline thread_local dim3 blockDim;
inline thread_local const rk_emu_thread_context *rk_emu_context;

/* The shortest emulated __nanosleep, ns, per thread of the launch. On a GPU __nanosleep(200) parks one warp for
 * ~200 ns and costs no one anything; on a CPU thread a 200 ns sleep is a syscall that returns at once, so an idle
 * persistent kernel (poll, sleep, two barriers per round) would spin a whole core. 50 µs (plus the kernel's default
 * 50 µs timer slack) keeps an idle 1-thread resident kernel near 5 % of one core. Every idle round also wakes every
 * other thread of the launch at two barriers, so the sleep grows with the launch's thread count (8 threads:
 * 400 µs; 256 threads: 12.8 ms), up to RK_EMU_MAX_NANOSLEEP_NS, keeping the idle cost roughly flat. The price is latency: the first message
 * after an idle spell waits up to that long. A busy kernel never sleeps (it sleeps only on an empty or full ring). */
#define RK_EMU_MIN_NANOSLEEP_NS 50000u
#define RK_EMU_MAX_NANOSLEEP_NS 16000000u

/* Sleeps this short (the template's poll while input has just stopped) are a yield on the emulated device: a CPU
 * thread gives the core away for about a microsecond, about what the GPU's nap costs, so the first message after a
 * short pause is picked up in microseconds as on a GPU. Longer sleeps (the template's back-off once idle) sleep. */
#define RK_EMU_YIELD_BELOW_NS 1000u

static inline void __nanosleep(unsigned int ns) {
  if (ns < RK_EMU_YIELD_BELOW_NS && rk_emu_context != nullptr) {
    const rk_emu_thread_context *c = rk_emu_context;
    // Only a launch of one thread: with more, every round also wakes the others at two barriers.
    if (c->grid_dim.x * c->block_dim.x * c->grid_dim.y * c->block_dim.y * c->grid_dim.z * c->block_dim.z == 1) {
      sched_yield();
      return;
    }
  }
  unsigned long long threads = 1;
  if (rk_emu_context != nullptr) {
    const rk_emu_thread_context *c = rk_emu_context;
    threads = (unsigned long long)c->grid_dim.x * c->grid_dim.y * c->grid_dim.z * c->block_dim.x * c->block_dim.y *
              c->block_dim.z;
  }
  unsigned long long floor = RK_EMU_MIN_NANOSLEEP_NS * threads;
  if (floor > RK_EMU_MAX_NANOSLEEP_NS) floor = RK_EMU_MAX_NANOSLEEP_NS;
  const unsigned long long wait = ns < floor ? floor : ns;
  struct timespec duration = {(time_t)(wait / 1000000000ull), (long)(wait % 1000000000ull)};
  /* Interrupted (EINTR) or not, returning early is allowed: __nanosleep's duration is only a hint. */
  clock_nanosleep(CLOCK_MONOTONIC, 0, &duration, nullptr);
}

/* A device-side fault (what an illegal address or a failed assert does on a GPU): the grid ends, the launch fails. */
[[noreturn]] static inline void __trap() {
  rk_emu_context->trap(rk_emu_context->launch);
  __builtin_unreachable();
}

static inline void __syncthreads() { rk_emu_context->sync_block(rk_emu_context->launch, rk_emu_context->block_linear); }

/* The entry for one launchable kernel: capture copies the arguments (typed by the kernel's own parameter list, as
 * the CUDA driver reads them by the kernel's signature), run sets this thread's coordinates and calls the body. */
template <auto Kernel, typename Signature = decltype(Kernel)>
struct rk_emu_entry;

template <auto Kernel, typename... Params>
struct rk_emu_entry<Kernel, void (*)(Params...)> {
  using Captured = std::tuple<std::decay_t<Params>...>;

  template <std::size_t... I>
  static Captured *capture_each(void *const *params, std::index_sequence<I...>) {
    return new Captured(*static_cast<const std::decay_t<Params> *>(params[I])...);
  }
  static void *capture(void *const *params) { return capture_each(params, std::index_sequence_for<Params...>{}); }
  static void run(void *captured, const rk_emu_thread_context *context) {
    rk_emu_context = context;
    blockIdx = {context->block_idx.x, context->block_idx.y, context->block_idx.z};
    threadIdx = {context->thread_idx.x, context->thread_idx.y, context->thread_idx.z};
    gridDim = {context->grid_dim.x, context->grid_dim.y, context->grid_dim.z};
    blockDim = {context->block_dim.x, context->block_dim.y, context->block_dim.z};
    std::apply(Kernel, *static_cast<Captured *>(captured));
    rk_emu_context = nullptr;
  }
  static void release(void *captured) { delete static_cast<Captured *>(captured); }
  static constexpr rk_emu_kernel descriptor = {RK_EMU_ABI_VERSION, (uint32_t)sizeof...(Params), &capture, &run,
                                               &release};
};

/* Exports `rk_emu_kernel_<name>` for an extern "C" __global__ kernel (used by rk_emu_entries.inc). */
#define RK_EMU_ENTRY(name) \
  extern "C" __attribute__((visibility("default"))) const rk_emu_kernel rk_emu_kernel_##name = \
      rk_emu_entry<&name>::descriptor;

extern "C" __attribute__((visibility("default"))) const uint32_t rk_emu_abi_version = RK_EMU_ABI_VERSION;

#endif
