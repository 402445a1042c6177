import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../errors/argument-errors.js';
import {
  MessageSchemaError,
  MessageTypeMismatchError,
  StringTooLongError,
  ValueOutOfRangeError,
} from '../errors/value-errors.js';
import { SCALAR_C_TYPE, SCALAR_SIZE, type ScalarKind } from './struct-layout.js';

/**
 * Typed, fixed-layout messages. A schema lays its fields out like a C compiler would (declaration order,
 * natural alignment), encodes a value straight into a ring slot, reads a frame back as a zero-copy view and
 * emits the matching C struct for native and CUDA handlers.
 */

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  // Views hand out typed arrays over frame memory, which use the platform's byte order; the wire is little-endian.
  throw new Error('ringkernel requires a little-endian platform');
}

/** A fixed-length array of one numeric kind, e.g. `field.array('f32', 4)`. */
export interface ArrayFieldType<E extends ScalarKind = ScalarKind> {
  readonly kind: 'array';
  readonly element: E;
  readonly length: number;
}
/** Exactly `length` raw bytes. */
export interface BytesFieldType {
  readonly kind: 'bytes';
  readonly length: number;
}
/** A UTF-8 string of at most `capacity` encoded bytes; stored as a u32 byte length then the bytes. */
export interface StringFieldType {
  readonly kind: 'string';
  readonly capacity: number;
}
/** Any field type a message can have. */
export type FieldType = ScalarKind | 'bool' | ArrayFieldType | BytesFieldType | StringFieldType;
/** A message's fields, by name, in declaration order. */
export type FieldsSpec = Readonly<Record<string, FieldType>>;

const MAX_FIELD_BYTES = 1 << 24;

function checkLength(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_FIELD_BYTES) {
    throw new InvalidArgumentError(what, `${what} must be an integer in [1, ${MAX_FIELD_BYTES}], got ${n}`);
  }
  return n;
}

/**
 * Builders for the composite field types.
 *
 * @example
 * defineMessage('Sample', { values: field.array('f32', 8), digest: field.bytes(32), label: field.string(24) });
 */
export const field = {
  /** A fixed-length numeric array; views expose it as a typed array over the frame (zero copy). */
  array<E extends ScalarKind>(element: E, length: number): ArrayFieldType<E> {
    if (!(element in SCALAR_SIZE))
      throw new ArgumentTypeError(
        'field.array element',
        `field.array element must be a scalar kind, got ${describeValue(element)}`,
      );
    return { kind: 'array', element, length: checkLength('field.array length', length) };
  },
  /** Exactly `length` raw bytes. */
  bytes(length: number): BytesFieldType {
    return { kind: 'bytes', length: checkLength('field.bytes length', length) };
  },
  /** A UTF-8 string of at most `capacity` bytes; longer strings are rejected, never truncated. */
  string(capacity: number): StringFieldType {
    return { kind: 'string', capacity: checkLength('field.string capacity', capacity) };
  },
} as const;

type Big = 'u64' | 'i64';
interface TypedArrayOf {
  u8: Uint8Array;
  i8: Int8Array;
  u16: Uint16Array;
  i16: Int16Array;
  u32: Uint32Array;
  i32: Int32Array;
  u64: BigUint64Array;
  i64: BigInt64Array;
  f32: Float32Array;
  f64: Float64Array;
}

/** The type a field has when encoding (what `encode` accepts). */
export type FieldInput<T extends FieldType> = T extends Big
  ? bigint | number
  : T extends ScalarKind
    ? number
    : T extends 'bool'
      ? boolean
      : T extends ArrayFieldType<infer E>
        ? E extends Big
          ? ArrayLike<bigint>
          : ArrayLike<number>
        : T extends BytesFieldType
          ? Uint8Array
          : string;
/** The type a field has in a view: typed arrays over the frame for arrays and bytes. */
export type FieldView<T extends FieldType> = T extends Big
  ? bigint
  : T extends ScalarKind
    ? number
    : T extends 'bool'
      ? boolean
      : T extends ArrayFieldType<infer E>
        ? TypedArrayOf[E]
        : T extends BytesFieldType
          ? Uint8Array
          : string;

