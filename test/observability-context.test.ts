/**
 * `runtime.observabilityContext()`: the application's own spans on the runtime's tracer, exported where the
 * runtime's go (a real OTLP receiver), enclosing the kernel spans of the messages sent while they are active.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RingKernelRuntime } from '../src/index.js';
import { Accumulator } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';
import { OtlpReceiver } from './support/otlp-receiver.js';

describe('runtime.observabilityContext()', () => {
  it("a user's span encloses the spans of the messages sent while it is active, across awaits", async () => {
    const receiver = await OtlpReceiver.start();
    const runtime = await RingKernelRuntime.builder()
      .config({ workers: 1 })
      .tracing({ endpoint: receiver.url, serviceName: 'batcher', exportIntervalMs: 20 })
      .build();
    try {
      const kernel = await runtime.launch(Accumulator, 1, 1, { name: 'scorer', autoActivate: true });
      const obs = runtime.observabilityContext();
      assert.equal(obs.enabled, true);
      await obs.startActiveSpan('process_batch', { 'batch.size': 3 }, async (span) => {
        for (let seq = 0; seq < 3; seq++) {
          await kernel.call({ sender: 0, seq, value: 1 });
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        span.setAttribute('batch.ok', true);
        span.recordException(new Error('one item was late'));
        span.end();
      });
      // Sent outside any span: a trace of its own.
      await kernel.call({ sender: 0, seq: 9, value: 1 });
      const batch = await eventually(async () => {
        await runtime.tracing?.flush();
        const [found] = receiver.named('process_batch');
        assert.ok(found, 'the user span arrived');
        assert.equal(receiver.named('call scorer').length, 4);
        return found;
      }, 10_000);
      assert.equal(batch.parentSpanId, '');
      assert.equal(batch.attributes['batch.size'], 3);
      assert.equal(batch.attributes['batch.ok'], true);
      assert.equal(batch.resource['service.name'], 'batcher');
      const calls = receiver.named('call scorer');
      const inside = calls.filter((call) => call.parentSpanId === batch.spanId);
      assert.equal(inside.length, 3, 'the three calls made inside are its children');
      assert.ok(inside.every((call) => call.traceId === batch.traceId));
      const outside = calls.filter((call) => call.parentSpanId !== batch.spanId);
      assert.equal(outside.length, 1);
      assert.notEqual(outside[0]?.traceId, batch.traceId);
      // The kernel's processing spans hang off the calls, in the same trace.
      const processes = receiver.named('process scorer').filter((p) => p.traceId === batch.traceId);
      assert.equal(processes.length, 3);
      // withSpan: a span made with startSpan, active only inside.
      const manual = obs.startSpan('manual');
      await obs.withSpan(manual, () => kernel.call({ sender: 0, seq: 10, value: 1 }));
      manual.end();
      await eventually(async () => {
        await runtime.tracing?.flush();
        const [span] = receiver.named('manual');
        assert.ok(span);
        assert.equal(
          receiver.spans.filter((s) => s.parentSpanId === span.spanId && s.name === 'call scorer').length,
          1,
        );
      }, 10_000);
    } finally {
      await runtime.shutdown();
      await receiver.close();
    }
  });

  it('is a no-op when tracing is off: spans record nothing, functions just run', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    try {
      const obs = runtime.observabilityContext();
      assert.equal(obs.enabled, false);
      const span = obs.startSpan('nothing', { a: 1 });
      assert.equal(span.isRecording(), false);
      span.end();
      assert.equal(await obs.startActiveSpan('nothing', undefined, async () => 42), 42);
      assert.equal(
        obs.withSpan(span, () => 'ran'),
        'ran',
      );
    } finally {
      await runtime.shutdown();
    }
  });
});
