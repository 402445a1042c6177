/* Emulated-device stand-in for CUDA's <cooperative_groups.h> (see rk_emu_device.h): the grid group of the
 * running launch. is_valid() is true only for a cooperative launch, as on CUDA; sync() is the emulator's
 * grid-wide barrier. */
#ifndef RK_EMU_COOPERATIVE_GROUPS_H
#define RK_EMU_COOPERATIVE_GROUPS_H

#include "rk_emu_device.h"

namespace cooperative_groups {
class grid_group {
 public:
  bool is_valid() const { return rk_emu_context != nullptr && rk_emu_context->cooperative != 0; }
  void sync() const { rk_emu_context->sync_grid(rk_emu_context->launch); }
  unsigned long long size() const {
    return (unsigned long long)gridDim.x * gridDim.y * gridDim.z * blockDim.x * blockDim.y * blockDim.z;
  }
  unsigned long long thread_rank() const {
    const unsigned long long block = blockIdx.x + (unsigned long long)gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    return block * blockDim.x * blockDim.y * blockDim.z + threadIdx.x +
           (unsigned long long)blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  }
};
inline grid_group this_grid() { return grid_group(); }
}  // namespace cooperative_groups

#endif