/** A value to encode: one entry per field. */
export type MessageInput<F extends FieldsSpec> = { readonly [K in keyof F]: FieldInput<F[K]> };
/** A decoded copy: arrays and bytes are copies, safe to keep after the frame is released. */
export type MessageObject<F extends FieldsSpec> = { [K in keyof F]: FieldView<F[K]> };
/** A zero-copy view over a frame's payload. Valid only until the frame is released. */
export type MessageView<F extends FieldsSpec> = { readonly [K in keyof F]: FieldView<F[K]> } & {
  /** Copies the message out of the frame. */
  toObject(): MessageObject<F>;
};

/** One field of a schema, laid out. */
export interface SchemaField {
  readonly name: string;
  readonly type: FieldType;
  /** Byte offset within the payload. */
  readonly offset: number;
  /** Bytes occupied. */
  readonly size: number;
  /** Natural alignment. */
  readonly align: number;
}

/**
 * What a frame producer needs to put a message into a ring and a consumer to read it back. Implemented by
 * {@link defineMessage} schemas and by {@link BytesMessage}.
 */
export interface MessageCodec<In, View> {
  /** The message name. */
  readonly name: string;
  /** The stable type id written into every frame's header. */
  readonly typeId: number;
  /** Payload bytes the value needs. */
  encodedSize(value: In): number;
  /**
   * Encodes `value` at `offset`. `view` and `bytes` cover the same memory.
   * @throws {ValueOutOfRangeError | StringTooLongError} on a value that does not fit; nothing is published then.
   */
  encodeInto(view: DataView, bytes: Uint8Array, offset: number, value: In): void;
  /** A zero-copy view over `size` payload bytes at `offset`. */
  view(view: DataView, bytes: Uint8Array, offset: number, size: number): View;
  /**
   * Checks that a payload of `size` bytes can be this message, without building a view: what a receiver that
   * passes the bytes on as they are needs (a cluster node writing a frame from the network into a ring). Optional:
   * a codec without it is checked by building a view.
   * @throws {MessageTypeMismatchError} when it cannot.
   */
  checkSize?(size: number): void;
}

/** A message type defined with {@link defineMessage}. */
export interface MessageSchema<F extends FieldsSpec = FieldsSpec>
  extends MessageCodec<MessageInput<F>, MessageView<F>> {
  /** Fixed payload size in bytes (C `sizeof`). */
  readonly size: number;
  /** Alignment in bytes (C `_Alignof`). */
  readonly align: number;
  /** The fields, laid out, in declaration order. */
  readonly fields: readonly SchemaField[];
  /** The C identifier of the struct: `rk_msg_<name>`. */
  readonly cName: string;
  /** Encodes into a new buffer of exactly {@link MessageSchema.size} bytes. */
  encode(value: MessageInput<F>): Uint8Array;
  /** Decodes a copy from bytes (at `offset`). */
  decode(bytes: Uint8Array, offset?: number): MessageObject<F>;
  /** The C struct definition, with `_Static_assert`s on its size and every offset. */
  toCStruct(): string;
}

/** Options of {@link defineMessage}. */
export interface DefineMessageOptions {
  /** An explicit type id (≥ 256; ids below are reserved). Default: FNV-1a of the name. */
  readonly typeId?: number;
}

/** Type ids below this are reserved for ringkernel's own messages. */
export const RESERVED_TYPE_IDS = 256;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MESSAGE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const RESERVED_FIELD_NAMES = new Set(['toObject', 'constructor', '__proto__', 'prototype']);
const definedTypeIds = new Map<number, { name: string; fingerprint: string }>();

/** FNV-1a, 32 bit, over the UTF-8 bytes of `text`. */
export function fnv1a32(text: string): number {
  let hash = 0x811c_9dc5;
  for (const byte of new TextEncoder().encode(text)) hash = Math.imul(hash ^ byte, 0x0100_0193) >>> 0;
  return hash >>> 0;
}

/** What a field may be, for messages that name a wrong one. */
const FIELD_TYPES_HELP = `${Object.keys(SCALAR_SIZE).join(', ')}, bool, field.array(kind, length), field.bytes(length) or field.string(capacity)`;

function layoutOf(type: FieldType, message: string, fieldName: string): { size: number; align: number } {
  const unknown = (): MessageSchemaError =>
    new MessageSchemaError(
      message,
      `field '${fieldName}' has unknown type ${typeof type === 'string' ? JSON.stringify(type) : String(JSON.stringify(type))}; a field is one of ${FIELD_TYPES_HELP}`,
    );
  if (typeof type === 'string') {
    const size = type === 'bool' ? 1 : Object.hasOwn(SCALAR_SIZE, type) ? SCALAR_SIZE[type] : undefined;
    if (size === undefined) throw unknown();
    return { size, align: size };
  }
  if (typeof type !== 'object' || type === null) throw unknown();
  switch (type.kind) {
    case 'array': {
      const elementSize = SCALAR_SIZE[type.element];
      return { size: elementSize * type.length, align: elementSize };
    }
    case 'bytes':
      return { size: type.length, align: 1 };
    case 'string':
      return { size: 4 + type.capacity, align: 4 };
    default:
      throw unknown();
  }
}

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

