import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClockSkewError, compareHlc, ErrorCode, type HlcTimestamp, HybridLogicalClock } from '../src/internal.js';
import { Random, TEST_SEED } from './support/random.js';

describe('HybridLogicalClock', () => {
  it('ticks strictly forward even when the wall clock stands still or goes back', () => {
    let wall = 1_000_000;
    const clock = new HybridLogicalClock(3, { now: () => wall });
    const a = clock.now();
    const b = clock.now();
    wall -= 500; // NTP step backwards
    const c = clock.now();
    wall += 10_000;
    const d = clock.now();
    assert.deepEqual(
      [a, b, c],
      [
        { physicalUs: 1_000_000, logical: 0, node: 3 },
        { physicalUs: 1_000_000, logical: 1, node: 3 },
        { physicalUs: 1_000_000, logical: 2, node: 3 },
      ],
    );
    assert.deepEqual(d, { physicalUs: 1_009_500, logical: 0, node: 3 });
  });

  it('stamps a receive after the send, whatever the two wall clocks say', () => {
    const sender = new HybridLogicalClock(1, { now: () => 5_000 });
    const receiver = new HybridLogicalClock(2, { now: () => 4_000 }); // 1 ms behind
    const sent = sender.now();
    const received = receiver.update(sent);
    assert.ok(compareHlc(received, sent) > 0);
    assert.deepEqual(received, { physicalUs: 5_000, logical: 1, node: 2 });
    assert.ok(compareHlc(receiver.now(), received) > 0);
  });

  it('rejects a remote timestamp past the skew bound with a typed error and stays unchanged', () => {
    const clock = new HybridLogicalClock(1, { now: () => 1_000, maxSkewUs: 500 });
    const before = clock.now();
    assert.throws(
      () => clock.update({ physicalUs: 1_501, logical: 0, node: 9 }),
      (error: unknown) =>
        error instanceof ClockSkewError &&
        error.code === ErrorCode.ClockSkew &&
        error.skewUs === 501 &&
        error.errno === 301,
    );
    assert.deepEqual(
      { physicalUs: clock.physicalUs, logical: clock.logical },
      { physicalUs: before.physicalUs, logical: before.logical },
    );
    assert.equal(
      clock.update({ physicalUs: 1_500, logical: 7, node: 9 }).logical,
      8,
      'exactly at the bound is accepted',
    );
  });

  it('validates its options up front', () => {
    assert.throws(() => new HybridLogicalClock(-1), /node must be an integer in \[0, 2\^32\), got -1/);
    assert.throws(() => new HybridLogicalClock(1.5), RangeError);
    assert.throws(() => new HybridLogicalClock(1, { maxSkewUs: -1 }), /maxSkewUs must be a non-negative number/);
  });

  it(`keeps causality across random message exchanges between drifting clocks (seed ${TEST_SEED})`, () => {
    const random = new Random(TEST_SEED);
    const walls = [0, 0, 0, 0].map(() => 1_000_000 + random.int(0, 5_000));
    const clocks = walls.map((_, i) => new HybridLogicalClock(i, { now: () => walls[i] as number, maxSkewUs: 1e9 }));
    const last: HlcTimestamp[] = clocks.map((c) => c.now());
    for (let step = 0; step < 20_000; step++) {
      const i = random.int(0, 3);
      walls[i] = (walls[i] as number) + random.int(-3, 5); // drift, sometimes backwards
      const from = clocks[i] as HybridLogicalClock;
      const sent = from.now();
      assert.ok(compareHlc(sent, last[i] as HlcTimestamp) > 0, 'local monotonic');
      last[i] = sent;
      const j = random.int(0, 3);
      if (j === i) continue;
      const received = (clocks[j] as HybridLogicalClock).update(sent);
      assert.ok(
        received.physicalUs > sent.physicalUs ||
          (received.physicalUs === sent.physicalUs && received.logical > sent.logical),
      );
      assert.ok(compareHlc(received, last[j] as HlcTimestamp) > 0, 'receiver monotonic');
      last[j] = received;
    }
  });
});
