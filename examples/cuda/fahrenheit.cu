/* The device handler of examples/cuda-kernels.ts: Celsius readings to Fahrenheit, with an alarm over 100 °F.
 * rk_kernel_messages.h is generated at compile time from the kernel's defineMessage schemas. */
#include "rk_handler.cuh"
#include "rk_kernel_messages.h"

#define RK_HANDLER_DEFINED 1

__device__ uint32_t rk_handle(const rk_frame_header *header, const uint8_t *payload, rk_handler_output *out,
                              void *user_state) {
  (void)user_state;
  if (header->payload_size != sizeof(rk_msg_example_Celsius)) return RK_E_FRAME_PAYLOAD_SIZE_MISMATCH;
  const rk_msg_example_Celsius *in = reinterpret_cast<const rk_msg_example_Celsius *>(payload);
  if (in->celsius < -273.15) return RK_E_VALUE_OUT_OF_RANGE; /* below absolute zero: a handler fault */
  rk_msg_example_Fahrenheit *result = reinterpret_cast<rk_msg_example_Fahrenheit *>(out->payload);
  result->sensor = in->sensor;
  result->fahrenheit = in->celsius * 9.0 / 5.0 + 32.0;
  result->alarm = result->fahrenheit > 100.0 ? 1u : 0u;
  out->payload_size = sizeof(rk_msg_example_Fahrenheit);
  out->type_id = RK_MSG_EXAMPLE_FAHRENHEIT_TYPE_ID;
  out->emit = 1;
  return RK_E_NONE;
}