/**
 * Defines a fixed-layout message type.
 *
 * @throws {TypeError} on a field name that is not an identifier or a type that is not a field type, or a type
 * id already used by a different message.
 * @example
 * const Reading = defineMessage('sensors.Reading', {
 *   sensor: 'u32',
 *   value: 'f64',
 *   valid: 'bool',
 *   window: field.array('f32', 4),
 *   unit: field.string(8),
 * });
 * producer.tryWrite(Reading, { sensor: 7, value: 21.5, valid: true, window: [1, 2, 3, 4], unit: '°C' });
 * consumer.drain((frame) => total += frame.decode(Reading).value);
 */
export function defineMessage<const F extends FieldsSpec>(
  name: string,
  fields: F,
  options: DefineMessageOptions = {},
): MessageSchema<F> {
  if (typeof name !== 'string' || !MESSAGE_NAME.test(name)) {
    throw new MessageSchemaError(String(name), 'a message name is dot-separated identifiers, e.g. sensors.Reading');
  }
  if (typeof fields !== 'object' || fields === null) {
    throw new MessageSchemaError(name, "fields must be an object of field types, e.g. { sensor: 'u16', value: 'f64' }");
  }
  const laidOut: SchemaField[] = [];
  let cursor = 0;
  let maxAlign = 1;
  for (const [fieldName, type] of Object.entries(fields)) {
    if (!IDENTIFIER.test(fieldName) || RESERVED_FIELD_NAMES.has(fieldName)) {
      throw new MessageSchemaError(
        name,
        `field name ${JSON.stringify(fieldName)} must be a C identifier, not reserved`,
      );
    }
    const { size, align: fieldAlign } = layoutOf(type, name, fieldName);
    cursor = align(cursor, fieldAlign);
    laidOut.push({ name: fieldName, type, offset: cursor, size, align: fieldAlign });
    cursor += size;
    maxAlign = Math.max(maxAlign, fieldAlign);
  }
  if (laidOut.length === 0) throw new MessageSchemaError(name, 'a message needs at least one field');
  const size = align(cursor, maxAlign);
  const fingerprint = laidOut.map((f) => `${f.name}:${JSON.stringify(f.type)}@${f.offset}`).join(',');
  const typeId = options.typeId ?? fnv1a32(name);
  if (!Number.isInteger(typeId) || typeId < RESERVED_TYPE_IDS || typeId > 0xffff_ffff) {
    throw new MessageSchemaError(
      name,
      `type id ${typeId} must be an integer in [${RESERVED_TYPE_IDS}, 2^32)` +
        (options.typeId === undefined ? '; pass an explicit typeId' : ''),
    );
  }
  const existing = definedTypeIds.get(typeId);
  if (existing !== undefined && existing.name === name && existing.fingerprint !== fingerprint) {
    // The same name twice with other fields: the name is what clashes, so no typeId advice.
    throw new MessageSchemaError(
      name,
      'is already defined with other fields; a message name has one layout: define it once and import it, or give the other message a name of its own',
    );
  }
  if (existing !== undefined && existing.name !== name) {
    throw new MessageSchemaError(
      name,
      `its type id ${typeId} is already used by message ${JSON.stringify(existing.name)}; pass an explicit typeId`,
    );
  }
  definedTypeIds.set(typeId, { name, fingerprint });

  const { encodeInto, View } = compile(name, laidOut, size);
  const cName = `rk_msg_${name.replaceAll('.', '_')}`;
  const schema: MessageSchema<F> = {
    name,
    typeId,
    size,
    align: maxAlign,
    fields: Object.freeze(laidOut),
    cName,
    encodedSize: () => size,
    encodeInto: encodeInto as MessageSchema<F>['encodeInto'],
    view(view, bytes, offset, payloadSize) {
      if (payloadSize !== size)
        throw new MessageTypeMismatchError(name, `payload is ${payloadSize} bytes, not ${size}`);
      return new View(view, bytes, offset) as MessageView<F>;
    },
    checkSize(payloadSize) {
      if (payloadSize !== size)
        throw new MessageTypeMismatchError(name, `payload is ${payloadSize} bytes, not ${size}`);
    },
    encode(value) {
      const bytes = new Uint8Array(size);
      encodeInto(new DataView(bytes.buffer), bytes, 0, value);
      return bytes;
    },
    decode(bytes, offset = 0) {
      if (offset < 0 || offset + size > bytes.length) {
        throw new InvalidArgumentError(
          'bytes',
          `${name}.decode needs ${size} bytes at offset ${offset}, have ${bytes.length}`,
        );
      }
      let source = bytes;
      let at = offset;
      if ((bytes.byteOffset + offset) % maxAlign !== 0) {
        // Array fields are read through typed arrays, which need natural alignment: copy a misaligned input.
        source = bytes.slice(offset, offset + size);
        at = 0;
      }
      const view = new DataView(source.buffer, source.byteOffset, source.byteLength);
      return (new View(view, source, at) as MessageView<F>).toObject();
    },
    toCStruct: () => emitCStruct(cName, name, typeId, laidOut, size),
  };
  return Object.freeze(schema);
}

