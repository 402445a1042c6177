/**
 * Tracing, end to end: real kernels in real workers, the real OTLP/HTTP protobuf exporter, and a real receiver on
 * 127.0.0.1 (test/support/otlp-receiver.ts) decoding what arrives.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { context, ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  createTelemetryRing,
  type KernelHandle,
  OriginSampler,
  RingKernelRuntime,
  resolveTracingOptions,
  SpanRecordReader,
  SpanRecordWriter,
  type TracingOptions,
} from '../src/internal.js';
import { Accumulator, AddOne, Double, KILL_WORKER, MinusThree, Sink } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';
import { OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver.js';

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

async function tracedRuntime(options: TracingOptions, workers = 2): Promise<RingKernelRuntime> {
  return RingKernelRuntime.builder()
    .config({ workers })
    .tracing({ exportIntervalMs: 20, ...options })
    .build();
}

const byId = (spans: readonly ReceivedSpan[]): Map<string, ReceivedSpan> => new Map(spans.map((s) => [s.spanId, s]));

/**
 * Flushes until `check` passes (or rethrows after 10 s). A kernel publishes a message's processing span just after
 * its handler returns — after the response is already on its way — so a flush right after `call` may be a moment
 * early.
 */
async function flushUntil(runtime: RingKernelRuntime, check: () => void): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    await runtime.tracing?.flush();
    try {
      check();
      return;
    } catch (error) {
      if (performance.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

async function processed(handle: KernelHandle, count: number): Promise<void> {
  await eventually(() => assert.equal(handle.counters().processed, count), 10_000);
}

describe('tracing: OTLP/HTTP to a real receiver', () => {
  let receiver: OtlpReceiver;
  before(async () => {
    receiver = await OtlpReceiver.start();
  });
  after(() => receiver.close());

  it('one call is one trace: call on the host → processing in the worker → receive on the host', async () => {
    receiver.clear();
    const runtime = await tracedRuntime({ endpoint: receiver.url, serviceName: 'tracing-test' });
    try {
      const kernel = await runtime.launch(Accumulator, 1, 1, { name: 'acc', autoActivate: true });
      const answer = await kernel.call({ sender: 1, seq: 7, value: 5 });
      assert.equal(answer.total, 5);
      await flushUntil(runtime, () =>
        assert.equal(receiver.spans.length, 5, 'launch, activate, call, process, receive'),
      );
      const calls = receiver.named('call acc');
      assert.equal(calls.length, 1);
      const call = calls[0] as ReceivedSpan;
      assert.equal(call.parentSpanId, '', 'no active span: the call is a root');
      assert.equal(call.kind, 3, 'CLIENT');
      const inTrace = receiver.spans.filter((s) => s.traceId === call.traceId);
      const process = inTrace.find((s) => s.name === 'process acc');
      const receive = inTrace.find((s) => s.name === 'receive acc');
      assert.ok(process, 'the kernel processing span is in the call trace');
      assert.ok(receive, 'the response receive span is in the call trace');
      assert.equal(process.parentSpanId, call.spanId, 'worker span parented by the host call span');
      assert.equal(receive.parentSpanId, process.spanId, 'host receive parented by the worker span');
      assert.equal(inTrace.length, 3);
      assert.equal(process.kind, 5, 'CONSUMER');
      // Timestamps are the real ones, on one clock across threads (within a millisecond).
      const ms = 1_000_000n;
      assert.ok(process.startNs + ms >= call.startNs && process.endNs <= call.endNs + ms, 'process inside call');
      assert.ok(receive.startNs + ms >= process.endNs, 'receive after process');
      const wallNs = BigInt(Date.now()) * ms;
      assert.ok(call.startNs > wallNs - 60_000n * ms && call.startNs <= wallNs, 'start is Unix time in ns');
      assert.equal(process.attributes['messaging.system'], 'ringkernel');
      assert.equal(process.attributes['messaging.destination.name'], 'acc');
      assert.equal(process.attributes['messaging.operation'], 'process');
      assert.equal(process.attributes['messaging.message.id'], call.attributes['messaging.message.id']);
      assert.equal(process.attributes['messaging.message.body.size'], 16);
      assert.equal(process.attributes['ringkernel.kernel.id'], 'test.accumulator');
      assert.equal(call.attributes['messaging.operation'], 'call');
      assert.equal(call.resource['service.name'], 'tracing-test');
      assert.equal(call.scope, 'ringkernel');
    } finally {
      await runtime.shutdown();
    }
  });

  it('a failing handler: the process and call spans are errors with the ringkernel code', async () => {
    receiver.clear();
    const runtime = await tracedRuntime({ endpoint: receiver.url });
    try {
      const kernel = await runtime.launch(Accumulator, 1, 1, { name: 'acc', autoActivate: true });
      await assert.rejects(kernel.call({ sender: 1, seq: 1, value: -1 }), { code: 'RK_HANDLER_FAILED' });
      await eventually(() => assert.equal(runtime.deadLetters.total, 1));
      await flushUntil(runtime, () => assert.equal(receiver.named('process acc').length, 1));
      const process = receiver.named('process acc')[0];
      const call = receiver.named('call acc')[0];
      assert.equal(process?.statusCode, 2);
      assert.equal(process?.attributes['error.type'], 'RK_HANDLER_FAILED');
      assert.equal(call?.statusCode, 2);
      assert.equal(call?.statusMessage, 'RK_HANDLER_FAILED');
    } finally {
      await runtime.shutdown();
    }
  });

  // On one worker the three kernels share it and both links are fused (the producer has the consumer handle its
  // batch on its own turn): the spans must come out the same.
  for (const workers of [2, 1]) {
    it(`a 3-kernel K2K pipeline on ${workers} worker(s): one trace per message, a span per hop, each hop parented by the one before`, async () => {
      receiver.clear();
      const runtime = await tracedRuntime({ endpoint: receiver.url }, workers);
      try {
        const first = await runtime.launch(AddOne, 1, 1, { name: 'p1', autoActivate: true });
        const second = await runtime.launch(Double, 1, 1, { name: 'p2', autoActivate: true });
        const third = await runtime.launch(MinusThree, 1, 1, { name: 'p3', autoActivate: true });
        // Links of 4 frames: stages hold outputs for room (backpressure), and held outputs keep their trace context.
        await runtime.connect(first, second, { queueCapacity: 4 });
        await runtime.connect(second, third, { queueCapacity: 4 });
        const n = 200;
        for (let seq = 0; seq < n; seq++)
          if (!first.trySend({ sender: 1, seq, value: seq })) await first.send({ sender: 1, seq, value: seq });
        for (let seq = 0; seq < n; seq++) assert.equal((await third.receive(5_000)).value, (seq + 1) * 2 - 3);
        if (workers === 1) assert.ok(second.counters().fused > 0 && third.counters().fused > 0, 'the links ran fused');
        await flushUntil(runtime, () => {
          assert.equal(receiver.named('receive p3').length, n);
          assert.equal(receiver.named('process p3').length, n);
        });
        const sends = receiver.named('send p1');
        assert.equal(sends.length, n);
        assert.equal(new Set(sends.map((s) => s.traceId)).size, n, 'one trace per message');
        const spans = byId(receiver.spans);
        for (const send of sends) {
          const trace = receiver.spans.filter((s) => s.traceId === send.traceId);
          assert.deepEqual(trace.map((s) => s.name).sort(), [
            'process p1',
            'process p2',
            'process p3',
            'receive p3',
            'send p1',
          ]);
          const receive = trace.find((s) => s.name === 'receive p3') as ReceivedSpan;
          const chain: string[] = [];
          for (let s: ReceivedSpan | undefined = receive; s !== undefined; s = spans.get(s.parentSpanId)) {
            chain.push(s.name);
          }
          assert.deepEqual(chain, ['receive p3', 'process p3', 'process p2', 'process p1', 'send p1']);
          const hop = trace.find((s) => s.name === 'process p2') as ReceivedSpan;
          assert.equal(hop.attributes['ringkernel.source.kernel'], 'p1');
        }
      } finally {
        await runtime.shutdown();
      }
    });
  }

  it('sampling 1.0: exactly N processing spans for N messages, none dropped', async () => {
    receiver.clear();
    // No rate cap: every message is to be traced (the cap has a test of its own).
    const runtime = await tracedRuntime({
      endpoint: receiver.url,
      sampler: 'always_on',
      maxTracesPerSecond: Number.POSITIVE_INFINITY,
    });
    try {
      const sink = await runtime.launch(Sink, 1, 1, { name: 'sink', autoActivate: true });
      const n = 10_000;
      const message = { sender: 1, seq: 0, value: 1 };
      for (let seq = 0; seq < n; seq++) {
        message.seq = seq;
        if (!sink.trySend(message)) await sink.send(message);
        // A moderate rate: bursts of 512 messages (1024 spans), the next once the exporter has exported those —
        // whatever rate this (shared, loaded) machine's exporter thread sustains. (Pacing on its pending count read
        // a count the exporter thread publishes only as it runs: starved, it lagged, the kernel's ring passed half
        // full, and the origin rightly left messages untraced.)
        if ((seq & 511) === 511) await runtime.tracing?.flush();
      }
      await processed(sink, n);
      await flushUntil(runtime, () => assert.equal(receiver.named('process sink').length, n));
      const process = receiver.named('process sink');
      assert.equal(runtime.tracing?.stats().tracesShedForExport, 0);
      assert.equal(new Set(process.map((s) => s.attributes['messaging.message.id'])).size, n);
      assert.equal(receiver.named('send sink').length, n);
      const stats = runtime.tracing?.stats();
      assert.equal(stats?.recordsDropped, 0);
      assert.equal(stats?.spansFailed, 0);
    } finally {
      await runtime.shutdown();
    }
  });

  it('ratio 0.1: about 10 % of messages are traced, and every traced message completely', async () => {
    receiver.clear();
    const runtime = await tracedRuntime({
      endpoint: receiver.url,
      sampler: 'parentbased_traceidratio',
      samplerRatio: 0.1,
    });
    try {
      const sink = await runtime.launch(Sink, 1, 1, { name: 'sink', autoActivate: true });
      const n = 10_000;
      for (let seq = 0; seq < n; seq++) await sink.send({ sender: 1, seq, value: 1 });
      await processed(sink, n);
      await runtime.tracing?.flush();
      const process = receiver.named('process sink');
      // Binomial(10 000, 0.1): mean 1000, sd 30. ±6 sd: a false failure is a one-in-10^9 event. (The sampler draws
      // Math.random, which a test cannot seed.)
      assert.ok(process.length > 820 && process.length < 1180, `${process.length} sampled`);
      const sends = new Set(receiver.named('send sink').map((s) => s.spanId));
      assert.equal(sends.size, process.length, 'a send span for each processing span');
      for (const span of process) assert.ok(sends.has(span.parentSpanId));
    } finally {
      await runtime.shutdown();
    }
  });

  it("a message sent inside the caller's span joins its trace as a child; an unsampled parent traces nothing", async () => {
    receiver.clear();
    const runtime = await tracedRuntime({ endpoint: receiver.url });
    const user = new BasicTracerProvider().getTracer('user');
    try {
      const sink = await runtime.launch(Sink, 1, 1, { name: 'sink', autoActivate: true });
      const request = user.startSpan('HTTP GET /orders');
      await context.with(trace.setSpan(context.active(), request), () => sink.send({ sender: 1, seq: 1, value: 1 }));
      request.end();
      const unsampled = trace.wrapSpanContext({
        traceId: '0af7651916cd43dd8448eb211c80319c',
        spanId: 'b7ad6b7169203331',
        traceFlags: TraceFlags.NONE,
      });
      await context.with(trace.setSpan(ROOT_CONTEXT, unsampled), () => sink.send({ sender: 1, seq: 2, value: 1 }));
      await processed(sink, 2);
      await runtime.tracing?.flush();
      const send = receiver.named('send sink');
      assert.equal(send.length, 1, 'only the message under the sampled parent');
      assert.equal(send[0]?.traceId, request.spanContext().traceId);
      assert.equal(send[0]?.parentSpanId, request.spanContext().spanId);
      const process = receiver.named('process sink');
      assert.equal(process.length, 1);
      assert.equal(process[0]?.traceId, request.spanContext().traceId);
      assert.equal(process[0]?.parentSpanId, send[0]?.spanId);
    } finally {
      await runtime.shutdown();
    }
  });

  it('lifecycle transitions are spans: launch, activate, deactivate, terminate', async () => {
    receiver.clear();
    const runtime = await tracedRuntime({ endpoint: receiver.url });
    try {
      const kernel = await runtime.launch(Sink, 1, 1, { autoActivate: false, name: 'life' });
      await kernel.activate();
      await kernel.deactivate();
      await kernel.terminate();
      await runtime.tracing?.flush();
      for (const transition of ['launch', 'activate', 'deactivate', 'terminate']) {
        const spans = receiver.named(`${transition} life`);
        assert.equal(spans.length, 1, transition);
        assert.equal(spans[0]?.attributes['ringkernel.lifecycle.transition'], transition);
        assert.equal(spans[0]?.kind, 1, 'INTERNAL');
        assert.ok((spans[0]?.endNs ?? 0n) >= (spans[0]?.startNs ?? 1n));
      }
    } finally {
      await runtime.shutdown();
    }
  });

  it('a supervised kernel that fails and is restarted: a fail span, then a restart span', async () => {
    receiver.clear();
    const runtime = await tracedRuntime({ endpoint: receiver.url });
    try {
      const supervisor = runtime.supervisor({ backoff: { initialMs: 0 } });
      const kernel = await supervisor.launch(Accumulator, 1, 1, {
        name: 'phoenix',
        autoActivate: true,
        onHandlerError: 'fail',
      });
      await assert.rejects(kernel.call({ sender: 1, seq: 1, value: -1 }), { code: 'RK_HANDLER_FAILED' });
      assert.equal((await kernel.call({ sender: 1, seq: 2, value: 5 })).total, 5, 'restarted, fresh state');
      await flushUntil(runtime, () => assert.equal(receiver.named('restart phoenix').length, 1));
      assert.equal(receiver.named('fail phoenix').length, 1);
      const restart = receiver.named('restart phoenix')[0] as ReceivedSpan;
      assert.equal(restart.attributes['ringkernel.lifecycle.transition'], 'restart');
      assert.equal(restart.statusCode, 0);
    } finally {
      await runtime.shutdown();
    }
  });

  it('a kernel that fails is a fail span, an error with RK_KERNEL_FAILED', async () => {
    receiver.clear();
    const runtime = await tracedRuntime({ endpoint: receiver.url });
    try {
      const kernel = await runtime.launch(Accumulator, 1, 1, { name: 'doomed', autoActivate: true });
      // The handler calls process.exit: the worker dies under the kernel.
      await assert.rejects(kernel.call({ sender: 1, seq: 1, value: KILL_WORKER }), { code: 'RK_KERNEL_FAILED' });
      await flushUntil(runtime, () => assert.equal(receiver.named('fail doomed').length, 1));
      const fail = receiver.named('fail doomed')[0] as ReceivedSpan;
      assert.equal(fail.statusCode, 2);
      assert.equal(fail.attributes['error.type'], 'RK_KERNEL_FAILED');
      assert.equal(fail.attributes['ringkernel.lifecycle.transition'], 'fail');
      const call = receiver.named('call doomed')[0];
      assert.equal(call?.attributes['error.type'], 'RK_KERNEL_FAILED', 'the call that died with it is an error too');
    } finally {
      await runtime.shutdown();
    }
  });

  it('collector down: no crash, the data path goes on, failures counted and reported once', async () => {
    const down = await OtlpReceiver.start();
    const url = down.url;
    await down.close();
    // Said on the runtime's log (its own line on stderr), not as a process warning.
    const warnings: string[] = [];
    const original = console.error;
    console.error = (line: string) => {
      if (line.startsWith('ringkernel warn: traces could not be delivered')) warnings.push(line);
      else original(line);
    };
    const runtime = await tracedRuntime({ endpoint: url, exportTimeoutMs: 300 });
    try {
      const kernel = await runtime.launch(Accumulator, 1, 1, { name: 'acc', autoActivate: true });
      for (let i = 0; i < 3; i++) {
        for (let seq = 0; seq < 100; seq++) await kernel.call({ sender: 1, seq, value: 1 });
        await runtime.tracing?.flush();
      }
      const stats = runtime.tracing?.stats();
      assert.ok((stats?.exportsFailed ?? 0) >= 2, `${stats?.exportsFailed} failed exports`);
      assert.ok((stats?.spansFailed ?? 0) >= 300, `${stats?.spansFailed} spans failed`);
      assert.equal(stats?.spansExported, 0);
      assert.equal(kernel.counters().processed, 300);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(warnings.length, 1, 'said once');
      assert.match(warnings[0] as string, new RegExp(url.replace(/[/.:]/g, '.')));
    } finally {
      await runtime.shutdown();
      console.error = original;
    }
  });

  it('a kernel ring the exporter does not drain: past half of it the origin sheds whole traces, counted; the data path never waits', async () => {
    receiver.clear();
    const runtime = await tracedRuntime({
      endpoint: receiver.url,
      ringCapacity: 64,
      hostRingCapacity: 4096,
      exportIntervalMs: 60_000,
    });
    try {
      const sink = await runtime.launch(Sink, 1, 1, { name: 'sink', autoActivate: true });
      const n = 1000;
      // One at a time, each processed before the next is sent: the origin sees the kernel's ring as it fills.
      for (let seq = 0; seq < n; seq++) {
        await sink.send({ sender: 1, seq, value: 1 });
        await processed(sink, seq + 1);
      }
      const stats = runtime.tracing?.stats();
      assert.ok(stats !== undefined);
      const report = JSON.stringify(stats);
      // Half the kernel's 64 records traced; every later message left untraced at the origin, whole, and counted.
      assert.equal(stats.tracesShedForExport, n - 32, report);
      assert.equal(stats.tracesShedForRate + stats.tracesShedForRoom + stats.recordsDropped, 0, report);
      await runtime.tracing?.flush();
      assert.equal(receiver.named('send sink').length, 32, report);
      assert.equal(receiver.named('process sink').length, 32, report);
    } finally {
      await runtime.shutdown();
    }
  });

  for (const mode of ['shutdown', 'forgotten'] as const) {
    it(`a traced runtime whose collector is down lets node exit promptly when ${mode === 'shutdown' ? 'shut down' : 'forgotten'}`, async () => {
      const down = await OtlpReceiver.start();
      const url = down.url;
      await down.close();
      const script = fileURLToPath(new URL('./fixtures/forgotten-traced-runtime.js', import.meta.url));
      const started = performance.now();
      const result = spawnSync(process.execPath, [script, mode, url], { encoding: 'utf8', timeout: 20_000 });
      const seconds = (performance.now() - started) / 1000;
      assert.equal(result.signal, null, `killed after ${seconds.toFixed(1)} s: the process did not exit by itself`);
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, mode === 'shutdown' ? /shutdown \{.*"terminated":1,"failed":0/ : /forgotten/);
      if (mode === 'shutdown') assert.match(result.stdout, /"spansExported":0,"spansFailed":[1-9]/);
      assert.ok(seconds < 10, `exited after ${seconds.toFixed(1)} s`);
    });
  }

  it('a SpanExporter that answers before export returns (as the console exporter does): every batch goes out, flush settles', async () => {
    const received: string[] = [];
    const synchronous = {
      export(spans: { name: string }[], done: (result: { code: number }) => void): void {
        for (const span of spans) received.push(span.name);
        done({ code: 0 });
      },
      shutdown: async (): Promise<void> => {},
    };
    // One span per batch: many exports, each answered at once.
    const runtime = await tracedRuntime({ exporter: synchronous, sampler: 'always_on', maxExportBatchSize: 1 });
    try {
      const sink = await runtime.launch(Sink, 1, 1, { name: 'sink', autoActivate: true });
      for (let seq = 0; seq < 20; seq++) assert.ok(sink.trySend({ sender: 0, seq, value: seq }));
      await processed(sink, 20);
      // The timer's exports, one after the other (a flush that waited on an export that never ends would spin).
      await eventually(() => {
        assert.equal(received.filter((name) => name === 'send sink').length, 20, received.join(', '));
        assert.equal(received.filter((name) => name === 'process sink').length, 20, received.join(', '));
      }, 10_000);
      await runtime.tracing?.flush();
      assert.equal(runtime.tracing?.stats().spansExported, received.length);
    } finally {
      await runtime.shutdown();
    }
  });

  it('a SpanExporter passed in gets ReadableSpans with the same ids, parents and attributes', async () => {
    const memory = new InMemorySpanExporter();
    const runtime = await tracedRuntime({ exporter: memory, sampler: 'always_on', serviceName: 'in-memory' });
    try {
      const kernel = await runtime.launch(Accumulator, 1, 1, { name: 'acc', autoActivate: true });
      await kernel.call({ sender: 1, seq: 1, value: 2 });
      await flushUntil(runtime, () => assert.equal(memory.getFinishedSpans().length, 5));
      const spans = memory.getFinishedSpans();
      const call = spans.find((s) => s.name === 'call acc');
      const process = spans.find((s) => s.name === 'process acc');
      const receive = spans.find((s) => s.name === 'receive acc');
      assert.ok(call && process && receive);
      assert.equal(call.parentSpanContext, undefined);
      assert.equal(process.spanContext().traceId, call.spanContext().traceId);
      assert.equal(process.parentSpanContext?.spanId, call.spanContext().spanId);
      assert.equal(receive.parentSpanContext?.spanId, process.spanContext().spanId);
      assert.equal(process.attributes['messaging.destination.name'], 'acc');
      assert.equal(process.attributes['messaging.message.body.size'], 16);
      assert.equal(process.resource.attributes['service.name'], 'in-memory');
      assert.ok(process.duration[0] >= 0 && process.duration[1] >= 0);
    } finally {
      await runtime.shutdown();
    }
  });

  it('a TracerProvider passed in receives the spans through its own span processor', async () => {
    const memory = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)] });
    const runtime = await tracedRuntime({ tracerProvider: provider });
    try {
      const kernel = await runtime.launch(Accumulator, 1, 1, { name: 'acc', autoActivate: true });
      await kernel.call({ sender: 1, seq: 1, value: 2 });
      await flushUntil(runtime, () => assert.equal(memory.getFinishedSpans().length, 5));
      const names = memory.getFinishedSpans().map((s) => s.name);
      for (const name of ['call acc', 'process acc', 'receive acc', 'launch acc', 'activate acc']) {
        assert.ok(names.includes(name), `${name} in ${names.join(', ')}`);
      }
    } finally {
      await runtime.shutdown();
    }
    // The provider is the application's: the runtime's shutdown leaves it running, its own spans still export.
    const before = memory.getFinishedSpans().length;
    provider.getTracer('app').startSpan('after the runtime').end();
    assert.equal(memory.getFinishedSpans().length, before + 1);
    assert.equal(memory.getFinishedSpans().at(-1)?.name, 'after the runtime');
  });
});

