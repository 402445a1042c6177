/** CUDA kernels the benchmark launches (a module of its own, so the runtime's threads can import it). */
import { BytesMessage, defineKernel } from '../src/internal.js';

/** Takes raw payloads and emits nothing: the sustained-rate cases. */
export const BenchCudaSink = defineKernel({
  id: 'bench.cuda.sink',
  input: BytesMessage,
  output: BytesMessage,
  cpu: () => undefined,
  cuda: {
    source: `#include "rk_handler.cuh"
#define RK_HANDLER_DEFINED 1
__device__ uint32_t rk_handle(const rk_frame_header *header, const uint8_t *payload, rk_handler_output *out,
                              void *user_state) {
  (void)header;
  (void)payload;
  (void)user_state;
  out->emit = 0;
  return RK_E_NONE;
}
`,
  },
});

/** Adds one to every u32 and answers (native/cuda/examples/add_one.cu): the round-trip cases. */
export const BenchCudaAddOne = defineKernel({
  id: 'bench.cuda.addOne',
  input: BytesMessage,
  output: BytesMessage,
  cpu: (bytes) => {
    const words = new Uint32Array(bytes.slice().buffer);
    for (let i = 0; i < words.length; i++) words[i] = (words[i] as number) + 1;
    return new Uint8Array(words.buffer);
  },
  cuda: { file: new URL('../../native/cuda/examples/add_one.cu', import.meta.url) },
});

/** A sink carrying 1 MiB of device state (`cuda.stateBytes`): what a CUDA kernel's migration copies. */
export const BenchCudaHeavyState = defineKernel({
  id: 'bench.cuda.heavyState',
  input: BytesMessage,
  output: BytesMessage,
  cuda: {
    stateBytes: 1 << 20,
    blockSize: 1,
    source: `#include "rk_handler.cuh"
#define RK_HANDLER_DEFINED 1
__device__ uint32_t rk_handle(const rk_frame_header *header, const uint8_t *payload, rk_handler_output *out,
                              void *user_state) {
  (void)payload;
  uint64_t *seen = reinterpret_cast<uint64_t *>(user_state);
  seen[header->message_id % ((1u << 20) / 8u)] += 1;
  out->emit = 0;
  return RK_E_NONE;
}
`,
  },
});
