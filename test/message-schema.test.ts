import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BytesMessage,
  defineMessage,
  ErrorCode,
  field,
  fnv1a32,
  MessageTypeMismatchError,
  StringTooLongError,
  ValueOutOfRangeError,
} from '../src/internal.js';
import { Random, TEST_SEED } from './support/random.js';

const Everything = defineMessage('test.Everything', {
  a_u8: 'u8',
  a_i8: 'i8',
  a_u16: 'u16',
  a_i16: 'i16',
  a_u32: 'u32',
  a_i32: 'i32',
  a_u64: 'u64',
  a_i64: 'i64',
  a_f32: 'f32',
  a_f64: 'f64',
  a_bool: 'bool',
  floats: field.array('f32', 3),
  longs: field.array('i64', 2),
  shorts: field.array('u16', 5),
  digest: field.bytes(6),
  label: field.string(12),
});

type Input = Parameters<typeof Everything.encode>[0];

const minimum: Input = {
  a_u8: 0,
  a_i8: -128,
  a_u16: 0,
  a_i16: -32768,
  a_u32: 0,
  a_i32: -2147483648,
  a_u64: 0n,
  a_i64: -(2n ** 63n),
  a_f32: -3.4028234663852886e38,
  a_f64: -Number.MAX_VALUE,
  a_bool: false,
  floats: [0, -0, Number.NaN],
  longs: [-(2n ** 63n), 2n ** 63n - 1n],
  shorts: [0, 1, 2, 65534, 65535],
  digest: new Uint8Array(6),
  label: '',
};
const maximum: Input = {
  a_u8: 255,
  a_i8: 127,
  a_u16: 65535,
  a_i16: 32767,
  a_u32: 4294967295,
  a_i32: 2147483647,
  a_u64: 2n ** 64n - 1n,
  a_i64: 2n ** 63n - 1n,
  a_f32: 3.4028234663852886e38,
  a_f64: Number.MAX_VALUE,
  a_bool: true,
  floats: [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1.5],
  longs: [0n, -1n],
  shorts: [65535, 65535, 65535, 65535, 65535],
  digest: new Uint8Array([255, 254, 253, 0, 1, 2]),
  label: 'ääääää', // 12 UTF-8 bytes: exactly full
};

function roundTrip(value: Input) {
  return Everything.decode(Everything.encode(value));
}

