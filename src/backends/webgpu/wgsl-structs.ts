import { WgslSchemaError } from '../../errors/webgpu-errors.js';
import type { FieldType, MessageSchema, SchemaField } from '../../wire/message-schema.js';
import type { ScalarKind } from '../../wire/struct-layout.js';

/**
 * WGSL structs for message schemas, generated from the same `defineMessage` tables the host encodes with (as the
 * C header is). WGSL's host-shareable layout (storage address space) has only 32-bit scalars and their vectors, so:
 * u32/i32/f32 map to themselves, u64/i64 to `vec2<u32>` (low word first: 8-byte size and alignment, as in C), and
 * byte data (`field.bytes`, arrays of u8/i8/u16/i16, strings) to `array<u32, n>` holding the bytes packed
 * little-endian, when it fills whole 32-bit words of its own. Anything else (f64, 8- and 16-bit scalars, bytes that
 * share a word with another field, WGSL reserved names) is refused with a {@link WgslSchemaError} naming the field.
 * Every offset of the WGSL struct is then computed by WGSL's own rules and checked against the schema's.
 */

/** One member of a generated WGSL struct. */
export interface WgslMember {
  readonly name: string;
  /** The WGSL type, e.g. `u32`, `vec2<u32>`, `array<f32, 4>`. */
  readonly type: string;
  readonly offset: number;
  readonly size: number;
  readonly align: number;
  /** How a 32-bit word becomes one element: `u32`, `i32`, `f32`, or `vec2` (two words) for 64-bit integers. */
  readonly element: 'u32' | 'i32' | 'f32' | 'vec2';
  /** Elements (1 for a scalar), each one word (two for `vec2`). */
  readonly count: number;
  readonly isArray: boolean;
  /** A comment for the generated source. */
  readonly note: string;
}

/** A message schema as a WGSL struct: its members, size and alignment by WGSL's rules (equal to the schema's). */
export interface WgslStruct {
  /** The WGSL identifier of the struct: the schema's C name, `rk_msg_<name>`. */
  readonly name: string;
  readonly members: readonly WgslMember[];
  readonly size: number;
  readonly align: number;
  /** The message type id, emitted as `<NAME>_TYPE_ID`. */
  readonly typeId: number;
}

/** WGSL keywords and reserved words (WGSL §15.2, 15.3): none may name a member. */
const WGSL_RESERVED = new Set(
  (
    'alias break case const const_assert continue continuing default diagnostic discard else enable false fn for if let ' +
    'loop override requires return struct switch true var while NULL Self abstract active alignas alignof as asm ' +
    'asm_fragment async attribute auto await become cast catch class co_await co_return co_yield coherent ' +
    'column_major common compile compile_fragment concept const_cast consteval constexpr constinit crate debugger ' +
    'decltype delete demote demote_to_helper do dynamic_cast enum explicit export extends extern external ' +
    'fallthrough filter final finally friend from fxgroup get goto groupshared highp impl implements import inline ' +
    'instanceof interface layout lowp macro macro_rules match mediump meta mod module move mut mutable namespace new ' +
    'nil noexcept noinline nointerpolation non_coherent noncoherent noperspective null nullptr of operator package ' +
    'packoffset partition pass patch pixelfragment precise precision premerge priv protected pub public readonly ref ' +
    'regardless register reinterpret_cast require resource restrict self set shared sizeof smooth snorm static ' +
    'static_assert static_cast std subroutine super target template this thread_local throw trait try type typedef ' +
    'typeid typename typeof union unless unorm unsafe unsized use using varying virtual volatile wgsl where with ' +
    'writeonly yield'
  ).split(' '),
);

const WORD_SCALARS: Partial<Record<ScalarKind, 'u32' | 'i32' | 'f32'>> = { u32: 'u32', i32: 'i32', f32: 'f32' };
const BYTE_ELEMENTS = new Set<ScalarKind>(['u8', 'i8', 'u16', 'i16']);

interface Planned {
  readonly members: Omit<WgslMember, 'offset'>[];
}

function refuse(schema: MessageSchema, name: string, reason: string): never {
  throw new WgslSchemaError(schema.name, name, reason);
}

function describeType(type: FieldType): string {
  if (typeof type === 'string') return type;
  if (type.kind === 'array') return `field.array('${type.element}', ${type.length})`;
  return `field.${type.kind}(${type.kind === 'bytes' ? type.length : type.capacity})`;
}

