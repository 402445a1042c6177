/**
 * `npm run demo:cluster`: a pipeline whose stages live on different nodes of a cluster. This process starts a
 * nats-server on loopback (unless NATS_URL names one), two node processes — `stage-1` hosts `pipeline/convert`,
 * `stage-2` hosts `pipeline/average` — and joins as a third node, `driver`, that streams readings into the first
 * stage by name. Stage 1's node forwards its kernel's outputs to `pipeline/average` by name; the driver then asks
 * the last stage for its summary. Prints where each kernel lives and the throughput.
 *
 * EXAMPLE_READINGS sets the count (default 200 000). Against an existing NATS:
 * `NATS_URL=nats://host:4222 npm run demo:cluster` (JetStream must be on for the registry).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RingKernelRuntime } from '../src/index.js';
import { natsServerMissing, startNatsServer } from '../test/support/nats-server.js';
import { Average, Convert } from './cluster-kernels.js';

type CelsiusIn = { sensor: number; seq: number; celsius: number };
type FahrenheitOut = { sensor: number; seq: number; fahrenheit: number };
type SummaryOut = { count: number; outOfOrder: number; mean: number };

const role = process.argv[2];
const url = process.env.NATS_URL;

if (role === 'stage-1' || role === 'stage-2') {
  // A node process: host one stage; stage 1 also forwards its outputs to stage 2 by name.
  const runtime = await RingKernelRuntime.builder()
    .config({ workers: 1 })
    .cluster({ servers: url as string, node: role, cluster: 'demo' })
    .build();
  if (role === 'stage-1') {
    const convert = await runtime.launch(Convert, 1, 1, { name: 'pipeline/convert', autoActivate: true });
    console.log('ready');
    const forward = async (): Promise<void> => {
      while (runtime.cluster?.registry.get('pipeline/average') === undefined) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const average = runtime.ref<FahrenheitOut, SummaryOut>('pipeline/average');
      for (;;) {
        const out = await convert.receive(3_600_000).catch(() => undefined);
        if (out === undefined) return;
        average.trySend(out);
        for (let next = convert.tryReceive(); next !== undefined; next = convert.tryReceive()) average.trySend(next);
      }
    };
    void forward();
  } else {
    await runtime.launch(Average, 1, 1, { name: 'pipeline/average', autoActivate: true });
    console.log('ready');
  }
  process.once('SIGTERM', () => void runtime.shutdown().then(() => process.exit(0)));
  setInterval(() => {}, 1 << 30);
} else {
  const readings = Number(process.env.EXAMPLE_READINGS ?? 200_000);
  if (url === undefined && natsServerMissing() !== undefined) {
    console.error(
      'demo:cluster needs a nats-server: run scripts/fetch-nats-server.sh (or apt-get install nats-server), or set NATS_URL',
    );
    process.exit(2);
  }
  const server = url === undefined ? await startNatsServer() : undefined;
  const servers = url ?? (server?.url as string);
  const script = fileURLToPath(import.meta.url);
  const nodes = ['stage-1', 'stage-2'].map((stage) =>
    spawn(process.execPath, [script, stage], {
      env: { ...process.env, NATS_URL: servers },
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  await Promise.all(
    nodes.map(
      (child) =>
        new Promise<void>((resolve, reject) => {
          child.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
          child.once('exit', (code) => reject(new Error(`a node exited with ${code}`)));
        }),
    ),
  );
  const runtime = await RingKernelRuntime.builder()
    .config({ workers: 1 })
    .cluster({ servers, node: 'driver', cluster: 'demo' })
    .build();
  try {
    const registry = runtime.cluster?.registry;
    while ((registry?.lookup('pipeline/*').length ?? 0) < 2) await new Promise((resolve) => setTimeout(resolve, 20));
    for (const entry of registry?.lookup('pipeline/**') ?? []) {
      console.log(`${entry.name.padEnd(18)} on node ${entry.node} (${entry.backend}, ${entry.delivery})`);
    }
    const convert = runtime.ref<CelsiusIn, FahrenheitOut>('pipeline/convert');
    const average = runtime.ref<FahrenheitOut, SummaryOut>('pipeline/average');
    const started = performance.now();
    const reading = { sensor: 1, seq: 0, celsius: 0 };
    for (let seq = 0; seq < readings; seq++) {
      reading.seq = seq;
      reading.celsius = seq % 100;
      convert.trySend(reading);
      if ((seq & 1023) === 1023) await new Promise((resolve) => setImmediate(resolve));
    }
    let summary = await average.call({ sensor: 0, seq: 0xffff_ffff, fahrenheit: 0 }, { timeout: 10_000 });
    while (summary.count < readings && performance.now() - started < 120_000) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      summary = await average.call({ sensor: 0, seq: 0xffff_ffff, fahrenheit: 0 }, { timeout: 10_000 });
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `${summary.count.toLocaleString('en-US')} readings through 2 nodes in ${seconds.toFixed(2)} s ` +
        `(${Math.round(summary.count / seconds).toLocaleString('en-US')}/s): mean ${summary.mean.toFixed(1)} °F, ` +
        `out of order ${summary.outOfOrder}`,
    );
    const stats = runtime.cluster?.stats();
    console.log(`lost ${stats?.lostByPeers ?? 0}, refused ${stats?.refusedByPeers ?? 0}`);
  } finally {
    await runtime.shutdown();
    for (const child of nodes) child.kill('SIGTERM');
    await Promise.all(nodes.map((child) => new Promise((resolve) => child.once('exit', resolve))));
    await server?.close();
  }
}
