import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RingBuffer } from 'ringbuf.js';
import {
  alignedFrameSize,
  BytesMessage,
  createFrameRing,
  defineMessage,
  ErrorCode,
  FRAME_MAGIC,
  FrameConsumer,
  FrameFlags,
  FrameHeader,
  FrameProducer,
  FrameTooLargeError,
  type FrameView,
  field,
  HybridLogicalClock,
  InvalidEnvelopeError,
  MalformedFrameError,
  MessageTypeMismatchError,
  RingOffset,
  ValueOutOfRangeError,
} from '../src/internal.js';
import { fillPayload, Random, TEST_SEED } from './support/random.js';

const Tick = defineMessage('test.Tick', { seq: 'u32', price: 'f64', symbol: field.string(8) });

function ring(capacityBytes: number, maxPayloadSize?: number, integrity = false) {
  const memory = createFrameRing(
    maxPayloadSize === undefined ? { capacityBytes, integrity } : { capacityBytes, maxPayloadSize, integrity },
  );
  return { memory, indices: new Uint32Array(memory.ring, 0, 2), bytes: new Uint8Array(memory.ring) };
}

function drainAll(consumer: FrameConsumer): FrameView[] {
  const frames: FrameView[] = [];
  consumer.drain((frame) => {
    frames.push(frame.copy());
  });
  return frames;
}

describe('createFrameRing', () => {
  it('validates its options with exact messages', () => {
    assert.throws(() => createFrameRing(undefined as never), /options must be an object/);
    assert.throws(
      () => createFrameRing({ capacityBytes: '4096' as never }),
      /capacityBytes must be a number, got string/,
    );
    assert.throws(
      () => createFrameRing({ capacityBytes: 10 }),
      /capacityBytes must be an integer in \[104, 1073741824\], got 10/,
    );
    assert.throws(() => createFrameRing({ capacityBytes: 1000.5 }), RangeError);
    assert.throws(() => createFrameRing({ capacityBytes: 1000, integrity: 1 as never }), /integrity must be a boolean/);
    assert.throws(
      () => createFrameRing({ capacityBytes: 1024, maxPayloadSize: 1024 }),
      /maxPayloadSize must be an integer in \[0, 928\] for a 1024-byte ring, got 1024/,
    );
    const { memory } = ring(1000);
    assert.equal((memory.ring.byteLength - RingOffset.DATA) % 8, 0, 'storage is a multiple of 8');
    assert.equal(memory.maxPayloadSize, memory.ring.byteLength - RingOffset.DATA - 8 - FrameHeader.SIZE);
  });
});