function packedWords(schema: MessageSchema, f: SchemaField, bytes: number, what: string): Omit<WgslMember, 'offset'> {
  if (f.offset % 4 !== 0) {
    refuse(
      schema,
      f.name,
      `${what} starts at byte ${f.offset}, inside a 32-bit word another field uses; WGSL storage structs have no 8- or 16-bit types: move it to a 4-byte boundary`,
    );
  }
  if (bytes % 4 !== 0) {
    refuse(
      schema,
      f.name,
      `${what} is ${bytes} bytes, not a whole number of 32-bit words (WGSL storage structs have no 8- or 16-bit types): make it a multiple of 4 bytes`,
    );
  }
  const words = bytes / 4;
  return {
    name: f.name,
    type: `array<u32, ${words}>`,
    size: bytes,
    align: 4,
    element: 'u32',
    count: words,
    isArray: true,
    note: `${describeType(f.type)}: ${bytes} bytes packed little-endian into ${words} words`,
  };
}

function planField(schema: MessageSchema, f: SchemaField): Planned {
  if (
    !/^[A-Za-z_][A-Za-z0-9_]*$/.test(f.name) ||
    f.name.startsWith('__') ||
    f.name === '_' ||
    WGSL_RESERVED.has(f.name)
  ) {
    refuse(schema, f.name, `'${f.name}' is a WGSL keyword or reserved word: rename the field`);
  }
  const t = f.type;
  if (typeof t === 'string') {
    if (t === 'f64')
      refuse(schema, f.name, 'f64 has no WGSL type (WGSL has no 64-bit floats): use f32, or u64 to carry the bits');
    if (t === 'bool' || BYTE_ELEMENTS.has(t)) {
      refuse(
        schema,
        f.name,
        `${t} is ${f.size} byte${f.size === 1 ? '' : 's'}; WGSL storage structs have no 8- or 16-bit types (nor a host-shareable bool): use u32 or i32`,
      );
    }
    if (t === 'u64' || t === 'i64') {
      const note = `${t}: low word first${t === 'i64' ? ', two\u2019s complement' : ''}`;
      return {
        members: [
          { name: f.name, type: 'vec2<u32>', size: 8, align: 8, element: 'vec2', count: 1, isArray: false, note },
        ],
      };
    }
    const scalar = WORD_SCALARS[t] as 'u32' | 'i32' | 'f32';
    return {
      members: [{ name: f.name, type: scalar, size: 4, align: 4, element: scalar, count: 1, isArray: false, note: t }],
    };
  }
  switch (t.kind) {
    case 'array': {
      if (t.element === 'f64')
        refuse(schema, f.name, `${describeType(t)} has no WGSL type (WGSL has no 64-bit floats): use f32`);
      if (t.element === 'u64' || t.element === 'i64') {
        const note = `${describeType(t)}: each element low word first`;
        return {
          members: [
            {
              name: f.name,
              type: `array<vec2<u32>, ${t.length}>`,
              size: 8 * t.length,
              align: 8,
              element: 'vec2',
              count: t.length,
              isArray: true,
              note,
            },
          ],
        };
      }
      if (BYTE_ELEMENTS.has(t.element)) return { members: [packedWords(schema, f, f.size, describeType(t))] };
      const scalar = WORD_SCALARS[t.element] as 'u32' | 'i32' | 'f32';
      return {
        members: [
          {
            name: f.name,
            type: `array<${scalar}, ${t.length}>`,
            size: 4 * t.length,
            align: 4,
            element: scalar,
            count: t.length,
            isArray: true,
            note: describeType(t),
          },
        ],
      };
    }
    case 'bytes':
      return { members: [packedWords(schema, f, t.length, describeType(t))] };
    case 'string': {
      const length = {
        name: `${f.name}_len`,
        type: 'u32',
        size: 4,
        align: 4,
        element: 'u32' as const,
        count: 1,
        isArray: false,
        note: `UTF-8 bytes used in ${f.name}, <= ${t.capacity}`,
      };
      const text = packedWords(schema, { ...f, offset: f.offset + 4 }, t.capacity, describeType(t));
      return { members: [length, text] };
    }
  }
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/**
 * Lays a message schema out as a WGSL host-shareable struct and checks every member's offset and the struct's size
 * against the schema's (so the bytes the host encodes are the struct the shader reads).
 *
 * @throws {WgslSchemaError} (`RK_WGSL_SCHEMA_UNSUPPORTED`) naming the first field WGSL cannot express, and why.
 */
export function wgslStructOf(schema: MessageSchema): WgslStruct {
  const members: WgslMember[] = [];
  let cursor = 0;
  let align = 4;
  const names = new Set(schema.fields.map((f) => f.name));
  for (const f of schema.fields) {
    if (typeof f.type === 'object' && f.type.kind === 'string' && names.has(`${f.name}_len`)) {
      refuse(schema, f.name, `a string's length member '${f.name}_len' collides with a field of that name: rename one`);
    }
    for (const planned of planField(schema, f).members) {
      // WGSL: a member's offset is the previous end rounded up to its alignment (no @align/@offset needed).
      const offset = roundUp(cursor, planned.align);
      // A string is two members: its length word at the field's offset, then its bytes.
      const isStringText = typeof f.type === 'object' && f.type.kind === 'string' && planned.name === f.name;
      const expected = f.offset + (isStringText ? 4 : 0);
      if (offset !== expected) {
        refuse(schema, f.name, `WGSL would place it at byte ${offset}, the message has it at byte ${expected}`);
      }
      members.push({ ...planned, offset });
      cursor = offset + planned.size;
      align = Math.max(align, planned.align);
    }
  }
  const size = roundUp(cursor, align);
  if (size !== schema.size) {
    const last = schema.fields[schema.fields.length - 1] as SchemaField;
    refuse(
      schema,
      last.name,
      `the WGSL struct is ${size} bytes (alignment ${align}), the message ${schema.size}: pad the message to a multiple of ${align} bytes`,
    );
  }
  return { name: schema.cName, members, size, align, typeId: schema.typeId };
}

function readElement(element: WgslMember['element'], word: string, next: string): string {
  switch (element) {
    case 'u32':
      return word;
    case 'i32':
    case 'f32':
      return `bitcast<${element}>(${word})`;
    case 'vec2':
      return `vec2<u32>(${word}, ${next})`;
  }
}

function writeElement(element: WgslMember['element'], value: string): string[] {
  switch (element) {
    case 'u32':
      return [value];
    case 'i32':
    case 'f32':
      return [`bitcast<u32>(${value})`];
    case 'vec2':
      return [`${value}.x`, `${value}.y`];
  }
}

/**
 * Renders the WGSL struct of a schema with its constants (`<NAME>_TYPE_ID`, `<NAME>_SIZE`) and, for a kernel's
 * handler, `rk_read_<name>(i)` (message `i` of the batch as this struct) and `rk_emit_<name>(i, value)` (writes it as
 * message `i`'s output and emits it with the schema's type id). The word accessors `rk_in_word` and `rk_out_word`
 * come from the handler prelude.
 *
 * @throws {WgslSchemaError} as {@link wgslStructOf}.
 */
export function renderWgslStruct(schema: MessageSchema, options: { accessors?: boolean } = {}): string {
  const struct = wgslStructOf(schema);
  const upper = struct.name.toUpperCase();
  const lines = [
    `// ${schema.name}: type id ${struct.typeId} (0x${struct.typeId.toString(16)}), ${struct.size} bytes. Generated; do not edit.`,
  ];
  lines.push(`struct ${struct.name} {`);
  for (const m of struct.members) lines.push(`  ${m.name}: ${m.type}, // @${m.offset}: ${m.note}`);
  lines.push('}');
  lines.push(`const ${upper}_TYPE_ID: u32 = ${struct.typeId}u;`);
  lines.push(`const ${upper}_SIZE: u32 = ${struct.size}u;`);
  if (options.accessors !== false) {
    lines.push(`fn rk_read_${struct.name}(i: u32) -> ${struct.name} {`);
    lines.push(`  var v: ${struct.name};`);
    for (const m of struct.members) {
      const words = m.element === 'vec2' ? 2 : 1;
      const base = m.offset / 4;
      if (m.isArray) {
        lines.push(`  for (var k = 0u; k < ${m.count}u; k++) {`);
        lines.push(
          `    v.${m.name}[k] = ${readElement(m.element, `rk_in_word(i, ${base}u + k * ${words}u)`, `rk_in_word(i, ${base}u + k * ${words}u + 1u)`)};`,
        );
        lines.push('  }');
      } else {
        lines.push(
          `  v.${m.name} = ${readElement(m.element, `rk_in_word(i, ${base}u)`, `rk_in_word(i, ${base + 1}u)`)};`,
        );
      }
    }
    lines.push('  return v;');
    lines.push('}');
    lines.push(`fn rk_emit_${struct.name}(i: u32, v: ${struct.name}) {`);
    for (const m of struct.members) {
      const words = m.element === 'vec2' ? 2 : 1;
      const base = m.offset / 4;
      if (m.isArray) {
        lines.push(`  for (var k = 0u; k < ${m.count}u; k++) {`);
        writeElement(m.element, `v.${m.name}[k]`).forEach((value, w) => {
          lines.push(`    rk_out_word(i, ${base}u + k * ${words}u + ${w}u, ${value});`);
        });
        lines.push('  }');
      } else {
        writeElement(m.element, `v.${m.name}`).forEach((value, w) => {
          lines.push(`  rk_out_word(i, ${base + w}u, ${value});`);
        });
      }
    }
    lines.push(`  rk_emit(i, ${upper}_SIZE, ${upper}_TYPE_ID);`);
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}
