import { InvalidArgumentError } from '../errors/argument-errors.js';

/**
 * Fixed binary layouts shared by TypeScript, C and CUDA.
 *
 * A layout is a table of fields with explicit offsets. The table is the one source of truth: the hot path reads
 * the named offset constants built beside each table, the build generates `native/include/ringkernel_layout.h`
 * from the tables, and the C side `_Static_assert`s every offset and size. {@link defineStructLayout} checks
 * each table when the module loads (natural alignment, no overlap, no gap, size a multiple of the alignment), so a
 * table that C would lay out differently cannot exist.
 */

/** Scalar element kinds, little-endian. */
export type ScalarKind = 'u8' | 'u16' | 'u32' | 'u64' | 'i8' | 'i16' | 'i32' | 'i64' | 'f32' | 'f64';

/** Size in bytes (and natural C alignment) of each scalar kind. */
export const SCALAR_SIZE: Readonly<Record<ScalarKind, number>> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  u64: 8,
  i64: 8,
  f64: 8,
};

/** The C type spelled for each scalar kind. */
export const SCALAR_C_TYPE: Readonly<Record<ScalarKind, string>> = {
  u8: 'uint8_t',
  i8: 'int8_t',
  u16: 'uint16_t',
  i16: 'int16_t',
  u32: 'uint32_t',
  i32: 'int32_t',
  f32: 'float',
  u64: 'uint64_t',
  i64: 'int64_t',
  f64: 'double',
};

/**
 * Who writes a field. Every field of a shared block has exactly one writer; everyone else only reads it. The one
 * exception: a ring doorbell's sleeping flags, which the sleeper raises and its first waker lowers (eventcount.ts).
 * - `host`: the runtime on the main thread (writes before sharing, or requests such as termination).
 * - `lifecycle`: the kernel's lifecycle actor, which runs in the worker that hosts the kernel.
 * - `executor`: the loop that consumes the kernel's messages: the worker thread on the CPU backend, the GPU on CUDA.
 * - `producer` / `consumer`: the two ends of one ring.
 * - `frame`: part of a message, written once by whoever encodes it, before it is published.
 * - `mirror`: the native DMA mirror thread (src/bridge, native/src/mirror.c).
 */
export type FieldWriter = 'host' | 'lifecycle' | 'executor' | 'producer' | 'consumer' | 'frame' | 'mirror';

/** One field of a {@link StructLayout}. */
export interface LayoutField {
  /** The C name (snake_case). */
  readonly name: string;
  /** Element kind. */
  readonly kind: ScalarKind;
  /** Element count: 1 for a scalar, N for a fixed array. */
  readonly count: number;
  /** Byte offset from the start of the struct. */
  readonly offset: number;
  /** The one writer of this field. */
  readonly writer: FieldWriter;
  /** Why the field exists and how it is used; copied into the generated C header. */
  readonly doc: string;
  /** True when the field is shared between threads and accessed with atomics (C: `_Atomic`-compatible access). */
  readonly atomic: boolean;
}

/** A fixed binary layout: a C struct with natural alignment. */
export interface StructLayout {
  /** The C struct name, e.g. `rk_frame_header`. */
  readonly cName: string;
  /** What the struct is for; copied into the generated header. */
  readonly doc: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Alignment in bytes (the largest field alignment). */
  readonly align: number;
  /** Fields in offset order, covering every byte. */
  readonly fields: readonly LayoutField[];
}

/** A field as written in a layout table: `[name, kind, offset, writer, doc, options?]`. */
export type LayoutFieldSpec = readonly [
  name: string,
  kind: ScalarKind,
  offset: number,
  writer: FieldWriter,
  doc: string,
  options?: { readonly count?: number; readonly atomic?: boolean },
];

/**
 * Defines and checks a layout table.
 *
 * @throws {RangeError} when a field is misaligned, overlaps another, leaves a gap or runs past `size`.
 * @example
 * const Pair = defineStructLayout('rk_pair', 'Two counters.', 8, [
 *   ['a', 'u32', 0, 'executor', 'First.'],
 *   ['b', 'u32', 4, 'executor', 'Second.'],
 * ]);
 */
export function defineStructLayout(
  cName: string,
  doc: string,
  size: number,
  specs: readonly LayoutFieldSpec[],
): StructLayout {
  const fields: LayoutField[] = specs.map(([name, kind, offset, writer, fieldDoc, options]) => ({
    name,
    kind,
    count: options?.count ?? 1,
    offset,
    writer,
    doc: fieldDoc,
    atomic: options?.atomic ?? false,
  }));
  let cursor = 0;
  let align = 1;
  const names = new Set<string>();
  for (const field of fields) {
    const elementSize = SCALAR_SIZE[field.kind];
    if (names.has(field.name)) throw new InvalidArgumentError('fields', `${cName}.${field.name} is defined twice`);
    names.add(field.name);
    if (field.offset % elementSize !== 0) {
      throw new InvalidArgumentError(
        'fields',
        `${cName}.${field.name} at offset ${field.offset} is not aligned to ${elementSize}`,
      );
    }
    if (field.offset !== cursor) {
      throw new InvalidArgumentError(
        'fields',
        `${cName}.${field.name} starts at ${field.offset}, expected ${cursor} (gap or overlap)`,
      );
    }
    cursor = field.offset + elementSize * field.count;
    align = Math.max(align, elementSize);
  }
  if (cursor !== size)
    throw new InvalidArgumentError('size', `${cName}: fields end at ${cursor}, but the size is ${size}`);
  if (size % align !== 0)
    throw new InvalidArgumentError('size', `${cName}: size ${size} is not a multiple of its alignment ${align}`);
  return Object.freeze({ cName, doc, size, align, fields: Object.freeze(fields) });
}

/** Looks a field up by its C name. */
export function layoutField(layout: StructLayout, name: string): LayoutField {
  const field = layout.fields.find((f) => f.name === name);
  if (field === undefined)
    throw new InvalidArgumentError('name', `${layout.cName} has no field ${JSON.stringify(name)}`);
  return field;
}