describe('FrameProducer and FrameConsumer', () => {
  it('carry every envelope field and a typed payload', () => {
    const { memory } = ring(4096);
    const clock = new HybridLogicalClock(42, { now: () => 1_700_000_000_000_000 });
    const producer = new FrameProducer(memory, { clock, integrity: true });
    const consumer = new FrameConsumer(memory);
    const traceId = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    const spanId = Uint8Array.from({ length: 8 }, (_, i) => 0xa0 + i);
    assert.ok(
      producer.tryWrite(
        Tick,
        { seq: 7, price: 101.25, symbol: 'ACME' },
        {
          correlationId: 2 ** 53 - 1,
          source: 3,
          destination: 0xffff_ffff,
          priority: 200,
          flags: FrameFlags.RESPONSE,
          traceId,
          spanId,
          traceFlags: 1,
        },
      ),
    );
    let seen = 0;
    consumer.drain((frame) => {
      seen++;
      assert.equal(frame.typeId, Tick.typeId);
      assert.equal(frame.messageId, 1);
      assert.equal(frame.correlationId, 2 ** 53 - 1);
      assert.equal(frame.source, 3);
      assert.equal(frame.destination, 0xffff_ffff);
      assert.equal(frame.priority, 200);
      assert.equal(frame.flags, FrameFlags.RESPONSE | FrameFlags.CHECKSUM);
      assert.ok(frame.isResponse);
      assert.equal(frame.payloadSize, Tick.size);
      assert.equal(frame.length, FrameHeader.SIZE + Tick.size);
      assert.deepEqual(frame.traceId, traceId);
      assert.deepEqual(frame.spanId, spanId);
      assert.equal(frame.traceFlags, 1);
      assert.equal(frame.hlcPhysicalUs, 1_700_000_000_000_000);
      assert.equal(frame.hlcLogical, 0);
      assert.equal(frame.hlcNode, 42);
      const tick = frame.decode(Tick);
      assert.deepEqual(tick.toObject(), { seq: 7, price: 101.25, symbol: 'ACME' });
      assert.throws(() => frame.decode(BytesMessage), MessageTypeMismatchError);
    });
    assert.equal(seen, 1);
    assert.equal(consumer.framesRead, 1);
  });

  it('number messages 1, 2, 3… unless the envelope names an id, and validate envelopes before writing', () => {
    const { memory, indices } = ring(4096);
    const producer = new FrameProducer(memory);
    const consumer = new FrameConsumer(memory);
    producer.tryWrite(BytesMessage, new Uint8Array(1));
    producer.tryWrite(BytesMessage, new Uint8Array(1), { messageId: 99 });
    producer.tryWrite(BytesMessage, new Uint8Array(1));
    assert.deepEqual(
      drainAll(consumer).map((f) => f.messageId),
      [1, 99, 2],
    );
    const before = [...indices];
    for (const envelope of [
      { messageId: -1 },
      { messageId: 2 ** 53 },
      { correlationId: 1.5 },
      { source: 2 ** 32 },
      { destination: -1 },
      { priority: 256 },
      { traceFlags: -1 },
      { flags: 0x1_0000 },
      { traceId: new Uint8Array(15) },
      { spanId: new Uint8Array(9) },
    ]) {
      assert.throws(
        () => producer.tryWrite(BytesMessage, new Uint8Array(1), envelope),
        (error: unknown) => error instanceof InvalidEnvelopeError && error.code === ErrorCode.InvalidEnvelope,
        JSON.stringify(envelope),
      );
    }
    assert.deepEqual([...indices], before, 'nothing published');
  });

  it('reject a frame larger than the maximum before writing anything', () => {
    const { memory, indices, bytes } = ring(1024, 100);
    const producer = new FrameProducer(memory);
    producer.tryWrite(BytesMessage, new Uint8Array(10));
    const snapshot = bytes.slice();
    assert.throws(
      () => producer.tryWrite(BytesMessage, new Uint8Array(101)),
      (error: unknown) =>
        error instanceof FrameTooLargeError &&
        error.code === ErrorCode.FrameTooLarge &&
        error.errno === 101 &&
        error.payloadSize === 101 &&
        error.maxPayloadSize === 100,
    );
    assert.deepEqual(bytes, snapshot, 'not a byte changed');
    assert.equal(indices[0], alignedFrameSize(10));
    assert.ok(producer.tryWrite(BytesMessage, new Uint8Array(100)), 'exactly the maximum fits');
  });

  it('publish nothing when encoding a value fails', () => {
    const { memory, indices } = ring(1024);
    const producer = new FrameProducer(memory);
    assert.throws(() => producer.tryWrite(Tick, { seq: -1, price: 0, symbol: '' }), ValueOutOfRangeError);
    assert.deepEqual([...indices], [0, 0]);
    assert.ok(producer.tryWrite(Tick, { seq: 1, price: 0, symbol: '' }));
    assert.equal(new FrameConsumer(memory).pop()?.messageId, 1, 'the failed write used no message id');
  });

  it('write whole frames only: a full ring refuses the frame and changes nothing', () => {
    const { memory, indices } = ring(1024);
    const producer = new FrameProducer(memory);
    let written = 0;
    while (producer.tryWrite(BytesMessage, new Uint8Array(100))) written++;
    const frameSize = alignedFrameSize(100);
    assert.equal(written, Math.floor((memory.ring.byteLength - RingOffset.DATA - 1) / frameSize));
    const before = [...indices];
    assert.equal(producer.tryWrite(BytesMessage, new Uint8Array(100)), false);
    assert.deepEqual([...indices], before);
    assert.ok(producer.availableWriteBytes() < frameSize);
    assert.equal(producer.availableWriteFrames(100), 0);
    assert.ok(producer.tryWrite(BytesMessage, new Uint8Array(0)) || producer.availableWriteBytes() < FrameHeader.SIZE);
  });

  it('hold back a frame whose handling is unfinished: the producer gets its room only once it is released', () => {
    const { memory, indices } = ring(1024);
    const producer = new FrameProducer(memory);
    const consumer = new FrameConsumer(memory);
    for (let seq = 0; seq < 3; seq++) assert.ok(producer.tryWrite(Tick, { seq, price: seq, symbol: 'HLD' }));
    const frameSize = alignedFrameSize(Tick.size);
    // The second frame's outputs wait for room: the consumer stops there and holds it back.
    const seen: number[] = [];
    consumer.drain((frame) => {
      seen.push(frame.decode(Tick).seq);
      if (seen.length === 2) {
        consumer.holdCurrentFrame();
        return false;
      }
      return true;
    });
    assert.deepEqual(seen, [0, 1]);
    assert.equal(indices[1], frameSize, 'the published read index stays at the held frame');
    assert.equal(consumer.cursor, 2 * frameSize, 'while the consumer itself is past it');
    // The producer cannot take the held frame's bytes, even with the ring otherwise full.
    while (producer.tryWrite(Tick, { seq: 99, price: 0, symbol: 'FILL' })) {}
    const held = new Uint8Array(memory.ring, 8 + frameSize, frameSize).slice();
    assert.equal(producer.tryWrite(Tick, { seq: 100, price: 0, symbol: 'OVER' }), false);
    assert.deepEqual(new Uint8Array(memory.ring, 8 + frameSize, frameSize), held, 'the held frame is intact');
    // A consumer that took over now (its predecessor died) reads the held frame again, whole.
    const successor = new FrameConsumer(memory);
    successor.drain((frame) => {
      assert.equal(frame.decode(Tick).seq, 1);
      return false;
    });
    // Released (its outputs went out), the frame's room is the producer's again; the consumer goes on from 2.
    consumer.releaseHeld();
    assert.equal(indices[1], 2 * frameSize);
    assert.equal(drainAll(consumer)[0]?.decode(Tick).seq, 2);
  });

  it('report what is available in frames and bytes on both sides', () => {
    const { memory } = ring(4096);
    const producer = new FrameProducer(memory);
    const consumer = new FrameConsumer(memory);
    const free = producer.availableWriteBytes();
    assert.equal(free, memory.ring.byteLength - RingOffset.DATA - 1);
    assert.equal(producer.availableWriteFrames(8), Math.floor(free / 104));
    for (let i = 0; i < 5; i++) producer.tryWrite(BytesMessage, new Uint8Array(i * 10));
    const bytes = [0, 10, 20, 30, 40].reduce((sum, n) => sum + alignedFrameSize(n), 0);
    assert.equal(consumer.availableReadBytes(), bytes);
    assert.equal(consumer.availableReadFrames(), 5);
    assert.equal(producer.pendingFrames(), 5);
    assert.equal(producer.availableWriteBytes(), free - bytes);
    assert.equal(
      consumer.drain(() => {}, 2),
      2,
      'batch pop honours maxFrames',
    );
    assert.equal(consumer.availableReadFrames(), 3);
    assert.equal(
      consumer.drain(() => {}),
      3,
    );
    assert.equal(consumer.availableReadBytes(), 0);
    assert.equal(
      consumer.drain(() => {}),
      0,
    );
    assert.equal(producer.availableWriteBytes(), free);
  });

  it(`wrap around many times, in place and across the end, with every byte intact (seed ${TEST_SEED})`, () => {
    const { memory, bytes } = ring(1000, 300);
    const producer = new FrameProducer(memory);
    const consumer = new FrameConsumer(memory);
    const random = new Random(TEST_SEED);
    const scratch = new Uint8Array(300);
    const expected = new Uint8Array(300);
    let sent = 0;
    let received = 0;
    let wrapped = 0;
    let inPlace = 0;
    while (received < 20_000) {
      const burst = random.int(1, 12);
      for (let i = 0; i < burst; i++) {
        const size = fillPayload(TEST_SEED, sent, scratch, 300);
        if (!producer.tryWrite(BytesMessage, scratch.subarray(0, size), { messageId: sent + 1 })) break;
        sent++;
      }
      consumer.drain(
        (frame) => {
          assert.equal(frame.messageId, received + 1, 'in order, none lost or duplicated');
          const size = fillPayload(TEST_SEED, received, expected, 300);
          assert.equal(frame.payloadSize, size);
          assert.deepEqual(frame.payload, expected.subarray(0, size));
          if ((frame.payload.buffer as ArrayBufferLike) === bytes.buffer) inPlace++;
          else wrapped++;
          received++;
        },
        random.int(1, 8),
      );
    }
    assert.ok(wrapped > 100, `frames that straddled the end: ${wrapped}`);
    assert.ok(inPlace > 10_000, `frames read in place: ${inPlace}`);
  });

  it('count a frame whose handler throws as consumed, free its room and rethrow', () => {
    const { memory } = ring(2048);
    const producer = new FrameProducer(memory);
    const consumer = new FrameConsumer(memory);
    for (let i = 0; i < 4; i++) producer.tryWrite(BytesMessage, new Uint8Array([i]));
    const seen: number[] = [];
    assert.throws(
      () =>
        consumer.drain((frame) => {
          seen.push(frame.payload[0] as number);
          if (seen.length === 2) throw new Error('handler failed');
        }),
      /handler failed/,
    );
    assert.deepEqual(seen, [0, 1]);
    assert.equal(consumer.framesRead, 2);
    assert.deepEqual(
      drainAll(consumer).map((f) => f.payload[0]),
      [2, 3],
    );
  });

  it('share its layout with ringbuf.js: a plain RingBuffer reads back the exact frame bytes', () => {
    const { memory } = ring(512);
    const producer = new FrameProducer(memory);
    producer.tryWrite(BytesMessage, new Uint8Array([9, 8, 7]), { destination: 5 });
    const raw = new RingBuffer(memory.ring, Uint8Array);
    assert.equal(raw.availableRead(), alignedFrameSize(3));
    const out = new Uint8Array(raw.availableRead());
    raw.pop(out);
    const view = new DataView(out.buffer);
    assert.equal(view.getUint32(FrameHeader.LENGTH, true), FrameHeader.SIZE + 3);
    assert.equal(view.getUint32(FrameHeader.MAGIC, true), FRAME_MAGIC);
    assert.equal(view.getUint32(FrameHeader.DESTINATION, true), 5);
    assert.deepEqual([...out.subarray(FrameHeader.SIZE, FrameHeader.SIZE + 3)], [9, 8, 7]);
  });
});

