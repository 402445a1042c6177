/**
 * `npm start`: a stream of sensor readings through two kernels on the CPU backend — windowed statistics, then
 * threshold alerts — with a live progress line and a summary. Runs about 20 s (DEMO_SECONDS to change).
 *
 * Traced with OpenTelemetry, honouring the standard variables: spans go over OTLP/HTTP to
 * `http://localhost:4318/v1/traces` (Jaeger, see README "Trace in Jaeger") unless `OTEL_EXPORTER_OTLP_ENDPOINT` /
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` say otherwise; `OTEL_TRACES_EXPORTER=none` turns tracing off. Without
 * `OTEL_TRACES_SAMPLER`, one message in a thousand is traced (the demo sends millions). With no
 * collector listening the demo runs the same and says once that traces could not be delivered.
 */
import { RingKernelRuntime } from '../src/index.js';
import { Alerts, Stats, WINDOW } from './demo-kernels.js';

const seconds = Number(process.env.DEMO_SECONDS ?? 20);
const SENSORS = 16;

const sampled = (process.env.OTEL_TRACES_SAMPLER ?? '') === '';
await using runtime = await RingKernelRuntime.builder()
  .backend('cpu')
  .tracing({
    serviceName: process.env.OTEL_SERVICE_NAME ?? 'ringkernel-demo',
    // At exit, wait at most a second for a collector that does not answer.
    shutdownTimeoutMs: 1000,
    ...(sampled ? { sampler: 'parentbased_traceidratio', samplerRatio: 0.001 } : {}),
  })
  .build();
console.log(`ringkernel demo: backend ${runtime.backend}, ${runtime.config.workers} worker threads, ${seconds} s`);
const tracing = runtime.tracing;
console.log(
  tracing === undefined
    ? 'tracing: off (OTEL_TRACES_EXPORTER=none)'
    : `tracing: ${tracing.options.sampler}${tracing.options.sampler.endsWith('ratio') ? ` ${tracing.options.samplerRatio}` : ''} → ${tracing.options.exporter === 'otlp' ? tracing.options.endpoint : tracing.options.exporter}`,
);
const stats = await runtime.launch(Stats, 1, 1, { autoActivate: true });
const alerts = await runtime.launch(Alerts, 1, 1, { autoActivate: true });

const callLatencies: number[] = [];
const levels = [0, 0, 0];
let readings = 0;
let windows = 0;
const started = performance.now();
const deadline = started + seconds * 1000;
let nextReport = started + 500;
const reading = { sensor: 0, seq: 0, celsius: 0 };

/** Moves window statistics from the stats kernel to the alerts kernel, timing each call. */
async function forwardWindows(): Promise<void> {
  for (let stat = stats.tryReceive(); stat !== undefined; stat = stats.tryReceive()) {
    windows++;
    const t0 = performance.now();
    const alert = await alerts.call(stat.toObject());
    callLatencies.push((performance.now() - t0) * 1000);
    levels[alert.level] = (levels[alert.level] ?? 0) + 1;
  }
}

function report(final: boolean): void {
  const elapsed = (performance.now() - started) / 1000;
  const line = `${readings.toLocaleString('en')} readings  ${Math.round(readings / elapsed).toLocaleString('en')} msg/s  ${windows.toLocaleString('en')} windows  alerts: ${levels[1]} warm, ${levels[2]} hot`;
  process.stdout.write(final ? `\r${line}\n` : `\r${line}`);
}

while (performance.now() < deadline) {
  // A burst of readings: each sensor drifts, and sensor 3 overheats now and then.
  for (let i = 0; i < 4096; i++) {
    reading.sensor = readings % SENSORS;
    reading.seq = readings;
    const phase = readings / 50_000;
    reading.celsius =
      40 + 15 * Math.sin(phase + reading.sensor) + (reading.sensor === 3 && Math.sin(phase / 3) > 0.9 ? 45 : 0);
    if (!stats.trySend(reading)) await stats.send(reading);
    readings++;
  }
  await forwardWindows();
  if (performance.now() >= nextReport) {
    report(false);
    nextReport += 500;
  }
}
// Let the last readings through the stats kernel, and their windows through the alerts kernel.
while (stats.metrics().messagesProcessed < readings) await new Promise((resolve) => setTimeout(resolve, 1));
await forwardWindows();
report(true);

const elapsed = (performance.now() - started) / 1000;
callLatencies.sort((a, b) => a - b);
const pct = (q: number): string => (callLatencies[Math.floor(q * (callLatencies.length - 1))] ?? 0).toFixed(1);
console.log(`\nsummary`);
console.log(
  `  readings sent     ${readings.toLocaleString('en')} in ${elapsed.toFixed(1)} s (${Math.round(readings / elapsed).toLocaleString('en')} msg/s)`,
);
console.log(
  `  windows of ${WINDOW}     ${windows.toLocaleString('en')}   alerts: ${levels[0]} normal, ${levels[1]} warm, ${levels[2]} hot`,
);
console.log(
  `  call latency      p50 ${pct(0.5)} µs   p99 ${pct(0.99)} µs   (${callLatencies.length.toLocaleString('en')} calls, stats → alerts)`,
);
for (const handle of [stats, alerts]) {
  const m = handle.metrics();
  console.log(
    `  ${m.name.padEnd(12)} ${m.status.padEnd(10)} received ${m.messagesReceived.toLocaleString('en')}, processed ${m.messagesProcessed.toLocaleString('en')}, failed ${m.messagesFailed}, dropped ${m.messagesDropped}, handler p50 ${m.latency.p50us} µs p99 ${m.latency.p99us} µs, worker ${m.workerThreadId}`,
  );
}
const shutdown = await runtime.shutdown();
console.log(
  `  shutdown          ${shutdown.terminated} terminated, ${shutdown.failed} failed, ${shutdown.deadLetters} dead letters, ${shutdown.durationMs} ms`,
);
if (tracing !== undefined) {
  const t = tracing.stats();
  console.log(
    `  traces            ${t.spansExported.toLocaleString('en')} spans exported, ${t.spansFailed.toLocaleString('en')} not delivered, ${t.recordsDropped.toLocaleString('en')} dropped (telemetry rings full)`,
  );
}
if (shutdown.failed !== 0 || windows === 0) process.exitCode = 1;
