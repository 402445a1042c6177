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
import { eventually } from './support/eventually.js';
import { OtlpReceiver } from './support/otlp-receiver.js';
import { findPromtool, incompleteHistograms, promtoolCheckMetrics } from './support/promtool.js';

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
