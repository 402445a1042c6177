/* ringkernel CUDA handler API: what a device handler sees and returns.
 *
 * A CUDA kernel's handler is one __device__ function, compiled into the same translation unit as the persistent
 * kernel template (native/cuda/persistent_kernel.cu) with `nvcc --pre-include <handler.cu>`. The handler file
 * includes this header, defines rk_handle and defines RK_HANDLER_DEFINED. One thread runs the handler for one
 * frame; handlers of different frames of a batch run concurrently, so a handler must not assume an order between
 * frames of one batch (outputs are still written to the output ring in input order). */
#ifndef RINGKERNEL_HANDLER_CUH
#define RINGKERNEL_HANDLER_CUH

#include "ringkernel_layout.h"

/* What the handler may emit for one input frame. The template fills the defaults before the call. */
typedef struct rk_handler_output {
  uint8_t *payload;      /* Where to write the output payload: capacity bytes, 8-byte aligned, device memory. */
  uint32_t capacity;     /* The ring's maximum payload size. */
  uint32_t payload_size; /* Set by the handler: bytes written to payload. */
  uint32_t type_id;      /* Set by the handler; defaults to the input's type id. */
  uint32_t emit;         /* Set to 1 to write an output frame; defaults to 1 for requests, 0 otherwise. */
} rk_handler_output;

/* The handler. Returns RK_E_NONE (0) when the frame was handled, else an RK_E_* code: the frame counts as failed,
 * the code goes to the control block's last_error_code, and a request gets an error reply (RESPONSE|ERROR). */
__device__ uint32_t rk_handle(const rk_frame_header *header, const uint8_t *payload, rk_handler_output *out,
                              void *user_state);

#endif
