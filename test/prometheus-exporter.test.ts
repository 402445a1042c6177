import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { Counter, Registry } from 'prom-client';
import { RingKernelRuntime } from '../src/internal.js';
import { Accumulator, AddOne, Double, KILL_WORKER, Sink } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';
import { OtlpReceiver } from './support/otlp-receiver.js';

function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const family = parsePrometheusTextFormat(text).find((f) => f.name === name);
  const match = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return match?.value === undefined ? undefined : Number(match.value);
}

/** A histogram's count and `+Inf` bucket, and whether its buckets never decrease. */
function histogram(text: string, name: string, kernel: string): { count: number; inf: number; monotone: boolean } {
  const buckets = [...text.matchAll(new RegExp(`^${name}_bucket\\{kernel="${kernel}",le="([^"]+)"\\} (\\d+)$`, 'gm'))];
  const values = buckets.map((m) => Number(m[2]));
  return {
    count: Number(new RegExp(`^${name}_count\\{kernel="${kernel}"\\} (\\d+)$`, 'm').exec(text)?.[1]),
    inf: Number(buckets.find((m) => m[1] === '+Inf')?.[2]),
    monotone: values.every((v, i) => i === 0 || v >= (values[i - 1] as number)),
  };
}

describe('PrometheusExporter', () => {
  it('exposes kernel counters, queues, latency histograms, dead letters and breakers that a Prometheus parser reads back', async () => {
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
      assert.equal(types.ringkernel_kernel_restarts_total, 'COUNTER');
      assert.equal(types.ringkernel_kernel_migrations_total, 'COUNTER');
      assert.equal(types.ringkernel_kernel_queue_depth, 'GAUGE');
      assert.equal(types.ringkernel_kernel_handler_latency_seconds, 'HISTOGRAM');
      assert.equal(types.ringkernel_kernel_call_duration_seconds, 'HISTOGRAM');
      assert.doesNotMatch(text, /quantile=/);
      const counters = handle.counters();
      assert.equal(
        sample(text, 'ringkernel_kernel_messages_total', { kernel: 'metered', outcome: 'processed' }),
        counters.processed,
      );
      assert.equal(sample(text, 'ringkernel_kernel_messages_total', { kernel: 'metered', outcome: 'failed' }), 1);
      assert.equal(sample(text, 'ringkernel_kernel_queue_depth', { kernel: 'metered', queue: 'input' }), 0);
      // One message in eight is timed in the kernel; every call answered with a result on the host.
      const handler = histogram(text, 'ringkernel_kernel_handler_latency_seconds', 'metered');
      assert.equal(handler.count, handle.metrics().latency.samples);
      assert.ok(handler.count >= 5 && handler.inf === handler.count && handler.monotone, JSON.stringify(handler));
      const calls = histogram(text, 'ringkernel_kernel_call_duration_seconds', 'metered');
      assert.deepEqual(calls, { count: 40, inf: 40, monotone: true });
      const callSum = Number(
        /^ringkernel_kernel_call_duration_seconds_sum\{kernel="metered"\} (\S+)$/m.exec(text)?.[1],
      );
      assert.ok(callSum > 0 && callSum < 40 * 30, `call round trips sum to ${callSum} s`);
      assert.equal(sample(text, 'ringkernel_kernels', { status: 'Active' }), 1);
      assert.equal(sample(text, 'ringkernel_dead_letters_total', { reason: 'handler-error' }), 1);
      assert.equal(sample(text, 'ringkernel_circuit_breaker_state', { name: 'guard' }), 0);
      assert.equal(sample(text, 'ringkernel_kernel_restarts_total', { kernel: 'metered' }), 0);
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
        assert.match(await (await fetch(`http://127.0.0.1:${server.port}/`)).text(), /\/metrics.*\/healthz.*\/readyz/);
      } finally {
        await server.close();
      }
    } finally {
      await runtime.shutdown();
    }
  });

  it('times kernel-to-kernel hops into each kernel as a histogram; host sends are not hops', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
    try {
      const first = await runtime.launch(AddOne, 1, 1, { name: 'first', autoActivate: true });
      const second = await runtime.launch(Double, 1, 1, { name: 'second', autoActivate: true });
      const last = await runtime.launch(Sink, 1, 1, { name: 'last', autoActivate: true });
      await runtime.connect(first, second);
      await runtime.connect(second, last);
      for (let seq = 0; seq < 400; seq++) await first.send({ sender: 0, seq, value: seq });
      await eventually(() => assert.equal(last.counters().processed, 400), 20_000);
      const text = await runtime.prometheusExporter().gather();
      const hops = (kernel: string) => histogram(text, 'ringkernel_kernel_hop_latency_seconds', kernel);
      assert.equal(hops('first').count, 0, 'fed by the host only');
      for (const kernel of ['second', 'last']) {
        const hop = hops(kernel);
        // One frame in eight is timed: 50 of 400, give or take the sampling phase.
        assert.ok(hop.count >= 45 && hop.count <= 55 && hop.inf === hop.count && hop.monotone, JSON.stringify(hop));
        const sum = Number(
          new RegExp(`^ringkernel_kernel_hop_latency_seconds_sum\\{kernel="${kernel}"\\} (\\S+)$`, 'm').exec(text)?.[1],
        );
        assert.ok(sum >= 0 && sum / hop.count < 5, `mean hop ${sum / hop.count} s`);
      }
    } finally {
      await runtime.shutdown();
    }
  });

  it("keeps an ended kernel's final series for two more scrapes, then lets it go", async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    try {
      const exporter = runtime.prometheusExporter();
      const brief = await runtime.launch(Accumulator, 1, 1, { name: 'brief', autoActivate: true });
      for (let seq = 0; seq < 7; seq++) await brief.call({ sender: 0, seq, value: 1 });
      // Ends between two scrapes: never scraped alive.
      await brief.terminate();
      assert.throws(() => runtime.kernel('brief'));
      const processed = (text: string) =>
        sample(text, 'ringkernel_kernel_messages_total', { kernel: 'brief', outcome: 'processed' });
      const first = await exporter.gather();
      assert.equal(processed(first), 7);
      assert.equal(histogram(first, 'ringkernel_kernel_call_duration_seconds', 'brief').count, 7);
      // Gauges of what no longer exists are gone at once.
      assert.equal(sample(first, 'ringkernel_kernel_queue_depth', { kernel: 'brief', queue: 'input' }), undefined);
      assert.equal(processed(await exporter.gather()), 7);
      assert.equal(processed(await exporter.gather()), undefined);
      // Launched again under the name: a new series (a counter reset), the old one does not linger beside it.
      const again = await runtime.launch(Accumulator, 1, 1, { name: 'brief', autoActivate: true });
      await again.call({ sender: 0, seq: 0, value: 1 });
      await again.terminate();
      const relaunched = runtime.launch(Accumulator, 1, 1, { name: 'brief', autoActivate: true });
      await relaunched;
      assert.equal(processed(await exporter.gather()), 0);
    } finally {
      await runtime.shutdown();
    }
  });

  it("registers into the app's own registry with process metrics, and shutdown leaves that registry alone", async () => {
    const registry = new Registry();
    const mine = new Counter({ name: 'app_orders_total', help: 'Orders taken.', registers: [registry] });
    mine.inc(3);
    const receiver = await OtlpReceiver.start();
    const runtime = await RingKernelRuntime.builder()
      .config({ workers: 1 })
      .tracing({ endpoint: receiver.url })
      .build();
    const exporter = runtime.prometheusExporter({ registry, processMetrics: true });
    assert.equal(exporter.registry, registry);
    assert.equal(runtime.prometheusExporter(), exporter);
    assert.throws(
      () => runtime.prometheusExporter({ processMetrics: true }),
      /prometheusExporter options apply when it is first made/,
    );
    const handle = await runtime.launch(Accumulator, 1, 1, { name: 'k', autoActivate: true });
    await handle.call({ sender: 0, seq: 0, value: 1 });
    // The counters are published at the end of the kernel's batch, a moment after the reply.
    const text = await eventually(async () => {
      const scraped = await registry.metrics();
      assert.equal(sample(scraped, 'ringkernel_kernel_messages_total', { kernel: 'k', outcome: 'processed' }), 1);
      return scraped;
    });
    assert.equal(sample(text, 'app_orders_total', {}), 3);
    assert.ok((sample(text, 'process_cpu_seconds_total', {}) ?? 0) > 0);
    assert.ok((sample(text, 'nodejs_heap_size_used_bytes', {}) ?? 0) > 0);
    // Traced: the host's telemetry ring and the kernel's are memory the runtime allocated.
    const { hostRingCapacity, ringCapacity } = runtime.tracing?.options ?? { hostRingCapacity: 0, ringCapacity: 0 };
    assert.ok(
      (sample(text, 'ringkernel_memory_bytes', { kind: 'telemetry' }) ?? 0) > (hostRingCapacity + ringCapacity) * 64,
    );
    assert.equal(sample(text, 'ringkernel_tracing_records_dropped_total', {}), 0);
    // Sheds at the origin, by reason: the counters stats() keeps.
    const shed = runtime.tracing?.stats();
    for (const [reason, count] of [
      ['rate', shed?.tracesShedForRate],
      ['room', shed?.tracesShedForRoom],
      ['export', shed?.tracesShedForExport],
    ] as const) {
      assert.equal(sample(text, 'ringkernel_tracing_traces_shed_total', { reason }), count, reason);
    }
    await runtime.shutdown();
    await receiver.close();
    const after = await registry.metrics();
    assert.equal(sample(after, 'app_orders_total', {}), 3, "the app's own metric survives the runtime");
    assert.match(after, /^# TYPE ringkernel_kernel_messages_total counter$/m);
  });

  it('validates its options and serve()’s port and host with messages naming the field', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    try {
      assert.throws(
        () => runtime.prometheusExporter({ registry: {} as Registry }),
        /registry must be a prom-client Registry/,
      );
      assert.throws(
        () => runtime.prometheusExporter({ processMetrics: 1 as never }),
        /processMetrics must be a boolean/,
      );
      assert.throws(() => runtime.prometheusExporter({ port: 1 } as never), /prometheusExporter.port is not an option/);
      const exporter = runtime.prometheusExporter();
      await assert.rejects(exporter.serve({ port: 70_000 }), /port must be an integer in \[0, 65535\], got 70000/);
      await assert.rejects(exporter.serve({ host: '' }), /host must be a non-empty string/);
      // Bound to every interface: reachable on the loopback address too.
      const server = await exporter.serve({ port: 0, host: '0.0.0.0' });
      try {
        assert.equal((await fetch(`http://127.0.0.1:${server.port}/metrics`)).status, 200);
      } finally {
        await server.close();
      }
    } finally {
      await runtime.shutdown();
    }
  });

  it('answers /healthz and /readyz from the health checker: a killed worker makes it unready, shutdown not alive', async () => {
    const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    const server = await runtime.prometheusExporter().serve(0);
    const probe = async (path: string) => {
      const response = await fetch(`http://127.0.0.1:${server.port}${path}`);
      assert.match(response.headers.get('content-type') ?? '', /application\/json/);
      const body = (await response.json()) as {
        status: string;
        checks: { name: string; kind: string; status: string; reason?: string }[];
      };
      return { code: response.status, body };
    };
    try {
      const handle = await runtime.launch(Accumulator, 1, 1, { name: 'doomed', autoActivate: true });
      await handle.call({ sender: 0, seq: 0, value: 1 });
      const live = await probe('/healthz');
      assert.equal(live.code, 200);
      assert.equal(live.body.status, 'pass');
      assert.ok(live.body.checks.every((check) => check.kind === 'liveness'));
      assert.ok(live.body.checks.some((check) => check.name === 'kernels' && check.status === 'Healthy'));
      const ready = await probe('/readyz');
      assert.equal(ready.code, 200, JSON.stringify(ready.body));
      assert.ok(ready.body.checks.some((check) => check.name === 'queues' && check.kind === 'readiness'));

      // A real fault: the kernel's handler kills its worker thread.
      await assert.rejects(handle.call({ sender: 0, seq: 1, value: KILL_WORKER }));
      await eventually(() => assert.equal(handle.status, 'Failed'), 10_000);
      const unready = await probe('/readyz');
      assert.equal(unready.code, 503);
      assert.equal(unready.body.status, 'fail');
      const kernels = unready.body.checks.find((check) => check.name === 'kernels');
      assert.equal(kernels?.status, 'Degraded');
      assert.match(kernels?.reason ?? '', /1 kernel\(s\) failed/);
      // Degraded is still alive: no restart asked for.
      assert.equal((await probe('/healthz')).code, 200);

      await runtime.shutdown();
      const stopped = await probe('/healthz');
      assert.equal(stopped.code, 503);
      assert.deepEqual(
        stopped.body.checks.find((check) => check.name === 'runtime'),
        { name: 'runtime', kind: 'liveness', status: 'Unhealthy', reason: 'runtime is Stopped' },
      );
    } finally {
      await server.close();
      await runtime.shutdown();
    }
  });
});
