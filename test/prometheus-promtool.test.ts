/**
 * Prometheus's own linter accepts the runtime's metrics: `promtool check metrics` (Debian's `prometheus` package,
 * fetched by scripts/fetch-promtool.sh) on a runtime with kernels running, ended, traced and with process metrics,
 * and on the demo's `/metrics`. Skips, saying why, where promtool cannot be had.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { RingKernelRuntime } from '../src/internal.js';
import { Accumulator } from './fixtures/kernels.js';
import { WgslAddOne } from './fixtures/webgpu-kernels.js';
import { eventually } from './support/eventually.js';
import { OtlpReceiver } from './support/otlp-receiver.js';
import { findPromtool, incompleteHistograms, promtoolCheckMetrics } from './support/promtool.js';
import { webgpuMissing } from './support/webgpu.js';

const promtool = findPromtool();
const skip = 'skip' in promtool ? promtool.skip : false;
const promtoolPath = 'path' in promtool ? promtool.path : '';

describe('promtool check metrics', () => {
  it('passes on a traced runtime with live, failed-call and ended kernels and process metrics', { skip }, async () => {
    const receiver = await OtlpReceiver.start();
    const registry = new Registry();
    const runtime = await RingKernelRuntime.builder()
      .config({ workers: 1 })
      .tracing({ endpoint: receiver.url, exportIntervalMs: 20 })
      .build();
    try {
      runtime.prometheusExporter({ registry, processMetrics: true });
      const live = await runtime.launch(Accumulator, 1, 1, { name: 'live', autoActivate: true });
      const ended = await runtime.launch(Accumulator, 1, 1, { name: 'ended', autoActivate: true });
      for (let seq = 0; seq < 50; seq++) {
        await live.call({ sender: 0, seq, value: 1 });
        await ended.call({ sender: 1, seq, value: 2 });
      }
      await assert.rejects(live.call({ sender: 0, seq: 99, value: -1 }));
      await ended.terminate();
      await runtime.tracing?.flush();
      const text = await registry.metrics();
      const { code, output } = await promtoolCheckMetrics(promtoolPath, text);
      assert.equal(code, 0, `promtool check metrics:\n${output}`);
      assert.deepEqual(incompleteHistograms(text), []);
      for (const name of [
        'ringkernel_kernel_handler_latency_seconds',
        'ringkernel_kernel_call_duration_seconds',
        'ringkernel_kernel_messages_total',
        'ringkernel_kernel_restarts_total',
        'ringkernel_tracing_spans_exported_total',
        'ringkernel_tracing_records_dropped_total',
        'ringkernel_tracing_traces_shed_total',
        'process_cpu_seconds_total',
      ]) {
        assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), `${name} is exposed with its help`);
      }
      // Every family has HELP text.
      const families = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
      const helped = new Set([...text.matchAll(/^# HELP (\S+) \S/gm)].map((m) => m[1]));
      assert.deepEqual(
        families.filter((name) => !helped.has(name)),
        [],
      );
      // The ended kernel's final counts are in the scrape.
      assert.match(text, /^ringkernel_kernel_messages_total\{kernel="ended",outcome="processed"\} 50$/m);
      assert.match(text, /^ringkernel_kernel_call_duration_seconds_count\{kernel="ended"\} 50$/m);
    } finally {
      await runtime.shutdown();
      await receiver.close();
    }
  });

  it('passes on a WebGPU runtime (real adapter) whose batch metrics reach the exporter: batches, sizes, in flight, stage times', {
    skip,
  }, async (t) => {
    const noAdapter = await webgpuMissing();
    if (noAdapter !== undefined) return t.skip(noAdapter);
    const registry = new Registry();
    const runtime = await RingKernelRuntime.builder()
      .backend('webgpu', { allowFallback: true })
      .config({ workers: 1 })
      .build();
    try {
      runtime.prometheusExporter({ registry });
      const cpu = await runtime.launch(Accumulator, 1, 1, { name: 'cpu', autoActivate: true });
      const called = await runtime.launch(WgslAddOne, 1, 1, { name: 'called', autoActivate: true });
      const streamed = await runtime.launch(WgslAddOne, 1, 1, {
        name: 'streamed',
        autoActivate: true,
        queueCapacity: 4096,
      });
      // One call at a time on an idle kernel: each is a batch of exactly one message.
      for (let i = 0; i < 40; i++) assert.equal((await called.call({ value: i })).value, i + 1);
      const streamedCount = 3000;
      for (let i = 0; i < streamedCount; i++) await streamed.send({ value: i });
      for (let i = 0; i < streamedCount; i++) assert.equal((await streamed.receive()).value, i + 1);
      // Terminated, the streamed kernel's batches are all read back: its final series are exact.
      await streamed.terminate();
      const value = (text: string, series: string): number => {
        const escaped = series.replace(/[{}"+.]/g, (c) => `\\${c}`);
        const found = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text)?.[1];
        assert.ok(found !== undefined, `${series} is in the scrape`);
        return Number(found);
      };
      const text = await eventually(async () => {
        const scraped = await registry.metrics();
        // The last batch's stage times are recorded just after its outputs are written.
        assert.equal(
          value(scraped, 'ringkernel_webgpu_batch_stage_seconds_count{kernel="called",stage="readback"}'),
          40,
        );
        assert.equal(value(scraped, 'ringkernel_webgpu_batches_in_flight{kernel="called"}'), 0);
        return scraped;
      });
      const { code, output } = await promtoolCheckMetrics(promtoolPath, text);
      assert.equal(code, 0, `promtool check metrics:\n${output}`);
      assert.deepEqual(incompleteHistograms(text), []);
      for (const name of [
        'ringkernel_webgpu_batches_total',
        'ringkernel_webgpu_batch_messages',
        'ringkernel_webgpu_batches_in_flight',
        'ringkernel_webgpu_batch_stage_seconds',
      ]) {
        assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), `${name} is exposed with its help`);
      }
      // Calls one at a time: 40 batches of one message.
      assert.equal(value(text, 'ringkernel_webgpu_batches_total{kernel="called"}'), 40);
      assert.equal(value(text, 'ringkernel_webgpu_batch_messages_bucket{kernel="called",le="1"}'), 40);
      assert.equal(value(text, 'ringkernel_webgpu_batch_messages_sum{kernel="called"}'), 40);
      // A stream: every message in exactly one batch, each batch counted once per stage.
      const batches = value(text, 'ringkernel_webgpu_batches_total{kernel="streamed"}');
      t.diagnostic(`${streamedCount} streamed messages in ${batches} batches`);
      assert.ok(batches >= 1 && batches <= streamedCount, `${batches} batches`);
      assert.equal(value(text, 'ringkernel_webgpu_batch_messages_sum{kernel="streamed"}'), streamedCount);
      assert.equal(value(text, 'ringkernel_webgpu_batch_messages_count{kernel="streamed"}'), batches);
      assert.equal(value(text, 'ringkernel_webgpu_batch_messages_bucket{kernel="streamed",le="+Inf"}'), batches);
      for (const stage of ['upload', 'dispatch', 'readback']) {
        const series = `ringkernel_webgpu_batch_stage_seconds_count{kernel="streamed",stage="${stage}"}`;
        assert.equal(value(text, series), batches, series);
        const seconds = value(text, `ringkernel_webgpu_batch_stage_seconds_sum{kernel="streamed",stage="${stage}"}`);
        assert.ok(seconds > 0 && seconds < 60, `${stage}: ${seconds} s`);
      }
      // CPU kernels have no batch series.
      assert.doesNotMatch(text, /^ringkernel_webgpu_\S+\{kernel="cpu"/m);
      await cpu.terminate();
      await called.terminate();
    } finally {
      await runtime.shutdown();
    }
  });

  it("passes on the demo's /metrics while it runs", { skip }, async () => {
    const script = fileURLToPath(new URL('../examples/demo.js', import.meta.url));
    const child = spawn(process.execPath, [script, '--metrics-port', '0'], {
      env: { ...process.env, DEMO_SECONDS: '3', OTEL_TRACES_EXPORTER: 'none' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const url = await eventually(() => {
        const found = /metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(out)?.[1];
        assert.ok(found, 'the demo says where its metrics are');
        return found;
      }, 20_000);
      const text = await eventually(async () => {
        const scraped = await (await fetch(url)).text();
        assert.match(scraped, /ringkernel_kernel_handler_latency_seconds_count\{kernel="demo.stats"\} [1-9]/);
        return scraped;
      }, 20_000);
      const { code, output } = await promtoolCheckMetrics(promtoolPath, text);
      assert.equal(code, 0, `promtool check metrics on the demo:\n${output}`);
      assert.deepEqual(incompleteHistograms(text), []);
    } finally {
      assert.equal(await exited, 0);
    }
  });
});