describe('malformed frames', () => {
  /** Writes three frames, corrupts the second with `corrupt(frameStart)`, and drains. */
  function corruptSecond(corrupt: (view: DataView, at: number) => void, integrity = false) {
    const { memory } = ring(4096, 512, integrity);
    const producer = new FrameProducer(memory);
    const errors: MalformedFrameError[] = [];
    const consumer = new FrameConsumer(memory, { onMalformed: (e) => errors.push(e) });
    producer.tryWrite(BytesMessage, new Uint8Array([1, 1, 1]));
    const second = RingOffset.DATA + alignedFrameSize(3);
    producer.tryWrite(BytesMessage, new Uint8Array([2, 2, 2, 2]));
    producer.tryWrite(BytesMessage, new Uint8Array([3]));
    corrupt(new DataView(memory.ring), second);
    const delivered = drainAll(consumer).map((f) => f.payload[0]);
    // The ring stays usable afterwards.
    producer.tryWrite(BytesMessage, new Uint8Array([4]));
    const after = drainAll(consumer).map((f) => f.payload[0]);
    return { errors, delivered, after, consumer };
  }

  const cases: [string, (view: DataView, at: number) => void, string, number[], boolean?][] = [
    ['bad magic', (v, at) => v.setUint32(at + FrameHeader.MAGIC, 0xdeadbeef, true), ErrorCode.FrameBadMagic, [1]],
    ['bad version', (v, at) => v.setUint16(at + FrameHeader.VERSION, 2, true), ErrorCode.FrameBadVersion, [1, 3]],
    [
      'length past the ring',
      (v, at) => v.setUint32(at + FrameHeader.LENGTH, 1 << 20, true),
      ErrorCode.FrameBadLength,
      [1],
    ],
    [
      'length shorter than a header',
      (v, at) => v.setUint32(at + FrameHeader.LENGTH, 12, true),
      ErrorCode.FrameBadLength,
      [1],
    ],
    [
      'length past the published data',
      (v, at) => v.setUint32(at + FrameHeader.LENGTH, FrameHeader.SIZE + 300, true),
      ErrorCode.FrameBadLength,
      [1],
    ],
    [
      'payload size mismatch',
      (v, at) => v.setUint32(at + FrameHeader.PAYLOAD_SIZE, 5, true),
      ErrorCode.FramePayloadSizeMismatch,
      [1, 3],
    ],
    ['bad checksum', (v, at) => v.setUint8(at + FrameHeader.SIZE + 1, 0x77), ErrorCode.FrameBadChecksum, [1, 3], true],
    [
      'a cleared checksum flag on an integrity ring',
      (v, at) => v.setUint16(at + FrameHeader.FLAGS, 0, true),
      ErrorCode.FrameBadChecksum,
      [1, 3],
      true,
    ],
    [
      'a header bit flip under integrity',
      (v, at) => v.setUint8(at + FrameHeader.PRIORITY, 1),
      ErrorCode.FrameBadChecksum,
      [1, 3],
      true,
    ],
  ];
  for (const [name, corrupt, code, delivered, integrity] of cases) {
    it(`detects ${name} (${code}), skips it and keeps the ring usable`, () => {
      const result = corruptSecond(corrupt, integrity);
      assert.deepEqual(result.delivered, delivered);
      assert.deepEqual(result.after, [4]);
      assert.equal(result.errors.length, 1);
      const [error] = result.errors;
      assert.ok(error instanceof MalformedFrameError);
      assert.equal(error.code, code);
      assert.equal(error.ringOffset, alignedFrameSize(3));
      assert.ok(error.bytes.length > 0 && error.bytes.length === Math.min(error.skippedBytes, alignedFrameSize(512)));
      assert.equal(result.consumer.malformedFrames, 1);
      assert.equal(result.consumer.skippedBytes, error.skippedBytes);
    });
  }

  it('count malformed frames even without a hook, and survive a hook that throws', () => {
    const { memory } = ring(2048);
    const producer = new FrameProducer(memory);
    producer.tryWrite(BytesMessage, new Uint8Array(8));
    producer.tryWrite(BytesMessage, new Uint8Array(8));
    new DataView(memory.ring).setUint16(RingOffset.DATA + FrameHeader.VERSION, 9, true);
    const silent = new FrameConsumer(memory);
    assert.equal(
      silent.drain(() => {}),
      1,
    );
    assert.equal(silent.malformedFrames, 1);

    producer.tryWrite(BytesMessage, new Uint8Array(8));
    producer.tryWrite(BytesMessage, new Uint8Array([5]));
    const at = RingOffset.DATA + 2 * alignedFrameSize(8);
    new DataView(memory.ring).setUint16(at + FrameHeader.VERSION, 9, true);
    const throwing = new FrameConsumer(memory, {
      onMalformed: () => {
        throw new Error('dead-letter sink down');
      },
    });
    assert.throws(() => throwing.drain(() => {}), /dead-letter sink down/);
    assert.deepEqual(
      drainAll(throwing).map((f) => f.payload[0]),
      [5],
      'the bad frame is not read twice',
    );
  });

  it(`never throws or delivers a corrupt frame under random corruption (seed ${TEST_SEED}, 3000 rounds)`, () => {
    const random = new Random(TEST_SEED);
    const { memory, indices, bytes } = ring(4096, 400, true);
    const producer = new FrameProducer(memory);
    const errors = new Map<string, number>();
    const consumer = new FrameConsumer(memory, {
      onMalformed: (e) => errors.set(e.code, (errors.get(e.code) ?? 0) + 1),
    });
    const payload = new Uint8Array(400);
    const expected = new Uint8Array(400);
    let next = 0;
    let delivered = 0;
    for (let round = 0; round < 3_000; round++) {
      const start = Atomics.load(indices, 0);
      const count = random.int(1, 6);
      for (let i = 0; i < count; i++) {
        const size = fillPayload(TEST_SEED, next, payload, 400);
        if (!producer.tryWrite(BytesMessage, payload.subarray(0, size), { messageId: next + 1 })) break;
        next++;
      }
      const end = Atomics.load(indices, 0);
      const span = (end - start + 4096 + 8) % (memory.ring.byteLength - RingOffset.DATA);
      const flips = random.next() < 0.5 ? random.int(1, 3) : 0;
      for (let f = 0; f < flips && span > 0; f++) {
        const offset =
          RingOffset.DATA + ((start + random.int(0, span - 1)) % (memory.ring.byteLength - RingOffset.DATA));
        bytes[offset] = (bytes[offset] as number) ^ (1 << random.int(0, 7));
      }
      consumer.drain((frame) => {
        const id = frame.messageId - 1;
        const size = fillPayload(TEST_SEED, id, expected, 400);
        assert.equal(frame.payloadSize, size, `frame ${id} size`);
        assert.deepEqual(frame.payload, expected.subarray(0, size), `frame ${id} content`);
        delivered++;
      });
    }
    const total = [...errors.values()].reduce((a, b) => a + b, 0);
    assert.equal(consumer.malformedFrames, total);
    assert.ok(total > 500, `corruptions detected: ${JSON.stringify([...errors])}`);
    assert.ok(delivered > next / 3, `delivered ${delivered} of ${next}`);
    // After all that, the ring still works.
    const size = fillPayload(TEST_SEED, next, payload, 400);
    assert.ok(producer.tryWrite(BytesMessage, payload.subarray(0, size), { messageId: next + 1 }));
    assert.equal(consumer.pop()?.messageId, next + 1);
  });
});