// ---------------------------------------------------------------------------------------------------------------
// Code generation. Encoders and views are compiled once per schema into straight-line functions: one property load
// and one DataView store per field, no per-field closures or keyed loads on the hot path. Field names are checked
// identifiers and offsets are integers, so the generated source contains nothing taken verbatim from the caller
// except identifiers.

const DV_SUFFIX: Readonly<Record<ScalarKind, string>> = {
  u8: 'Uint8',
  i8: 'Int8',
  u16: 'Uint16',
  i16: 'Int16',
  u32: 'Uint32',
  i32: 'Int32',
  u64: 'BigUint64',
  i64: 'BigInt64',
  f32: 'Float32',
  f64: 'Float64',
};
const TYPED_ARRAY: Readonly<Record<ScalarKind, string>> = {
  u8: 'Uint8Array',
  i8: 'Int8Array',
  u16: 'Uint16Array',
  i16: 'Int16Array',
  u32: 'Uint32Array',
  i32: 'Int32Array',
  u64: 'BigUint64Array',
  i64: 'BigInt64Array',
  f32: 'Float32Array',
  f64: 'Float64Array',
};
const INT_RANGE: Partial<Record<ScalarKind, readonly [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffff_ffff],
  i32: [-0x8000_0000, 0x7fff_ffff],
};
const BIG_RANGE: Readonly<Record<Big, readonly [bigint, bigint]>> = {
  u64: [0n, 0xffff_ffff_ffff_ffffn],
  i64: [-(1n << 63n), (1n << 63n) - 1n],
};

/** Value checks the generated code calls; each returns the value to store or throws a typed error. */
const checks = {
  int(value: unknown, min: number, max: number, path: string): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new ValueOutOfRangeError(path, `expected an integer in [${min}, ${max}], got ${describe(value)}`);
    }
    return value;
  },
  float(value: unknown, path: string): number {
    if (typeof value !== 'number') throw new ValueOutOfRangeError(path, `expected a number, got ${describe(value)}`);
    return value;
  },
  big(value: unknown, kind: Big, path: string): bigint {
    const [min, max] = BIG_RANGE[kind];
    let big: bigint;
    if (typeof value === 'bigint') big = value;
    else if (typeof value === 'number' && Number.isSafeInteger(value)) big = BigInt(value);
    else throw new ValueOutOfRangeError(path, `expected a bigint or safe integer, got ${describe(value)}`);
    if (big < min || big > max)
      throw new ValueOutOfRangeError(path, `expected a value in [${min}, ${max}], got ${big}`);
    return big;
  },
  bool(value: unknown, path: string): number {
    if (typeof value !== 'boolean') throw new ValueOutOfRangeError(path, `expected a boolean, got ${describe(value)}`);
    return value ? 1 : 0;
  },
  arrayLike(value: unknown, length: number, path: string): ArrayLike<unknown> {
    const n = (value as { length?: unknown } | null | undefined)?.length;
    if (typeof value !== 'object' || value === null || n !== length) {
      throw new ValueOutOfRangeError(path, `expected ${length} elements, got ${describe(value)}`);
    }
    return value as ArrayLike<unknown>;
  },
  bytes(value: unknown, length: number, path: string): Uint8Array {
    if (!(value instanceof Uint8Array) || value.length !== length) {
      throw new ValueOutOfRangeError(path, `expected a Uint8Array of exactly ${length} bytes, got ${describe(value)}`);
    }
    return value;
  },
  string(bytes: Uint8Array, at: number, capacity: number, value: unknown, path: string): number {
    if (typeof value !== 'string') throw new ValueOutOfRangeError(path, `expected a string, got ${describe(value)}`);
    const target = bytes.subarray(at, at + capacity);
    const { read, written } = encoder.encodeInto(value, target);
    if (read !== value.length) throw new StringTooLongError(path, capacity);
    target.fill(0, written);
    return written;
  },
  stringLength(length: number, capacity: number, path: string): number {
    if (length > capacity) throw new ValueOutOfRangeError(path, `stored length ${length} exceeds capacity ${capacity}`);
    return length;
  },
  decoder: new TextDecoder(),
};