describe('defineMessage', () => {
  it('checks a payload size without building a view: its own size passes, any other is a typed mismatch', () => {
    assert.doesNotThrow(() => Everything.checkSize?.(112));
    for (const size of [0, 111, 113, 224]) {
      assert.throws(
        () => Everything.checkSize?.(size),
        (error: unknown) =>
          error instanceof MessageTypeMismatchError && error.message.includes(`payload is ${size} bytes, not 112`),
      );
    }
  });

  it('lays fields out with natural C alignment', () => {
    const offsets = Object.fromEntries(Everything.fields.map((f) => [f.name, f.offset]));
    assert.deepEqual(offsets, {
      a_u8: 0,
      a_i8: 1,
      a_u16: 2,
      a_i16: 4,
      a_u32: 8,
      a_i32: 12,
      a_u64: 16,
      a_i64: 24,
      a_f32: 32,
      a_f64: 40,
      a_bool: 48,
      floats: 52,
      longs: 64,
      shorts: 80,
      digest: 90,
      label: 96,
    });
    assert.equal(Everything.size, 112);
    assert.equal(Everything.align, 8);
  });

  it('round-trips every field type at its minimum and maximum', () => {
    for (const value of [minimum, maximum]) {
      const back = roundTrip(value);
      assert.equal(back.a_u8, value.a_u8);
      assert.equal(back.a_i8, value.a_i8);
      assert.equal(back.a_u16, value.a_u16);
      assert.equal(back.a_i16, value.a_i16);
      assert.equal(back.a_u32, value.a_u32);
      assert.equal(back.a_i32, value.a_i32);
      assert.equal(back.a_u64, value.a_u64);
      assert.equal(back.a_i64, value.a_i64);
      assert.equal(back.a_f32, value.a_f32);
      assert.equal(back.a_f64, value.a_f64);
      assert.equal(back.a_bool, value.a_bool);
      assert.deepEqual([...back.floats], Array.from(value.floats));
      assert.deepEqual([...back.longs], Array.from(value.longs));
      assert.deepEqual([...back.shorts], Array.from(value.shorts));
      assert.deepEqual(back.digest, value.digest);
      assert.equal(back.label, value.label);
    }
  });

  it('keeps NaN, -0 and infinities exactly, and rounds f32 like C does', () => {
    const back = roundTrip({ ...minimum, a_f32: -0, a_f64: Number.NaN, floats: [Number.NaN, -0, 0.1] });
    assert.ok(Object.is(back.a_f32, -0));
    assert.ok(Number.isNaN(back.a_f64));
    assert.ok(Number.isNaN(back.floats[0]));
    assert.ok(Object.is(back.floats[1], -0));
    assert.equal(back.floats[2], Math.fround(0.1));
    assert.equal(roundTrip({ ...minimum, a_f64: -0 }).a_f64, -0);
    assert.ok(Object.is(roundTrip({ ...minimum, a_f64: -0 }).a_f64, -0));
  });

  it('accepts safe-integer numbers for 64-bit fields', () => {
    assert.equal(roundTrip({ ...minimum, a_u64: Number.MAX_SAFE_INTEGER, a_i64: -5 }).a_u64, 2n ** 53n - 1n);
  });

  it('rejects every out-of-range value with a typed error naming the field, and never truncates', () => {
    const bad: [keyof Input, unknown][] = [
      ['a_u8', 256],
      ['a_u8', -1],
      ['a_u8', 1.5],
      ['a_i8', 128],
      ['a_i8', -129],
      ['a_u16', 65536],
      ['a_i16', -32769],
      ['a_u32', 2 ** 32],
      ['a_u32', -1],
      ['a_i32', 2 ** 31],
      ['a_u64', 2n ** 64n],
      ['a_u64', -1n],
      ['a_u64', 2 ** 53],
      ['a_i64', 2n ** 63n],
      ['a_i64', -(2n ** 63n) - 1n],
      ['a_f32', '1'],
      ['a_f64', 1n],
      ['a_bool', 1],
      ['a_u32', Number.NaN],
      ['a_u32', undefined],
      ['floats', [1, 2]],
      ['floats', [1, 2, 3, 4]],
      ['floats', 'abc'],
      ['longs', [1n, 2n ** 64n]],
      ['shorts', [0, 0, 0, 0, 70000]],
      ['digest', new Uint8Array(5)],
      ['digest', new Uint8Array(7)],
      ['digest', [1, 2, 3, 4, 5, 6]],
      ['label', 42],
    ];
    for (const [name, value] of bad) {
      assert.throws(
        () => Everything.encode({ ...minimum, [name]: value } as Input),
        (error: unknown) =>
          error instanceof ValueOutOfRangeError &&
          error.code === ErrorCode.ValueOutOfRange &&
          error.field === `test.Everything.${name}`,
        `${name} = ${String(value)}`,
      );
    }
    assert.throws(() => Everything.encode(null as unknown as Input), ValueOutOfRangeError);
  });

  it('rejects a string whose UTF-8 exceeds the capacity, even by one byte inside a multi-byte character', () => {
    for (const label of ['abcdefghijklm', 'äääääää', 'abcäääää', 'ääääää€', '😀😀😀a']) {
      assert.ok(new TextEncoder().encode(label).length > 12);
      assert.throws(
        () => Everything.encode({ ...minimum, label }),
        (error: unknown) =>
          error instanceof StringTooLongError && error.code === ErrorCode.StringTooLong && error.capacity === 12,
        label,
      );
    }
    assert.equal(roundTrip({ ...minimum, label: '😀😀😀' }).label, '😀😀😀', '12 bytes of emoji fit');
    assert.equal(roundTrip({ ...minimum, label: 'abcdefghijkl' }).label, 'abcdefghijkl');
  });

  it('zero-fills unused string capacity and padding, so equal values encode to equal bytes', () => {
    const dirty = new Uint8Array(Everything.size + 8).fill(0xee);
    Everything.encodeInto(new DataView(dirty.buffer), dirty, 8, { ...minimum, label: 'x' });
    assert.deepEqual(dirty.subarray(8), Everything.encode({ ...minimum, label: 'x' }));
  });

  it('reads through a zero-copy view and copies with toObject()', () => {
    const bytes = Everything.encode(maximum);
    const view = Everything.view(new DataView(bytes.buffer), bytes, 0, Everything.size);
    const copy = view.toObject();
    assert.equal(view.a_u32, 4294967295);
    bytes[8] = 7; // a_u32's low byte
    bytes[90] = 9; // digest[0]
    assert.equal(view.a_u32, 4294967040 + 7, 'the view sees the memory');
    assert.equal(view.digest[0], 9);
    assert.equal(copy.a_u32, 4294967295, 'the copy does not');
    assert.equal(copy.digest[0], 255);
    assert.ok(view.floats instanceof Float32Array && view.floats.buffer === bytes.buffer, 'arrays are views');
    assert.throws(() => Everything.view(new DataView(bytes.buffer), bytes, 0, 8), MessageTypeMismatchError);
  });

  it('decodes from a misaligned offset by copying', () => {
    const bytes = new Uint8Array(Everything.size + 3);
    bytes.set(Everything.encode(maximum), 3);
    assert.deepEqual([...Everything.decode(bytes, 3).longs], [0n, -1n]);
    assert.throws(() => Everything.decode(bytes, 4), /needs 112 bytes at offset 4/);
  });

  it(`round-trips random values (seed ${TEST_SEED})`, () => {
    const random = new Random(TEST_SEED);
    const chars = ['a', 'Z', '0', 'é', '€', '😀', ' '];
    for (let i = 0; i < 5_000; i++) {
      let label = '';
      while (true) {
        const next = label + (chars[random.int(0, chars.length - 1)] as string);
        if (new TextEncoder().encode(next).length > 12 || random.next() < 0.15) break;
        label = next;
      }
      const value: Input = {
        a_u8: random.int(0, 255),
        a_i8: random.int(-128, 127),
        a_u16: random.int(0, 65535),
        a_i16: random.int(-32768, 32767),
        a_u32: random.u32(),
        a_i32: random.u32() | 0,
        a_u64: (BigInt(random.u32()) << 32n) | BigInt(random.u32()),
        a_i64: BigInt.asIntN(64, (BigInt(random.u32()) << 32n) | BigInt(random.u32())),
        a_f32: Math.fround((random.next() - 0.5) * 1e6),
        a_f64: (random.next() - 0.5) * 1e300,
        a_bool: random.next() < 0.5,
        floats: [random.next(), random.next(), random.next()].map(Math.fround),
        longs: [BigInt(random.u32()) - 2n ** 31n, BigInt(random.u32()) << 20n],
        shorts: [0, 0, 0, 0, 0].map(() => random.int(0, 65535)),
        digest: random.fill(new Uint8Array(6)),
        label,
      };
      const back = roundTrip(value);
      assert.deepEqual(
        {
          ...back,
          floats: [...back.floats],
          longs: [...back.longs],
          shorts: [...back.shorts],
          digest: [...back.digest],
        },
        {
          ...value,
          a_u64: BigInt(value.a_u64),
          a_i64: BigInt(value.a_i64),
          floats: Array.from(value.floats),
          longs: Array.from(value.longs),
          shorts: Array.from(value.shorts),
          digest: [...value.digest],
        },
      );
    }
  });

  it('gives each message a stable type id: FNV-1a of its name, or an explicit one', () => {
    assert.equal(Everything.typeId, fnv1a32('test.Everything'));
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('a'), 0xe40c292c);
    assert.equal(defineMessage('test.Explicit', { x: 'u8' }, { typeId: 4242 }).typeId, 4242);
    assert.equal(
      defineMessage('test.Everything', Object.fromEntries(Everything.fields.map((f) => [f.name, f.type]))).typeId,
      Everything.typeId,
      'redefining the same message is allowed',
    );
  });

  it('validates definitions up front', () => {
    assert.throws(() => defineMessage('bad name', { x: 'u8' }), /a message name is dot-separated identifiers/);
    assert.throws(() => defineMessage('test.BadField', { 'x-y': 'u8' }), /must be a C identifier/);
    assert.throws(() => defineMessage('test.Reserved', { toObject: 'u8' }), /must be a C identifier, not reserved/);
    assert.throws(() => defineMessage('test.BadType', { x: 'u128' as 'u8' }), /field 'x' has unknown type "u128"/);
    assert.throws(() => defineMessage('test.Empty', {}), /at least one field/);
    assert.throws(
      () => defineMessage('test.LowId', { x: 'u8' }, { typeId: 7 }),
      /must be an integer in \[256, 2\^32\)/,
    );
    assert.throws(
      () => defineMessage('test.Other', { x: 'u16' }, { typeId: 4242 }),
      /already used by message "test.Explicit"/,
    );
    assert.throws(() => field.array('f32', 0), /field.array length must be an integer in \[1, 16777216\], got 0/);
    assert.throws(() => field.array('f16' as 'f32', 2), /element must be a scalar kind/);
    assert.throws(() => field.string(-1), RangeError);
    assert.throws(() => field.bytes(1.5), RangeError);
  });

  it('emits a C struct with static asserts', () => {
    const c = Everything.toCStruct();
    assert.match(c, /typedef struct rk_msg_test_Everything \{/);
    assert.match(c, /int64_t longs\[2\];/);
    assert.match(c, /uint32_t label_len;/);
    assert.match(c, /_Static_assert\(offsetof\(rk_msg_test_Everything, label_len\) == 96/);
    assert.match(c, /_Static_assert\(sizeof\(rk_msg_test_Everything\) == 112/);
  });
});

describe('BytesMessage', () => {
  it('carries raw payloads and rejects anything but a Uint8Array', () => {
    assert.equal(BytesMessage.typeId, 1);
    const target = new Uint8Array(8);
    BytesMessage.encodeInto(new DataView(target.buffer), target, 2, new Uint8Array([1, 2, 3]));
    assert.deepEqual([...target], [0, 0, 1, 2, 3, 0, 0, 0]);
    assert.deepEqual([...BytesMessage.view(new DataView(target.buffer), target, 2, 3)], [1, 2, 3]);
    assert.throws(
      () => BytesMessage.encodeInto(new DataView(target.buffer), target, 0, [1] as unknown as Uint8Array),
      ValueOutOfRangeError,
    );
  });
});
