import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger, PRESETS, RingKernelRuntime } from '../src/internal.js';
import { Accumulator } from './fixtures/kernels.js';

describe('builder presets', () => {
  it('development: two workers, debug logs, a short termination timeout, a reporting watchdog', async () => {
    const lines: string[] = [];
    const original = console.error;
    console.error = (line: string) => lines.push(line);
    const runtime = await RingKernelRuntime.builder().development().build();
    try {
      assert.equal(runtime.preset, 'development');
      assert.ok(runtime.config.workers <= 2);
      assert.equal(runtime.config.logLevel, 'debug');
      assert.equal(runtime.config.terminationTimeout, 2_000);
      assert.equal(runtime.tracing?.options.sampler, 'parentbased_always_on', 'everything traced');
      const watchdog = runtime.kernelWatchdog();
      assert.equal(watchdog.policy, 'report');
      assert.equal(watchdog.heartbeatTimeout, 5_000);
      assert.equal(watchdog.intervalMs, 1_000);
      assert.equal(runtime.healthChecker().intervalMs, undefined);
      // Verbose: a launch and a dead letter are logged.
      const handle = await runtime.launch(Accumulator, 1, 1, { name: 'dev', autoActivate: true });
      await assert.rejects(handle.call({ sender: 0, seq: 0, value: -1 }));
    } finally {
      await runtime.shutdown();
      console.error = original;
    }
    assert.ok(
      lines.some((line) => /^ringkernel debug: launched kernel 'dev' \(test.accumulator\) on worker \d+$/.test(line)),
    );
    assert.ok(lines.some((line) => line.startsWith("ringkernel debug: dead letter from 'dev' (handler-error)")));
  });

  it('production: health checks, a restarting watchdog, load shedding and graceful shutdown all running', async () => {
    const signalHandlers = process.listenerCount('SIGTERM');
    const runtime = await RingKernelRuntime.builder().production().config({ logLevel: 'silent' }).build();
    try {
      assert.equal(runtime.preset, 'production');
      assert.equal(runtime.config.logLevel, 'silent', 'an explicit setting overrides the preset');
      assert.equal(runtime.config.terminationTimeout, 10_000);
      assert.equal(runtime.tracing?.options.sampler, 'parentbased_traceidratio');
      assert.equal(runtime.tracing?.options.samplerRatio, 0.1, '10 % of messages traced');
      assert.equal(runtime.healthChecker().intervalMs, 5_000);
      const watchdog = runtime.kernelWatchdog();
      assert.equal(watchdog.policy, 'restart');
      assert.equal(watchdog.heartbeatTimeout, 30_000);
      assert.equal(watchdog.intervalMs, 1_000);
      assert.equal(runtime.degradationManager().intervalMs, 1_000);
      assert.equal(process.listenerCount('SIGTERM'), signalHandlers + 1);
    } finally {
      await runtime.shutdown();
    }
    assert.equal(process.listenerCount('SIGTERM'), signalHandlers, 'shutdown removes the signal handlers');
  });

  it('highPerformance: no latency sampling, deep queues, quiet, no monitors; explicit config wins in any order', async () => {
    const runtime = await RingKernelRuntime.builder()
      .config({ defaultQueueCapacity: 1024 })
      .highPerformance()
      .config({ workers: 1 })
      .build();
    try {
      assert.equal(runtime.preset, 'highPerformance');
      assert.equal(runtime.config.enableTelemetry, false);
      assert.equal(runtime.tracing, undefined, 'tracing off');
      assert.equal(runtime.config.defaultQueueCapacity, 1024, 'set before the preset, still wins');
      assert.equal(runtime.config.workers, 1);
      assert.equal(runtime.config.logLevel, 'error');
      assert.equal(runtime.kernelWatchdog().intervalMs, undefined);
      assert.equal(runtime.healthChecker().intervalMs, undefined);
      const handle = await runtime.launch(Accumulator, 1, 1, { autoActivate: true });
      for (let seq = 0; seq < 100; seq++) await handle.call({ sender: 0, seq, value: 1 });
      assert.equal(handle.metrics().latency.samples, 0, 'handler latency is not sampled');
    } finally {
      await runtime.shutdown();
    }
    assert.deepEqual(PRESETS.highPerformance.config, {
      logLevel: 'error',
      enableTelemetry: false,
      defaultQueueCapacity: 16_384,
    });
  });

  it('createLogger writes the levels at or above its own, and nothing when silent', () => {
    const lines: string[] = [];
    const log = createLogger('warn', (line) => lines.push(line));
    log.error('e');
    log.warn('w');
    log.info('i');
    log.debug('d');
    createLogger('silent', (line) => lines.push(line)).error('never');
    assert.deepEqual(lines, ['ringkernel error: e', 'ringkernel warn: w']);
    assert.throws(
      () => RingKernelRuntime.builder().config({ logLevel: 'loud' as never }),
      /config.logLevel must be one of/,
    );
  });
});
