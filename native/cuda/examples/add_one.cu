/* Example CUDA handler: adds one to every little-endian u32 of the payload and sends the result back (to the
 * caller for a request, to the output ring otherwise). A word that would overflow (0xFFFFFFFF) is a handler fault:
 * it returns RK_E_VALUE_OUT_OF_RANGE, which the template records in the control block. Bytes past the last whole
 * word are copied unchanged, so a payload of fewer than 4 bytes is echoed. */
#include "rk_handler.cuh"

#define RK_HANDLER_DEFINED 1

__device__ uint32_t rk_handle(const rk_frame_header *header, const uint8_t *payload, rk_handler_output *out,
                              void *user_state) {
  (void)user_state;
  const uint32_t size = header->payload_size;
  if (size > out->capacity) return RK_E_FRAME_TOO_LARGE;
  const uint32_t words = size / 4;
  /* Payloads start 8-byte aligned (frames are 8-aligned, the header is 96 bytes), so word access is aligned. */
  const uint32_t *in = reinterpret_cast<const uint32_t *>(payload);
  uint32_t *result = reinterpret_cast<uint32_t *>(out->payload);
  for (uint32_t i = 0; i < words; i++) {
    if (in[i] == 0xffffffffu) return RK_E_VALUE_OUT_OF_RANGE;
    result[i] = in[i] + 1u;
  }
  for (uint32_t i = words * 4; i < size; i++) out->payload[i] = payload[i];
  out->payload_size = size;
  out->emit = 1;
  return RK_E_NONE;
}
