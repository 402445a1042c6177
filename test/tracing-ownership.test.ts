/**
 * The app's OpenTelemetry pipeline belongs to the app: the runtime uses it (the global TracerProvider by default,
 * or the one passed in), flushes it, and never shuts it down.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { RingKernelRuntime, type TracingOptions } from '../src/index.js';
import { Accumulator } from './fixtures/kernels.js';

function appPipeline(): { memory: InMemorySpanExporter; provider: BasicTracerProvider } {
  const memory = new InMemorySpanExporter();
  return { memory, provider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)] }) };
}

/** Launches a kernel, calls it once and shuts the runtime down. */
async function callOnce(tracing: TracingOptions): Promise<void> {
  const runtime = await RingKernelRuntime.builder().config({ workers: 1 }).tracing(tracing).build();
  const kernel = await runtime.launch(Accumulator, 1, 1, { name: 'acc', autoActivate: true });
  await kernel.call({ sender: 1, seq: 1, value: 2 });
  await runtime.shutdown();
}

/** Whether the app can still record a span of its own through its provider. */
function appSpanRecorded(provider: BasicTracerProvider, memory: InMemorySpanExporter): boolean {
  provider.getTracer('app').startSpan('app.after-shutdown').end();
  return memory.getFinishedSpans().some((span) => span.name === 'app.after-shutdown');
}

describe("the app's tracing pipeline", () => {
  afterEach(() => trace.disable());

  it('a TracerProvider passed in is flushed at shutdown, not shut down: the app keeps tracing', async () => {
    const { memory, provider } = appPipeline();
    await callOnce({ tracerProvider: provider, exportIntervalMs: 20 });
    assert.ok(
      memory.getFinishedSpans().some((span) => span.name === 'call acc'),
      'the runtime flushed its spans',
    );
    assert.ok(appSpanRecorded(provider, memory), "the app's span after the runtime's shutdown is recorded");
  });

  it("by default, uses the app's registered global TracerProvider, and leaves it running", async () => {
    const { memory, provider } = appPipeline();
    trace.setGlobalTracerProvider(provider);
    await callOnce({ exportIntervalMs: 20 });
    const names = memory.getFinishedSpans().map((span) => span.name);
    assert.ok(names.includes('call acc') && names.includes('process acc'), names.join(', '));
    assert.ok(appSpanRecorded(provider, memory), "the app's span after the runtime's shutdown is recorded");
  });

  it('an exporter of the app passed in is not shut down either', async () => {
    const memory = new InMemorySpanExporter();
    await callOnce({ exporter: memory, exportIntervalMs: 20 });
    assert.ok(memory.getFinishedSpans().some((span) => span.name === 'call acc'));
    const before = memory.getFinishedSpans().length;
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)] });
    provider.getTracer('app').startSpan('app.after-shutdown').end();
    assert.equal(memory.getFinishedSpans().length, before + 1);
  });
});
