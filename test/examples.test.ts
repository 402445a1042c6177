import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { probeCuda } from '../src/internal.js';
import { eventually } from './support/eventually.js';
import { natsServerMissing } from './support/nats-server.js';

describe('examples', () => {
  it('frames-between-workers runs, delivers everything in order and exits 0', () => {
    const script = fileURLToPath(new URL('../examples/frames-between-workers.js', import.meta.url));
    const out = execFileSync(process.execPath, [script], {
      encoding: 'utf8',
      env: { ...process.env, EXAMPLE_READINGS: '200000' },
      timeout: 60_000,
    });
    assert.match(out, /200,000 readings in [\d.]+ s/);
    assert.match(out, /out of order: 0, malformed: 0/);
    const mean = Number(/mean (-?[\d.]+)/.exec(out)?.[1]);
    assert.ok(mean > 15 && mean < 25, `mean ${mean}`);
  });
});

describe('examples/cuda: one kernel with a CPU and a CUDA handler, on the best backend here', () => {
  const script = fileURLToPath(new URL('../examples/cuda.js', import.meta.url));
  const emulator = fileURLToPath(new URL('../../native/build/libcuda-emu.so', import.meta.url));
  const runExample = (env: Record<string, string>): string =>
    execFileSync(process.execPath, [script], {
      encoding: 'utf8',
      env: { ...process.env, EXAMPLE_READINGS: '5000', ...env },
      timeout: 120_000,
    });
  const expectSameAnswers = (out: string): void => {
    assert.match(out, /call: 100 °C is 212 °F, alarm 1/);
    assert.match(out, /call: -300 °C is refused \(HandlerFailedError\)/);
    // Celsius (i % 50) - 5: 38…44 °C are over 100 °F, 7 in every 50 readings.
    assert.match(out, /5,000 readings in [\d.]+ s: 700 alarms, out of order 0/);
    assert.match(out, /kernel: processed 5001, failed 1/);
  };

  it('runs on the CPU where there is no GPU', (t) => {
    if (probeCuda().available) return t.skip('skipped: a CUDA device is present, so the example picks CUDA');
    const out = runExample({ RINGKERNEL_LIBCUDA: '/nonexistent/libcuda.so.1' });
    assert.match(out, /backend cpu, device cpu:0, strategy direct/);
    expectSameAnswers(out);
  });

  it('runs the same kernel on the emulated CUDA device (CPU threads stand in for the GPU), same answers', (t) => {
    if (!existsSync(emulator)) return t.skip('skipped: the CUDA emulator was not built (needs cc)');
    const out = runExample({ RINGKERNEL_LIBCUDA: emulator });
    assert.match(out, /backend cuda, device ringkernel emulated device 0 \(CPU threads\), strategy mapped/);
    expectSameAnswers(out);
  });
});

describe('npm start demo', () => {
  it('runs an XState machine of supervised kernels wired kernel-to-kernel: restarts, loses nothing, sums up', () => {
    const script = fileURLToPath(new URL('../examples/demo.js', import.meta.url));
    const out = execFileSync(process.execPath, [script], {
      encoding: 'utf8',
      env: { ...process.env, DEMO_SECONDS: '3' },
      timeout: 60_000,
    });
    assert.match(out, /summary \(the machine ended in 'done'\)/);
    // stdout is a pipe here, not a terminal: progress comes one line per update, never redrawn with \r.
    assert.doesNotMatch(out, /\r/);
    assert.match(out, /^[\d,]+ readings +[\d,]+ msg\/s +hot alerts \d+ +faults \d+ +restarts \d+$/m);
    assert.match(out, /readings sent +[\d,]+ in [\d.]+ s \([\d,]+ msg\/s\), stats → alerts kernel-to-kernel/);
    assert.match(out, /call latency +p50 [\d.]+ µs +p99 [\d.]+ µs/);
    const num = (pattern: RegExp): number => Number(pattern.exec(out)?.[1]?.replaceAll(',', ''));
    const readings = num(/readings sent +([\d,]+)/);
    const faults = num(/supervision +(\d+) garbage readings/);
    assert.ok(faults >= 1, 'the demo injects at least one fault');
    assert.match(out, new RegExp(`supervision +${faults} garbage readings, ${faults} restarts of demo\\.alerts`));
    // The stats kernel handled every reading; the alerts kernel took in every full window (and the probes):
    // judged, or failed on purpose and dead-lettered — none lost across the restarts.
    assert.match(
      out,
      new RegExp(
        `demo\\.stats +Terminated +received ${readings.toLocaleString('en')}, processed ${readings.toLocaleString('en')}, failed 0, dropped 0, restarts 0`,
      ),
    );
    const windows = num(/windows of 64 +([\d,]+):/);
    assert.equal(num(/windows of 64 +[\d,]+: [\d,]+ judged, (\d+) failed on purpose/), faults);
    const probes = num(/\(([\d,]+) probe calls/);
    const alertsReceived = num(/demo\.alerts +Terminated +received ([\d,]+)/);
    assert.equal(alertsReceived, windows + probes, 'every full window and every probe, exactly once');
    assert.match(
      out,
      new RegExp(
        `demo\\.alerts +Terminated +received [\\d,]+, processed [\\d,]+, failed ${faults}, dropped 0, restarts ${faults}`,
      ),
    );
    assert.match(out, new RegExp(`shutdown +2 terminated, 0 failed, ${faults} restarts, ${faults} dead letters`));
    // Sensor 16 readings round-robin: full windows per sensor.
    assert.ok(windows >= Math.floor(readings / 16 / 64) * 16 - 16 && windows <= Math.ceil(readings / 64));
  });

  it('serves Prometheus metrics while it runs with --metrics-port', async () => {
    const script = fileURLToPath(new URL('../examples/demo.js', import.meta.url));
    const child = spawn(process.execPath, [script, '--metrics-port', '0'], {
      env: { ...process.env, DEMO_SECONDS: '3' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const url = await eventually(() => {
      const found = /metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(out)?.[1];
      assert.ok(found, 'the demo says where its metrics are');
      return found;
    }, 20_000);
    // Once readings flow, the stats kernel's counters show in the scrape.
    const processed = await eventually(async () => {
      const text = await (await fetch(url)).text();
      const family = parsePrometheusTextFormat(text).find((f) => f.name === 'ringkernel_kernel_messages_total');
      const sample = family?.metrics.find(
        (m) => m.labels?.kernel === 'demo.stats' && m.labels?.outcome === 'processed',
      );
      assert.ok(Number(sample?.value) > 0, 'demo.stats has processed readings');
      return Number(sample?.value);
    }, 20_000);
    assert.ok(processed > 0);
    assert.equal(await exited, 0);
  });
});

describe('examples/cluster: a pipeline across two node processes over NATS', { skip: natsServerMissing() }, () => {
  it('starts its nats-server and nodes, says where each kernel lives, delivers every reading in order, exits 0', () => {
    const script = fileURLToPath(new URL('../examples/cluster.js', import.meta.url));
    const out = execFileSync(process.execPath, [script], {
      encoding: 'utf8',
      env: { ...process.env, EXAMPLE_READINGS: '20000' },
      timeout: 120_000,
    });
    assert.match(out, /pipeline\/average\s+on node stage-2 \(cpu, at-most-once\)/);
    assert.match(out, /pipeline\/convert\s+on node stage-1 \(cpu, at-most-once\)/);
    assert.match(out, /20,000 readings through 2 nodes in [\d.]+ s \([\d,]+\/s\): mean 121\.1 °F, out of order 0/);
    assert.match(out, /lost 0, refused 0/);
  });
});
