/**
 * `npm start`: an XState machine that runs a small actor system on the CPU backend. It spawns two kernels with
 * `fromKernel` under a supervisor — windowed statistics over sensor readings, then threshold alerts — wires them
 * kernel-to-kernel (worker to worker, no hop through this thread) and streams readings through them. Now and
 * then a sensor sends garbage: the alerts kernel fails on purpose, the supervisor restarts it, and nothing queued
 * for it is lost. Live progress, then a summary. Runs about 20 s (DEMO_SECONDS to change); `--metrics-port N`
 * serves Prometheus metrics meanwhile.
 *
 * Traced with OpenTelemetry, honouring the standard variables: spans go over OTLP/HTTP to
 * `http://localhost:4318/v1/traces` (Jaeger, see README "Trace in Jaeger") unless `OTEL_EXPORTER_OTLP_ENDPOINT` /
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` say otherwise; `OTEL_TRACES_EXPORTER=none` turns tracing off. Without
 * `OTEL_TRACES_SAMPLER`, one message in a thousand is traced (the demo sends millions). With no
 * collector listening the demo runs the same and says once that traces could not be delivered.
 */
import { assign, createActor, fromCallback, fromPromise, setup, toPromise } from 'xstate';
import {
  fromKernel,
  type KernelActorOutputEvent,
  type KernelActorSnapshot,
  type KernelHandle,
  RestartStrategy,
  RingKernelRuntime,
  type SupervisorEvent,
} from '../src/index.js';
import { Alerts, PROBE_SENSOR, Stats, WINDOW } from './demo-kernels.js';

const seconds = Number(process.env.DEMO_SECONDS ?? 20);
/** `npm start -- --metrics-port 9464` serves Prometheus metrics while the demo runs (0: any free port). */
const metricsArg = process.argv.indexOf('--metrics-port');
const metricsPort = metricsArg >= 0 ? Number(process.argv[metricsArg + 1]) : undefined;
if (metricsPort !== undefined && !(Number.isInteger(metricsPort) && metricsPort >= 0 && metricsPort < 65_536)) {
  console.error(`--metrics-port must be a port number, got ${process.argv[metricsArg + 1]}`);
  process.exit(2);
}
const SENSORS = 16;
/** The sensor whose garbage readings fail the alerts kernel. */
const FAULTY_SENSOR = 7;

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
const supervisor = runtime.supervisor({
  name: 'demo',
  strategy: RestartStrategy.OneForOne,
  maxRestarts: 5,
  windowMs: 10_000,
  backoff: { initialMs: 20, maxMs: 500 },
});
const metrics = metricsPort === undefined ? undefined : await runtime.prometheusExporter().serve(metricsPort);
console.log(
  `ringkernel demo: backend ${runtime.backend}, ${runtime.config.workers} worker threads, ${seconds} s, supervisor '${supervisor.name}' (${supervisor.strategy})`,
);
const tracing = runtime.tracing;
console.log(
  tracing === undefined
    ? 'tracing: off (OTEL_TRACES_EXPORTER=none)'
    : `tracing: ${tracing.options.sampler}${tracing.options.sampler.endsWith('ratio') ? ` ${tracing.options.samplerRatio}` : ''} → ${tracing.options.exporter === 'otlp' ? tracing.options.endpoint : tracing.options.exporter}`,
);

/** What the stream did: the pump's figures. */
interface StreamFigures {
  readings: number;
  readingsPerSensor: number[];
  faults: number;
  probes: number;
  callLatenciesUs: number[];
  started: number;
}
const figures: StreamFigures = {
  readings: 0,
  readingsPerSensor: Array(SENSORS).fill(0),
  faults: 0,
  probes: 0,
  callLatenciesUs: [],
  started: 0,
};

type DemoEvent =
  | KernelActorOutputEvent<{ readonly sensor: number; readonly level: number }>
  | { type: 'supervisor'; event: SupervisorEvent }
  | { type: 'stream.done' };

/** The kernels' handles, once the machine has them. */
const kernels: { stats?: KernelHandle; alerts?: KernelHandle } = {};

const handleOf = (snapshot: unknown): KernelHandle => {
  const handle = (snapshot as KernelActorSnapshot | undefined)?.handle;
  if (handle === undefined) throw new Error('kernel not launched');
  return handle;
};

/**
 * The readings stream: writes straight into the stats kernel's ring (the data plane: `trySend`, no XState event
 * per message), probes the alerts kernel's call latency, and makes sensor 7 send garbage now and then.
 */
