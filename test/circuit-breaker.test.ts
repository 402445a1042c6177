import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CircuitBreaker,
  CircuitOpenError,
  type CircuitState,
  ErrorCode,
  HandlerFailedError,
  RingKernelRuntime,
} from '../src/internal.js';
import { Accumulator } from './fixtures/kernels.js';
import { Random, TEST_SEED } from './support/random.js';

function clocked(options: ConstructorParameters<typeof CircuitBreaker>[0] = {}) {
  const clock = { now: 0 };
  const breaker = new CircuitBreaker({ ...options, now: () => clock.now });
  const changes: string[] = [];
  breaker.on('stateChange', (next: CircuitState, previous: CircuitState) => changes.push(`${previous}→${next}`));
  return { clock, breaker, changes };
}

const fail = (): Promise<never> => Promise.reject(new Error('boom'));
const succeed = (): Promise<string> => Promise.resolve('ok');

describe('CircuitBreaker', () => {
  it('opens after the threshold of failures within the window, and refuses fast with a typed error', async () => {
    const { clock, breaker, changes } = clocked({ failureThreshold: 3, windowMs: 1000, recoveryTimeoutMs: 5000 });
    for (let i = 0; i < 2; i++) await assert.rejects(breaker.execute(fail), /boom/);
    assert.equal(breaker.state, 'Closed');
    clock.now = 900;
    await assert.rejects(breaker.execute(fail), /boom/);
    assert.equal(breaker.state, 'Open');
    let ran = false;
    await assert.rejects(
      breaker.execute(() => {
        ran = true;
      }),
      (error: unknown) =>
        error instanceof CircuitOpenError && error.code === ErrorCode.CircuitOpen && error.retryAt === 5900,
    );
    assert.equal(ran, false, 'an open circuit does not run the operation');
    assert.deepEqual(changes, ['Closed→Open']);
    assert.equal(breaker.stats().rejected, 1);
    assert.equal(breaker.stats().trips, 1);
  });

  it('does not open for failures spread wider than the window', async () => {
    const { clock, breaker } = clocked({ failureThreshold: 3, windowMs: 1000 });
    for (let i = 0; i < 20; i++) {
      clock.now = i * 600; // two failures per window at most
      await assert.rejects(breaker.execute(fail), /boom/);
      assert.equal(breaker.state, 'Closed', `failure ${i}`);
    }
    assert.ok(breaker.stats().failuresInWindow <= 2);
  });

  it('half-opens after the recovery timeout, closes on successful probes, and reopens on a failed one', async () => {
    const { clock, breaker, changes } = clocked({ failureThreshold: 1, recoveryTimeoutMs: 100, halfOpenProbes: 2 });
    await assert.rejects(breaker.execute(fail));
    clock.now = 99;
    assert.equal(breaker.state, 'Open');
    clock.now = 100;
    assert.equal(breaker.state, 'HalfOpen');
    // Two probes at once are allowed; a third is refused.
    let release: (() => void) | undefined;
    const slow = breaker.execute(() => new Promise<string>((resolve) => (release = () => resolve('slow'))));
    const second = breaker.execute(succeed);
    await assert.rejects(breaker.execute(succeed), CircuitOpenError);
    assert.equal(await second, 'ok');
    assert.equal(breaker.state, 'HalfOpen', 'one probe success of two is not enough');
    release?.();
    assert.equal(await slow, 'slow');
    assert.equal(breaker.state, 'Closed');
    await assert.rejects(breaker.execute(fail));
    clock.now = 300;
    assert.equal(breaker.state, 'HalfOpen');
    await assert.rejects(breaker.execute(fail));
    assert.equal(breaker.state, 'Open', 'a failed probe reopens');
    assert.deepEqual(changes, [
      'Closed→Open',
      'Open→HalfOpen',
      'HalfOpen→Closed',
      'Closed→Open',
      'Open→HalfOpen',
      'HalfOpen→Open',
    ]);
  });

  it('validates its options with messages naming them', () => {
    assert.throws(
      () => new CircuitBreaker({ failureThreshold: 0 }),
      /failureThreshold must be a positive integer, got 0/,
    );
    assert.throws(() => new CircuitBreaker({ windowMs: -1 }), /windowMs must be a positive number/);
    assert.throws(() => new CircuitBreaker({ halfOpenProbes: 1.5 }), /halfOpenProbes must be a positive integer/);
    assert.throws(
      () => new CircuitBreaker({ recoveryTimeoutMs: '1s' as never }),
      /recoveryTimeoutMs must be a number, got string/,
    );
  });

  it(`never runs an operation while open, under random outcomes and times (seed ${TEST_SEED})`, async () => {
    const random = new Random(TEST_SEED);
    const { clock, breaker } = clocked({ failureThreshold: 4, windowMs: 500, recoveryTimeoutMs: 200 });
    let ran = 0;
    let refused = 0;
    for (let i = 0; i < 5000; i++) {
      clock.now += random.int(0, 60);
      const wasOpen = breaker.state === 'Open';
      try {
        await breaker.execute(() => {
          ran++;
          assert.equal(wasOpen, false, 'ran while open');
          if (random.next() < 0.3) throw new Error('boom');
        });
      } catch (error) {
        if (error instanceof CircuitOpenError) refused++;
      }
    }
    const stats = breaker.stats();
    assert.equal(stats.successes + stats.failures, ran);
    assert.equal(stats.rejected, refused);
    assert.ok(stats.trips > 10 && refused > 100, `trips ${stats.trips}, refused ${refused}`);
  });
});

describe('CircuitBreaker guarding kernel calls', () => {
  it('opens after failing calls, refuses the next without sending it, and closes again after a good probe', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    try {
      const handle = await runtime.launch(Accumulator, 1, 1, { autoActivate: true });
      const breaker = runtime.circuitBreaker('accumulator', {
        failureThreshold: 2,
        windowMs: 60_000,
        recoveryTimeoutMs: 50,
      });
      assert.equal(runtime.circuitBreaker('accumulator'), breaker, 'one breaker per name');
      for (let seq = 0; seq < 2; seq++) {
        await assert.rejects(handle.call({ sender: 0, seq, value: -1 }, { breaker }), HandlerFailedError);
      }
      assert.equal(breaker.state, 'Open');
      const sentBefore = handle.metrics().messagesSent;
      await assert.rejects(handle.call({ sender: 0, seq: 9, value: 1 }, { breaker }), CircuitOpenError);
      assert.equal(handle.metrics().messagesSent, sentBefore, 'a refused call never reached the kernel');
      await new Promise((resolve) => setTimeout(resolve, 60));
      assert.equal((await handle.call({ sender: 0, seq: 10, value: 4 }, { breaker })).total, 4);
      assert.equal(breaker.state, 'Closed');
    } finally {
      await runtime.shutdown();
    }
  });
});
