import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CRC32C_INIT, crc32c, crc32cFinish, crc32cUpdate } from '../src/internal.js';
import { Random, TEST_SEED } from './support/random.js';

/** Byte-at-a-time reference, straight from the definition. */
function reference(bytes: Uint8Array): number {
  let crc = 0xffff_ffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f6_3b78 : crc >>> 1;
  }
  return (crc ^ 0xffff_ffff) >>> 0;
}

describe('crc32c', () => {
  it('matches the published check value and the RFC 3720 vectors', () => {
    assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe306_9283);
    assert.equal(crc32c(new Uint8Array(0)), 0);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a91_36aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8_ab43);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd_794e);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113f_db5c);
  });

  it(`agrees with the bytewise reference on random data, whole and in random pieces (seed ${TEST_SEED})`, () => {
    const random = new Random(TEST_SEED);
    for (let iteration = 0; iteration < 2_000; iteration++) {
      const bytes = random.fill(new Uint8Array(random.int(0, 300)));
      const expected = reference(bytes);
      assert.equal(crc32c(bytes), expected);
      const cut = random.int(0, bytes.length);
      const split = crc32cFinish(crc32cUpdate(crc32cUpdate(CRC32C_INIT, bytes, 0, cut), bytes, cut, bytes.length));
      assert.equal(split, expected, `split at ${cut} of ${bytes.length}`);
    }
  });

  it('detects every single-bit flip in a frame-sized buffer', () => {
    const bytes = new Random(TEST_SEED ^ 1).fill(new Uint8Array(160));
    const good = crc32c(bytes);
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      bytes[bit >> 3] = (bytes[bit >> 3] as number) ^ (1 << (bit & 7));
      assert.notEqual(crc32c(bytes), good, `bit ${bit}`);
      bytes[bit >> 3] = (bytes[bit >> 3] as number) ^ (1 << (bit & 7));
    }
  });
});