const encoder = new TextEncoder();

function describe(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value.length > 32 ? `${value.slice(0, 32)}…` : value);
  if (value instanceof Uint8Array) return `Uint8Array(${value.length})`;
  if (value instanceof ArrayBuffer) return `ArrayBuffer(${value.byteLength})`;
  if (Array.isArray(value)) return `array(${value.length})`;
  if (typeof value === 'object' && value !== null) return 'an object';
  return String(value);
}

type CompiledView = new (view: DataView, bytes: Uint8Array, offset: number) => object;

function compile(
  name: string,
  fields: readonly SchemaField[],
  size: number,
): {
  encodeInto: (dv: DataView, bytes: Uint8Array, o: number, v: Record<string, unknown>) => void;
  View: CompiledView;
} {
  const enc: string[] = [];
  const getters: string[] = [];
  const copies: string[] = [];
  let cursor = 0;
  for (const f of fields) {
    if (f.offset > cursor) enc.push(`bytes.fill(0, o + ${cursor}, o + ${f.offset});`);
    cursor = f.offset + f.size;
    const path = JSON.stringify(`${name}.${f.name}`);
    const at = `o + ${f.offset}`;
    const t = f.type;
    if (typeof t === 'string') {
      if (t === 'bool') {
        enc.push(`dv.setUint8(${at}, c.bool(v.${f.name}, ${path}));`);
        getters.push(`get ${f.name}() { return this.dv.getUint8(this.o + ${f.offset}) !== 0; }`);
      } else {
        const suffix = DV_SUFFIX[t];
        const range = INT_RANGE[t];
        const checked =
          t === 'u64' || t === 'i64'
            ? `c.big(v.${f.name}, '${t}', ${path})`
            : range
              ? `c.int(v.${f.name}, ${range[0]}, ${range[1]}, ${path})`
              : `c.float(v.${f.name}, ${path})`;
        const le = SCALAR_SIZE[t] > 1 ? ', true' : '';
        enc.push(`dv.set${suffix}(${at}, ${checked}${le});`);
        getters.push(`get ${f.name}() { return this.dv.get${suffix}(this.o + ${f.offset}${le}); }`);
      }
      copies.push(`${f.name}: this.${f.name}`);
    } else if (t.kind === 'array') {
      const suffix = DV_SUFFIX[t.element];
      const step = SCALAR_SIZE[t.element];
      const le = step > 1 ? ', true' : '';
      const range = INT_RANGE[t.element];
      const element =
        t.element === 'u64' || t.element === 'i64'
          ? `c.big(a[i], '${t.element}', ${path})`
          : range
            ? `c.int(a[i], ${range[0]}, ${range[1]}, ${path})`
            : `c.float(a[i], ${path})`;
      enc.push(
        `{ const a = c.arrayLike(v.${f.name}, ${t.length}, ${path}); for (let i = 0; i < ${t.length}; i++) dv.set${suffix}(${at} + i * ${step}, ${element}${le}); }`,
      );
      getters.push(
        `get ${f.name}() { return new ${TYPED_ARRAY[t.element]}(this.dv.buffer, this.dv.byteOffset + this.o + ${f.offset}, ${t.length}); }`,
      );
      copies.push(`${f.name}: this.${f.name}.slice()`);
    } else if (t.kind === 'bytes') {
      enc.push(`bytes.set(c.bytes(v.${f.name}, ${t.length}, ${path}), ${at});`);
      getters.push(
        `get ${f.name}() { return this.bytes.subarray(this.o + ${f.offset}, this.o + ${f.offset + t.length}); }`,
      );
      copies.push(`${f.name}: this.${f.name}.slice()`);
    } else {
      enc.push(`dv.setUint32(${at}, c.string(bytes, ${at} + 4, ${t.capacity}, v.${f.name}, ${path}), true);`);
      getters.push(
        `get ${f.name}() { const s = this.o + ${f.offset + 4}; const n = c.stringLength(this.dv.getUint32(s - 4, true), ${t.capacity}, ${path}); return c.decoder.decode(this.bytes.subarray(s, s + n)); }`,
      );
      copies.push(`${f.name}: this.${f.name}`);
    }
  }
  if (size > cursor) enc.push(`bytes.fill(0, o + ${cursor}, o + ${size});`);
  const source = `
    "use strict";
    function encodeInto(dv, bytes, o, v) {
      if (typeof v !== 'object' || v === null) throw new c.ValueOutOfRangeError(${JSON.stringify(name)}, 'expected an object');
      ${enc.join('\n      ')}
    }
    class View {
      constructor(dv, bytes, o) { this.dv = dv; this.bytes = bytes; this.o = o; }
      ${getters.join('\n      ')}
      toObject() { return { ${copies.join(', ')} }; }
      [Symbol.for('nodejs.util.inspect.custom')]() { return this.toObject(); }
    }
    return { encodeInto, View };`;
  const factory = new Function('c', source) as (c: unknown) => ReturnType<typeof compile>;
  return factory({ ...checks, ValueOutOfRangeError });
}

