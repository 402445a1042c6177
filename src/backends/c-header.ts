import { ArgumentTypeError, describeValue } from '../errors/argument-errors.js';
import { ErrorNumber } from '../errors/codes.js';
import { LifecycleTransition, SPAN_RECORD_LAYOUT, SpanRecordKind, SpanRecordStatus } from '../telemetry/span-record.js';
import { TELEMETRY_RING_LAYOUT } from '../telemetry/telemetry-ring.js';
import { CONTROL_BLOCK_LAYOUT, CONTROL_BLOCK_VERSION } from '../wire/control-block.js';
import { FRAME_ALIGN, FRAME_HEADER_LAYOUT, FRAME_MAGIC, FRAME_VERSION, FrameFlags } from '../wire/frame-header.js';
import { KernelStatus } from '../wire/kernel-status.js';
import { LINK_TABLE_LAYOUT } from '../wire/link-table.js';
import type { MessageSchema } from '../wire/message-schema.js';
import { MIRROR_CHANNEL_LAYOUT, MIRROR_STATE_LAYOUT } from '../wire/mirror-layout.js';
import { RING_HEADER_LAYOUT, RING_SIGNAL_LAYOUT } from '../wire/ring-signal.js';
import { ROUTE_TABLE_LAYOUT } from '../wire/route-table.js';
import { SCALAR_C_TYPE, type StructLayout } from '../wire/struct-layout.js';

/** The layouts emitted into `native/include/ringkernel_layout.h`, in order. */
export const NATIVE_LAYOUTS: readonly StructLayout[] = [
  FRAME_HEADER_LAYOUT,
  CONTROL_BLOCK_LAYOUT,
  RING_HEADER_LAYOUT,
  RING_SIGNAL_LAYOUT,
  TELEMETRY_RING_LAYOUT,
  SPAN_RECORD_LAYOUT,
  MIRROR_STATE_LAYOUT,
  MIRROR_CHANNEL_LAYOUT,
  LINK_TABLE_LAYOUT,
  ROUTE_TABLE_LAYOUT,
];

/** Where the generated layout header lives, relative to the project root. */
export const LAYOUT_HEADER_PATH = 'native/include/ringkernel_layout.h';

const upperSnake = (name: string): string =>
  name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .toUpperCase();

const PRELUDE = `#if defined(__CUDACC_RTC__)
/* NVRTC has no C library headers: libcu++ (the toolkit's include path) gives it the fixed-width types in the
   global namespace and size_t, from libcu++ 1.x (CUDA 11) to CCCL 3 (CUDA 13). Its offsetof is no constant
   expression to NVRTC's front end (a pointer difference); the classic form is, so the layout asserts use that. */
#include <cuda/std/cstddef>
#include <cuda/std/cstdint>
#define RK_OFFSETOF(type, member) ((size_t) & (((type *)0)->member))
#else
#include <stddef.h>
#include <stdint.h>
#define RK_OFFSETOF(type, member) offsetof(type, member)
#endif

#ifdef __cplusplus
#define RK_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#define RK_ALIGNOF(type) alignof(type)
/* C++ and CUDA: shared words are plain integers accessed through atomic intrinsics
   (cuda::atomic_ref, or volatile loads with __threadfence on the device). */
#define RK_ATOMIC(type) type
#else
#define RK_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define RK_ALIGNOF(type) _Alignof(type)
/* C11: shared words are _Atomic; use atomic_load_explicit(memory_order_acquire) and
   atomic_store_explicit(memory_order_release). */
#define RK_ATOMIC(type) _Atomic type
#endif
`;