const stream = fromCallback<{ type: 'noop' }, { stats: KernelHandle; alerts: KernelHandle }>(({ input, sendBack }) => {
  let stopped = false;
  const { stats, alerts } = input;
  const reading = { sensor: 0, seq: 0, celsius: 0 };
  const probe = { sensor: PROBE_SENSOR, window: 0, count: WINDOW, mean: 20, stddev: 1, min: 19, max: 21 };
  figures.started = performance.now();
  const deadline = figures.started + seconds * 1000;
  let nextFault = figures.started + Math.min(1000, (seconds * 1000) / 4);
  let nextReport = figures.started + 500;
  void (async () => {
    while (!stopped && performance.now() < deadline) {
      // A burst of readings: each sensor drifts, and sensor 3 overheats now and then.
      for (let i = 0; i < 4096; i++) {
        const n = figures.readings;
        reading.sensor = n % SENSORS;
        reading.seq = n;
        const phase = n / 50_000;
        reading.celsius =
          40 + 15 * Math.sin(phase + reading.sensor) + (reading.sensor === 3 && Math.sin(phase / 3) > 0.9 ? 45 : 0);
        if (reading.sensor === FAULTY_SENSOR && performance.now() >= nextFault) {
          reading.celsius = Number.NaN;
          figures.faults++;
          nextFault += 5000;
        }
        if (!stats.trySend(reading)) await stats.send(reading);
        figures.readings++;
        figures.readingsPerSensor[reading.sensor] = (figures.readingsPerSensor[reading.sensor] ?? 0) + 1;
      }
      const t0 = performance.now();
      figures.probes++;
      try {
        await alerts.call(probe, { timeout: 5000 });
        figures.callLatenciesUs.push((performance.now() - t0) * 1000);
      } catch {
        // Timed out while the alerts kernel restarted: nothing to time (the kernel still takes the probe in).
      }
      if (performance.now() >= nextReport) {
        report(false);
        nextReport += 500;
      }
    }
    sendBack({ type: 'stream.done' } as never);
  })();
  return () => {
    stopped = true;
  };
});

let hot = 0;
let restarts = 0;
function report(final: boolean): void {
  const elapsed = (performance.now() - figures.started) / 1000;
  const line = `${figures.readings.toLocaleString('en')} readings  ${Math.round(figures.readings / elapsed).toLocaleString('en')} msg/s  hot alerts ${hot}  faults ${figures.faults}  restarts ${restarts}`;
  // A terminal redraws one line in place; a pipe or a log file gets one line per update, with no carriage returns.
  if (process.stdout.isTTY) process.stdout.write(final ? `\r${line}\n` : `\r${line}`);
  else process.stdout.write(`${line}\n`);
}

/** Every full window of every sensor, which the alerts kernel must have taken in (handled or failed on). */
const expectedWindows = (): number => figures.readingsPerSensor.reduce((sum, n) => sum + Math.floor(n / WINDOW), 0);

interface DemoContext {
  hotBySensor: Record<number, number>;
  /** Kernels whose actors have reported their launch. */
  launched: string[];
  ok: boolean;
}