function emitCStruct(
  cName: string,
  name: string,
  typeId: number,
  fields: readonly SchemaField[],
  size: number,
): string {
  const lines = [`/* ${name}: type id ${typeId} (0x${typeId.toString(16)}), ${size} bytes. Generated; do not edit. */`];
  lines.push(`typedef struct ${cName} {`);
  for (const f of fields) {
    const t = f.type;
    if (typeof t === 'string')
      lines.push(
        `  ${t === 'bool' ? 'uint8_t' : SCALAR_C_TYPE[t]} ${f.name};${t === 'bool' ? ' /* bool: 0 or 1 */' : ''}`,
      );
    else if (t.kind === 'array') lines.push(`  ${SCALAR_C_TYPE[t.element]} ${f.name}[${t.length}];`);
    else if (t.kind === 'bytes') lines.push(`  uint8_t ${f.name}[${t.length}];`);
    else {
      lines.push(`  uint32_t ${f.name}_len; /* UTF-8 bytes used, <= ${t.capacity} */`);
      lines.push(`  char ${f.name}[${t.capacity}];`);
    }
  }
  lines.push(`} ${cName};`);
  const upper = cName.toUpperCase();
  lines.push(`#define ${upper}_TYPE_ID ${typeId}u`);
  lines.push(`_Static_assert(sizeof(${cName}) == ${size}, "${cName} size");`);
  for (const f of fields) {
    const member = typeof f.type === 'object' && f.type.kind === 'string' ? `${f.name}_len` : f.name;
    lines.push(`_Static_assert(offsetof(${cName}, ${member}) == ${f.offset}, "${cName}.${member} offset");`);
  }
  return `${lines.join('\n')}\n`;
}

/** The type id of {@link BytesMessage}. */
export const BYTES_TYPE_ID = 1;

/**
 * Raw payloads: any number of bytes up to the ring's maximum, read back as a `Uint8Array` over the frame.
 *
 * @example
 * producer.tryWrite(BytesMessage, new Uint8Array([1, 2, 3]));
 */
export const BytesMessage: MessageCodec<Uint8Array, Uint8Array> = Object.freeze({
  name: 'bytes',
  typeId: BYTES_TYPE_ID,
  encodedSize: (value: Uint8Array) => {
    // Checked here, the first thing a producer asks: an ArrayBuffer or an array has no byte length to go by.
    if (!(value instanceof Uint8Array)) {
      throw new ValueOutOfRangeError('bytes', `expected a Uint8Array, got ${describe(value)}`);
    }
    return value.length;
  },
  encodeInto(_view: DataView, bytes: Uint8Array, offset: number, value: Uint8Array): void {
    if (!(value instanceof Uint8Array))
      throw new ValueOutOfRangeError('bytes', `expected a Uint8Array, got ${describe(value)}`);
    bytes.set(value, offset);
  },
  view: (_view: DataView, bytes: Uint8Array, offset: number, size: number) => bytes.subarray(offset, offset + size),
});