function renderStruct(layout: StructLayout): string {
  const prefix = upperSnake(layout.cName.replace(/^rk_/, 'RK_'));
  const lines: string[] = [];
  lines.push(`/* ${layout.cName}: ${layout.doc} */`);
  lines.push(`typedef struct ${layout.cName} {`);
  for (const f of layout.fields) {
    const type = SCALAR_C_TYPE[f.kind];
    const declared = f.atomic ? `RK_ATOMIC(${type})` : type;
    const array = f.count > 1 ? `[${f.count}]` : '';
    lines.push(`  ${declared} ${f.name}${array}; /* @${f.offset}, writer: ${f.writer}. ${f.doc} */`);
  }
  lines.push(`} ${layout.cName};`);
  lines.push(`#define ${prefix}_SIZE ${layout.size}u`);
  for (const f of layout.fields) lines.push(`#define ${prefix}_${f.name.toUpperCase()}_OFFSET ${f.offset}u`);
  lines.push(`RK_STATIC_ASSERT(sizeof(${layout.cName}) == ${layout.size}, "${layout.cName}: size");`);
  lines.push(`RK_STATIC_ASSERT(RK_ALIGNOF(${layout.cName}) == ${layout.align}, "${layout.cName}: alignment");`);
  for (const f of layout.fields) {
    lines.push(
      `RK_STATIC_ASSERT(RK_OFFSETOF(${layout.cName}, ${f.name}) == ${f.offset}, "${layout.cName}.${f.name}: offset");`,
    );
  }
  return lines.join('\n');
}

/**
 * Renders the C/CUDA header for every binary layout, from the TypeScript tables. `npm run gen:native` writes it
 * to {@link LAYOUT_HEADER_PATH}; a test fails when the file on disk differs (stale).
 */
export function renderLayoutHeader(): string {
  const parts: string[] = [];
  parts.push(
    '/* ringkernel binary layouts. Generated from the TypeScript tables in src/wire by `npm run gen:native`; do not edit. */',
  );
  parts.push('#ifndef RINGKERNEL_LAYOUT_H\n#define RINGKERNEL_LAYOUT_H\n');
  parts.push(PRELUDE);
  parts.push(
    [
      `#define RK_FRAME_MAGIC 0x${FRAME_MAGIC.toString(16)}u`,
      `#define RK_FRAME_VERSION ${FRAME_VERSION}u`,
      `#define RK_FRAME_ALIGN ${FRAME_ALIGN}u`,
      ...Object.entries(FrameFlags).map(([name, bit]) => `#define RK_FRAME_FLAG_${name} ${bit}u`),
      `#define RK_CONTROL_BLOCK_VERSION ${CONTROL_BLOCK_VERSION}u`,
    ].join('\n'),
  );
  parts.push(
    `/* Kernel lifecycle status word. */\n${Object.entries(KernelStatus)
      .map(([name, code]) => `#define RK_STATUS_${upperSnake(name)} ${code}u`)
      .join('\n')}`,
  );
  parts.push(
    `/* Error codes (ControlBlock.last_error_code). */\n#define RK_E_NONE 0u\n${Object.entries(ErrorNumber)
      .map(([name, code]) => `#define RK_E_${upperSnake(name)} ${code}u`)
      .join('\n')}`,
  );
  parts.push(
    `/* Span records (telemetry rings). */\n${[
      ...Object.entries(SpanRecordKind).map(([name, code]) => `#define RK_SPAN_KIND_${name} ${code}u`),
      ...Object.entries(SpanRecordStatus).map(([name, code]) => `#define RK_SPAN_STATUS_${name} ${code}u`),
      ...Object.entries(LifecycleTransition).map(([name, code]) => `#define RK_LIFECYCLE_${name} ${code}u`),
    ].join('\n')}`,
  );
  for (const layout of NATIVE_LAYOUTS) parts.push(renderStruct(layout));
  parts.push('#endif /* RINGKERNEL_LAYOUT_H */');
  return `${parts.join('\n\n')}\n`;
}

/**
 * Renders a C/CUDA header with the structs of the given message schemas (natural alignment, static asserts on
 * size and every offset), for native and CUDA kernel handlers.
 *
 * @example
 * writeFileSync('native/include/messages.h', renderMessagesHeader('MY_MESSAGES_H', [Reading, Alert]));
 */
export function renderMessagesHeader(guard: string, schemas: readonly MessageSchema[]): string {
  if (!/^[A-Z_][A-Z0-9_]*$/.test(guard))
    throw new ArgumentTypeError('guard', `guard must be an upper-case C identifier, got ${describeValue(guard)}`);
  const body = schemas.map((schema) =>
    schema.toCStruct().replaceAll('_Static_assert', 'RK_STATIC_ASSERT').replaceAll('(offsetof(', '(RK_OFFSETOF('),
  );
  return `/* Message structs. Generated by ringkernel; do not edit. */\n#ifndef ${guard}\n#define ${guard}\n\n#include "ringkernel_layout.h"\n\n${body.join('\n')}\n#endif /* ${guard} */\n`;
}
