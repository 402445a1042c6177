import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { RingKernelRuntime } from '../src/internal.js';
import { Accumulator } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';

function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const family = parsePrometheusTextFormat(text).find((f) => f.name === name);
  const match = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return match?.value === undefined ? undefined : Number(match.value);
}

describe('PrometheusExporter', () => {
  it('exposes kernel counters, queues, latency, dead letters and breakers that a Prometheus parser reads back', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    try {
      const handle = await runtime.launch(Accumulator, 1, 1, { name: 'metered', autoActivate: true });
      for (let seq = 0; seq < 40; seq++) await handle.call({ sender: 0, seq, value: 1 });
      await assert.rejects(handle.call({ sender: 0, seq: 99, value: -1 }));
      runtime.circuitBreaker('guard').recordFailure();
      // The failed call's counters and dead letter trail its rejection by a moment (end of batch, control port).
      await eventually(() => {
        assert.equal(handle.counters().failed, 1);
        assert.equal(runtime.deadLetters.total, 1);
      });
      const text = await runtime.prometheusExporter().gather();
      const families = parsePrometheusTextFormat(text);
      const types = Object.fromEntries(families.map((f) => [f.name, f.type]));
      assert.equal(types.ringkernel_kernel_messages_total, 'COUNTER');
      assert.equal(types.ringkernel_kernel_queue_depth, 'GAUGE');
      const counters = handle.counters();
      assert.equal(
        sample(text, 'ringkernel_kernel_messages_total', { kernel: 'metered', outcome: 'processed' }),
        counters.processed,
      );
      assert.equal(sample(text, 'ringkernel_kernel_messages_total', { kernel: 'metered', outcome: 'failed' }), 1);
      assert.equal(sample(text, 'ringkernel_kernel_queue_depth', { kernel: 'metered', queue: 'input' }), 0);
      assert.ok(
        (sample(text, 'ringkernel_kernel_handler_latency_seconds', { kernel: 'metered', quantile: '0.5' }) ?? 0) > 0,
      );
      assert.equal(sample(text, 'ringkernel_kernels', { status: 'Active' }), 1);
      assert.equal(sample(text, 'ringkernel_dead_letters_total', { reason: 'handler-error' }), 1);
      assert.equal(sample(text, 'ringkernel_circuit_breaker_state', { name: 'guard' }), 0);
      assert.equal(sample(text, 'ringkernel_kernel_restarts', { kernel: 'metered' }), 0);
      assert.equal(sample(text, 'ringkernel_degradation_level', {}), 0);
      assert.ok((sample(text, 'ringkernel_memory_bytes', { kind: 'ring' }) ?? 0) > 0);
      assert.equal(sample(text, 'ringkernel_memory_bytes', { kind: 'device-buffer' }), 0);

      const server = await runtime.prometheusExporter().serve(0);
      try {
        const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
        assert.equal(response.status, 200);
        assert.match(response.headers.get('content-type') ?? '', /text\/plain/);
        const served = await response.text();
        assert.equal(
          sample(served, 'ringkernel_kernel_messages_total', { kernel: 'metered', outcome: 'received' }),
          41,
        );
        assert.equal((await fetch(`http://127.0.0.1:${server.port}/nope`)).status, 404);
      } finally {
        await server.close();
      }
    } finally {
      await runtime.shutdown();
    }
  });
});