describe('tracing: configuration and the telemetry ring', () => {
  it('reads the OTEL_* environment; options win; bad values are refused with the exact message', () => {
    const env = {
      OTEL_TRACES_SAMPLER: 'traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
      OTEL_SERVICE_NAME: 'from-env',
    };
    const resolved = resolveTracingOptions({}, env);
    assert.equal(resolved.sampler, 'traceidratio');
    assert.equal(resolved.samplerRatio, 0.25);
    assert.equal(resolved.endpoint, 'http://collector:4318/v1/traces');
    assert.equal(resolved.serviceName, 'from-env');
    assert.equal(resolved.exporter, 'otlp');
    assert.equal(resolved.enabled, true);
    const specific = resolveTracingOptions(
      { serviceName: 'mine' },
      { ...env, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://x:1/t' },
    );
    assert.equal(specific.endpoint, 'http://x:1/t');
    assert.equal(specific.serviceName, 'mine');
    assert.equal(resolveTracingOptions({}, {}).endpoint, 'http://localhost:4318/v1/traces');
    assert.equal(resolveTracingOptions({}, {}).sampler, 'parentbased_always_on');
    assert.equal(resolveTracingOptions({}, { OTEL_TRACES_EXPORTER: 'none' }).enabled, false);
    assert.equal(resolveTracingOptions({}, { OTEL_SDK_DISABLED: 'true' }).enabled, false);
    assert.throws(() => resolveTracingOptions({ samplerRatio: 2 }, {}), {
      name: 'RangeError',
      message: 'tracing.samplerRatio must be a number in [0, 1], got 2',
    });
    assert.throws(() => resolveTracingOptions({}, { OTEL_TRACES_SAMPLER: 'sometimes' }), {
      name: 'TypeError',
      message:
        'tracing.sampler must be one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio, got "sometimes"',
    });
    assert.throws(() => resolveTracingOptions({ ringCapacity: 100 }, {}), {
      name: 'RangeError',
      message: 'tracing.ringCapacity must be a power of two in [2, 16777216], got 100',
    });
    assert.throws(() => resolveTracingOptions({ colour: 'red' } as TracingOptions, {}), {
      name: 'TypeError',
      message: 'tracing.colour is not a tracing option',
    });
  });

  it('tracing off: the runtime holds no tracing, and OTEL_TRACES_EXPORTER=none turns it off', async () => {
    const plain = await RingKernelRuntime.builder().config({ workers: 1 }).build();
    assert.equal(plain.tracing, undefined);
    await plain.shutdown();
    const previous = process.env.OTEL_TRACES_EXPORTER;
    process.env.OTEL_TRACES_EXPORTER = 'none';
    try {
      const off = await RingKernelRuntime.builder().config({ workers: 1 }).tracing().build();
      assert.equal(off.tracing, undefined);
      await off.shutdown();
    } finally {
      if (previous === undefined) delete process.env.OTEL_TRACES_EXPORTER;
      else process.env.OTEL_TRACES_EXPORTER = previous;
    }
  });

  it('always_off samples nothing: no record is written anywhere', async () => {
    const memory = new InMemorySpanExporter();
    const runtime = await tracedRuntime({ exporter: memory, sampler: 'always_off' });
    try {
      const sink = await runtime.launch(Sink, 1, 1, { name: 'sink', autoActivate: true });
      for (let seq = 0; seq < 500; seq++) await sink.send({ sender: 1, seq, value: 1 });
      await processed(sink, 500);
      await runtime.tracing?.flush();
      assert.deepEqual(memory.getFinishedSpans(), []);
      assert.deepEqual(runtime.tracing?.stats(), {
        spansExported: 0,
        spansFailed: 0,
        exportsFailed: 0,
        recordsDropped: 0,
        recordsPending: 0,
        tracesShedForRate: 0,
        tracesShedForRoom: 0,
        tracesShedForExport: 0,
      });
    } finally {
      await runtime.shutdown();
    }
  });

  it('the origin sampler: ratio by geometric countdown, parent-based follows the parent', () => {
    const ratio = new OriginSampler('traceidratio', 0.01);
    let sampled = 0;
    for (let i = 0; i < 1_000_000; i++) if (ratio.sampleRoot()) sampled++;
    // Binomial(10^6, 0.01): mean 10 000, sd 99.5; ±6 sd. (Math.random, which a test cannot seed.)
    assert.ok(sampled > 9_400 && sampled < 10_600, `${sampled} of 10^6`);
    const parentBased = new OriginSampler('parentbased_traceidratio', 0);
    assert.equal(parentBased.sampleChild(true), true);
    assert.equal(parentBased.sampleChild(false), false);
    assert.equal(parentBased.sampleRoot(), false);
    assert.equal(parentBased.samplesNothing, false);
    const on = new OriginSampler('always_on');
    const off = new OriginSampler('always_off');
    for (let i = 0; i < 1000; i++) {
      assert.equal(on.sampleRoot(), true);
      assert.equal(on.sampleChild(false), true, 'not parent-based: the parent does not matter');
      assert.equal(off.sampleRoot(), false);
    }
    assert.equal(off.samplesNothing, true);
    assert.throws(() => new OriginSampler('traceidratio', 1.5), {
      name: 'RangeError',
      message: 'sampler ratio must be a number in [0, 1], got 1.5',
    });
  });

  it('the ring: records in order, wrap-around, full → dropped and counted', () => {
    const ring = createTelemetryRing(4, 1_700_000_000_123);
    const writer = new SpanRecordWriter(ring);
    const reader = new SpanRecordReader(ring);
    assert.equal(reader.epochUnixMs, 1_700_000_000_123);
    const seen: number[] = [];
    const read = (view: DataView, at: number): void => {
      seen.push(view.getUint32(at + 56, true));
    };
    let next = 0;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 6; i++) {
        const at = writer.begin();
        if (at < 0) continue;
        writer.view.setUint32(at + 56, next++, true);
        writer.commit();
      }
      assert.equal(reader.pending, 4);
      assert.equal(reader.drain(read), 4);
    }
    assert.deepEqual(
      seen,
      Array.from({ length: 12 }, (_, i) => i),
    );
    assert.equal(reader.dropped, 6);
    assert.throws(() => createTelemetryRing(6, 0), {
      name: 'RangeError',
      message: 'telemetry ring capacity must be a power of two in [2, 16777216], got 6',
    });
  });
});
