/*
 * Compiled by `npm test` with -std=c11 -Wall -Wextra -Werror -pedantic. Including the generated header runs its
 * static asserts (every offset, size and alignment, as the TypeScript tables say); the asserts below pin the
 * facts other code relies on by hand, so a change to them is a deliberate change to the contract.
 */
#include <stdatomic.h>
#include <stdio.h>

#include "ringkernel_layout.h"

_Static_assert(RK_FRAME_HEADER_SIZE == 96, "frame header is 96 bytes: payloads start 8-aligned");
_Static_assert(RK_FRAME_HEADER_SIZE % RK_FRAME_ALIGN == 0, "payload alignment");
_Static_assert(RK_CONTROL_BLOCK_SIZE == 128, "control block is 128 bytes");
_Static_assert(RK_RING_HEADER_SIZE == 8, "ringbuf.js: write index, read index, then data");
_Static_assert(RK_RING_HEADER_WRITE_INDEX_OFFSET == 0 && RK_RING_HEADER_READ_INDEX_OFFSET == 4, "ringbuf.js indices");
_Static_assert(RK_RING_SIGNAL_SPACE_SEQ_OFFSET - RK_RING_SIGNAL_DATA_SEQ_OFFSET >= 64, "no false sharing");
_Static_assert(sizeof(((rk_frame_header *)0)->trace_id) == 16, "W3C trace id");
_Static_assert(sizeof(((rk_frame_header *)0)->span_id) == 8, "W3C span id");

int main(void) {
  /* The atomic words must be lock-free for a native thread and V8 to share them. */
  rk_control_block block = {0};
  if (!atomic_is_lock_free(&block.messages_processed) || !atomic_is_lock_free(&block.status)) {
    puts("control block atomics are not lock-free");
    return 1;
  }
  atomic_store_explicit(&block.status, RK_STATUS_ACTIVE, memory_order_release);
  printf("layout ok: frame header %u B, control block %u B\n", RK_FRAME_HEADER_SIZE, RK_CONTROL_BLOCK_SIZE);
  return atomic_load_explicit(&block.status, memory_order_acquire) == RK_STATUS_ACTIVE ? 0 : 1;
}
