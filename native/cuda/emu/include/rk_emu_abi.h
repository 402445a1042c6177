/* The contract between the CUDA driver emulator (native/cuda/emu/libcuda_emu.c → native/build/libcuda-emu.so) and
 * a kernel module built for the emulated device (a host shared object compiled from the same .cu file as the PTX,
 * with -DRK_EMULATED_DEVICE and rk_emu_device.h pre-included; see src/backends/cuda/emulated-build.ts).
 *
 * The module never links against the emulator: everything it needs from it (the barriers) comes in the thread
 * context as function pointers, and everything the emulator needs from the module is one exported constant per
 * launchable kernel, `rk_emu_kernel_<name>` (an rk_emu_kernel), found with dlsym by cuModuleGetFunction.
 *
 * Launch, as CUDA does it: cuLaunchKernel passes kernelParams (one pointer per parameter); the emulator calls
 * `capture` right away, which copies each argument by value (so the caller may reuse its parameter buffer as soon
 * as the launch returns), then runs grid × block host threads, each calling `run(captured, context)` with its own
 * context, and calls `release(captured)` after the last thread has returned. C11 and C++ both include this. */
#ifndef RK_EMU_ABI_H
#define RK_EMU_ABI_H

#include <stdint.h>

/* Bumped on any change below; a module with another version is refused (CUDA_ERROR_INVALID_IMAGE). */
#define RK_EMU_ABI_VERSION 2u
/* The module image cuModuleLoadData accepts: this prefix, then the absolute path of the shared object, NUL. */
#define RK_EMU_IMAGE_PREFIX "RKEMU-SO:"
/* The exported symbol of a kernel: this prefix, then the kernel's extern "C" name. */
#define RK_EMU_KERNEL_SYMBOL_PREFIX "rk_emu_kernel_"
/* The exported symbol holding the module's ABI version (a const uint32_t). */
#define RK_EMU_ABI_SYMBOL "rk_emu_abi_version"

typedef struct rk_emu_dim3 {
  uint32_t x, y, z;
} rk_emu_dim3;

/* What one emulated thread is: its coordinates, whether the launch was cooperative (cg::this_grid().is_valid()),
 * and the launch's barriers. Valid for the whole run() call. */
typedef struct rk_emu_thread_context {
  rk_emu_dim3 block_idx;
  rk_emu_dim3 thread_idx;
  rk_emu_dim3 grid_dim;
  rk_emu_dim3 block_dim;
  uint32_t cooperative; /* 1 = cuLaunchCooperativeKernel */
  uint32_t block_linear; /* blockIdx as one number: x + y * gridDim.x + z * gridDim.x * gridDim.y */
  void *launch;          /* the emulator's launch record: pass it back to the barriers */
  /* __syncthreads(): waits for every thread of this block. */
  void (*sync_block)(void *launch, uint32_t block_linear);
  /* grid.sync(): waits for every thread of the grid. */
  void (*sync_grid)(void *launch);
  /* __trap(): ends the whole grid at once and fails the launch (CUDA_ERROR_LAUNCH_FAILED on its stream). Never
   * returns. */
  void (*trap)(void *launch);
} rk_emu_thread_context;

/* One launchable kernel of a module. */
typedef struct rk_emu_kernel {
  uint32_t abi_version; /* RK_EMU_ABI_VERSION */
  uint32_t param_count; /* how many kernelParams pointers capture reads */
  /* Copies the arguments out of kernelParams; returns the launch's own copy (never null on success). */
  void *(*capture)(void *const *params);
  /* Runs the kernel body as one thread. */
  void (*run)(void *captured, const rk_emu_thread_context *context);
  /* Frees what capture returned. */
  void (*release)(void *captured);
} rk_emu_kernel;

#endif