const demo = setup({
  types: {
    events: {} as DemoEvent,
    context: {} as DemoContext,
    output: {} as { ok: boolean; hotBySensor: Record<number, number> },
  },
  actors: {
    stats: fromKernel(Stats, { runtime, supervisor }),
    alerts: fromKernel(Alerts, { runtime, supervisor, launch: { onHandlerError: 'fail' } }),
    wire: fromPromise(() => runtime.connect('demo.stats', 'demo.alerts')),
    stream,
    settle: fromPromise<void, { alerts: KernelHandle }>(async ({ input }) => {
      // The last readings through the stats kernel, and their windows through the alerts kernel.
      const deadline = performance.now() + 10_000;
      while (input.alerts.counters().received < expectedWindows() + figures.probes) {
        if (performance.now() > deadline) throw new Error('the alerts kernel did not receive every window');
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    }),
  },
}).createMachine({
  id: 'demo',
  context: { hotBySensor: {}, launched: [], ok: false },
  invoke: [
    { src: 'stats', id: 'stats', systemId: 'stats', onError: '.failed' },
    { src: 'alerts', id: 'alerts', systemId: 'alerts', onError: '.failed' },
  ],
  on: {
    'kernel.output': {
      actions: assign(({ context, event }) => {
        hot++;
        const sensor = event.output.sensor;
        return { hotBySensor: { ...context.hotBySensor, [sensor]: (context.hotBySensor[sensor] ?? 0) + 1 } };
      }),
    },
    supervisor: {
      actions: ({ event }) => {
        if (event.event.type === 'restarted') restarts++;
      },
    },
  },
  initial: 'launching',
  states: {
    launching: {
      // Both kernels are up once each actor has reported its kernel's first status.
      on: {
        'kernel.status': {
          actions: assign({ launched: ({ context, event }) => [...new Set([...context.launched, event.kernel])] }),
        },
      },
      always: { guard: ({ context }) => context.launched.length === 2, target: 'wiring' },
    },
    wiring: { invoke: { src: 'wire', onDone: 'streaming', onError: 'failed' } },
    streaming: {
      invoke: {
        src: 'stream',
        input: ({ self }) => {
          kernels.stats = handleOf(self.system.get('stats')?.getSnapshot());
          kernels.alerts = handleOf(self.system.get('alerts')?.getSnapshot());
          return kernels as { stats: KernelHandle; alerts: KernelHandle };
        },
      },
      on: { 'stream.done': 'settling' },
    },
    settling: {
      invoke: {
        src: 'settle',
        input: ({ self }) => ({ alerts: handleOf(self.system.get('alerts')?.getSnapshot()) }),
        onDone: 'done',
        onError: 'failed',
      },
    },
    done: { type: 'final', entry: assign({ ok: true }) },
    failed: { type: 'final' },
  },
  output: ({ context }) => ({ ok: context.ok, hotBySensor: context.hotBySensor }),
});

if (metrics !== undefined) console.log(`metrics at http://127.0.0.1:${metrics.port}/metrics`);
const actor = createActor(demo);
// The supervisor's events become the machine's events (control plane: a handful per run).
supervisor.on((event) => actor.send({ type: 'supervisor', event }));
actor.start();
const result = await toPromise(actor);
report(true);
// The machine is final: its kernel actors stopped, which terminates their kernels (draining).
const { stats, alerts } = kernels;
if (stats === undefined || alerts === undefined) throw new Error('the demo never got to stream');
await Promise.all([stats.exited, alerts.exited]);

const elapsed = (performance.now() - figures.started) / 1000;
const latencies = figures.callLatenciesUs.sort((a, b) => a - b);
const pct = (q: number): string => (latencies[Math.floor(q * (latencies.length - 1))] ?? 0).toFixed(1);
const failedWindows = runtime.deadLetters.counts()['handler-error'] ?? 0;
console.log(`\nsummary (the machine ended in '${result.ok ? 'done' : 'failed'}')`);
console.log(
  `  readings sent     ${figures.readings.toLocaleString('en')} in ${elapsed.toFixed(1)} s (${Math.round(figures.readings / elapsed).toLocaleString('en')} msg/s), stats → alerts kernel-to-kernel`,
);
console.log(
  `  windows of ${WINDOW}     ${expectedWindows().toLocaleString('en')}: ${(expectedWindows() - failedWindows).toLocaleString('en')} judged, ${failedWindows} failed on purpose (dead letters), hot alerts ${hot} (${Object.entries(
    result.hotBySensor,
  )
    .map(([sensor, n]) => `sensor ${sensor}: ${n}`)
    .join(', ')})`,
);
console.log(
  `  supervision       ${figures.faults} garbage readings, ${alerts.restarts} restarts of demo.alerts, supervisor ${supervisor.status}`,
);
console.log(
  `  call latency      p50 ${pct(0.5)} µs   p99 ${pct(0.99)} µs   (${latencies.length.toLocaleString('en')} probe calls to demo.alerts)`,
);
for (const handle of [stats, alerts]) {
  const m = handle.metrics();
  console.log(
    `  ${m.name.padEnd(12)} ${m.status.padEnd(10)} received ${m.messagesReceived.toLocaleString('en')}, processed ${m.messagesProcessed.toLocaleString('en')}, failed ${m.messagesFailed}, dropped ${m.messagesDropped}, restarts ${m.restarts}, handler p50 ${m.latency.p50us} µs p99 ${m.latency.p99us} µs`,
  );
}
await metrics?.close();
const shutdown = await runtime.shutdown();
console.log(
  `  shutdown          ${shutdown.terminated} terminated, ${shutdown.failed} failed, ${shutdown.restarts} restarts, ${shutdown.deadLetters} dead letters, ${shutdown.durationMs} ms`,
);
if (tracing !== undefined) {
  const t = tracing.stats();
  console.log(
    `  traces            ${t.spansExported.toLocaleString('en')} spans exported, ${t.spansFailed.toLocaleString('en')} not delivered, ${t.recordsDropped.toLocaleString('en')} dropped (telemetry rings full)`,
  );
}
if (!result.ok || shutdown.failed !== 0 || alerts.restarts !== figures.faults) process.exitCode = 1;
