/**
 * Frames between nodes: batches of ring frames, read back in order, and damaged batches (seeded) reported as typed
 * errors without throwing. No network: the bytes a NATS message would carry.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterSubjects, nameToken, tokenName } from '../src/cluster/cluster-subjects.js';
import { FrameBatchWriter, readFrameBatch } from '../src/cluster/frame-batch.js';
import { BytesMessage, defineMessage, ErrorCode, field, type MalformedFrameError } from '../src/index.js';
import { Numbers } from './fixtures/kernels.js';
import { Random, TEST_SEED } from './support/random.js';

/** A message with an f64 array field: read through a Float64Array, so it needs an aligned payload. */
const BenchLike = defineMessage('test.cluster.Aligned', { seq: 'u32', data: field.array('f64', 6) });

test('a batch carries many frames, each read back whole and in order, checksummed or not', () => {
  for (const integrity of [false, true]) {
    const writer = new FrameBatchWriter({ initialBytes: 64, integrity });
    for (let i = 1; i <= 100; i++) {
      writer.add(
        Numbers,
        { sender: 7, seq: i, value: i / 2 },
        { messageId: i, priority: i % 256, correlationId: i * 3 },
      );
    }
    assert.equal(writer.frames, 100);
    const bytes = writer.take();
    assert.equal(writer.frames, 0);
    const seen: number[] = [];
    const count = readFrameBatch(
      bytes,
      (frame) => {
        const value = frame.decode(Numbers);
        assert.equal(value.value, frame.messageId / 2);
        assert.equal(frame.correlationId, frame.messageId * 3);
        seen.push(value.seq);
      },
      (error) => assert.fail(error.message),
    );
    assert.deepEqual(count, { frames: 100, malformedBytes: 0 });
    assert.deepEqual(
      seen,
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
  }
});

test('a misaligned batch of array fields (as NATS hands out Buffers) still reads, and is not aliased', () => {
  const writer = new FrameBatchWriter();
  for (let i = 1; i <= 3; i++) writer.add(BenchLike, { seq: i, data: [i, 2, 3, 4, 5, 6] }, { messageId: i });
  const bytes = writer.take();
  for (const shift of [0, 1, 3, 4]) {
    const holder = Buffer.alloc(bytes.length + shift);
    holder.set(bytes, shift);
    const seen: number[] = [];
    readFrameBatch(
      holder.subarray(shift),
      (frame) => {
        const value = frame.decode(BenchLike);
        seen.push(value.data[0] ?? -1);
        const copy = frame.payload.slice();
        copy[0] = 0xff;
        assert.notEqual(frame.payload[0], 0xff, 'a payload copy is a copy');
      },
      (error) => assert.fail(error.message),
    );
    assert.deepEqual(seen, [1, 2, 3], `shift ${shift}`);
  }
});

test('seeded damage: every damaged batch yields the frames before the damage, then one typed error; nothing throws', () => {
  const random = new Random(TEST_SEED);
  const codes = new Set<string>();
  for (let round = 0; round < 500; round++) {
    const writer = new FrameBatchWriter({ integrity: true });
    const frames = random.int(1, 8);
    const sizes: number[] = [];
    for (let i = 0; i < frames; i++) {
      const payload = new Uint8Array(random.int(0, 40)).map(() => random.int(0, 255));
      sizes.push(writer.byteLength);
      writer.add(BytesMessage, payload, { messageId: i + 1 });
    }
    const bytes = writer.take();
    const at = random.int(0, bytes.length - 1);
    const bit = random.int(0, 7);
    bytes[at] = (bytes[at] ?? 0) ^ (1 << bit);
    // The frame holding the damaged byte, and so how many frames must come through before it.
    let damagedFrame = 0;
    while (damagedFrame + 1 < sizes.length && (sizes[damagedFrame + 1] ?? 0) <= at) damagedFrame++;
    const errors: MalformedFrameError[] = [];
    const read: number[] = [];
    readFrameBatch(
      bytes,
      (frame) => read.push(frame.messageId),
      (error) => errors.push(error),
    );
    const frameStart = sizes[damagedFrame] ?? 0;
    const frameLength = new DataView(bytes.buffer).getUint32(frameStart, true);
    const inPadding = at >= frameStart + frameLength;
    // Clearing the CHECKSUM flag itself turns the check off (as on a ring that does not require integrity).
    const checksumFlagCleared = at - frameStart === 10 && bit === 0;
    if (errors.length === 0) {
      // Only a flip in padding bytes (outside every frame's checked bytes) or of the flag goes unnoticed.
      assert.ok(inPadding || checksumFlagCleared, `round ${round}: damage at ${at} not reported`);
      assert.equal(read.length, frames);
      continue;
    }
    assert.equal(errors.length, 1, `round ${round}`);
    assert.equal(read.length, damagedFrame, `round ${round}: frames read before the damage in frame ${damagedFrame}`);
    codes.add(errors[0]?.code ?? '');
  }
  for (const code of [ErrorCode.FrameBadChecksum, ErrorCode.FrameBadMagic, ErrorCode.FrameBadLength]) {
    assert.ok(codes.has(code), `seed ${TEST_SEED}: ${[...codes].join()} lacks ${code}`);
  }
});

test('kernel names become subject tokens and back; clusters are separate namespaces', () => {
  for (const name of ['sensors/eu/avg', 'a.b', 'x y*>', 'ünï', '=7e~']) {
    const token = nameToken(name);
    assert.match(token, /^[A-Za-z0-9_/=-]+$/);
    assert.equal(tokenName(token), name);
  }
  const ours = clusterSubjects('ours');
  const theirs = clusterSubjects('theirs');
  assert.notEqual(ours.input('k'), theirs.input('k'));
  assert.notEqual(ours.bucket, theirs.bucket);
  assert.equal(ours.consumer('a/b'), 'k_a~b');
});
