/**
 * The receiving process of the cluster benchmark (bench/cluster-cases.ts forks it): one raw NATS connection that
 * answers `raw.echo` and counts `raw.sink`, and the cluster node `bench-a` hosting the kernels the other process
 * calls and sends to. It answers the parent over the fork's IPC channel:
 * - `{ id, until: what, count }`: replies `{ id }` once `what` (`raw`: raw messages received; `sink`: messages the
 *   sink kernel handled plus those the node counted as lost; `durable`: handled by the at-least-once sink) reaches
 *   `count` (polled every ms here, so the parent's clock stops within a millisecond of it);
 * - `{ id, lost: true }`: replies `{ id, lost }`, the messages this node counted as lost;
 * - `{ stop: true }`: shuts the node down and exits.
 * It says `{ ready: true }` once its kernels are launched.
 */
import { connect } from '@nats-io/transport-node';
import { RingKernelRuntime } from '../src/index.js';
import { BenchEcho, BenchSink } from './bench-kernels.js';

type Request =
  | { readonly id: number; readonly until: 'raw' | 'sink' | 'durable'; readonly count: number }
  | { readonly id: number; readonly lost: true }
  | { readonly stop: true };

const servers = process.argv[2];
if (servers === undefined || process.send === undefined) {
  throw new Error('cluster-child: run by bench/cluster-cases.ts (fork, with the server URL)');
}
const reply = (message: object): void => {
  process.send?.(message);
};

const raw = await connect({ servers });
let rawReceived = 0;
raw.subscribe('raw.echo', {
  callback: (_error, msg) => {
    msg.respond(msg.data);
  },
});
raw.subscribe('raw.sink', {
  callback: () => {
    rawReceived++;
  },
});
await raw.flush();

const node = await RingKernelRuntime.builder()
  .config({ workers: 1 })
  .cluster({ servers, node: 'bench-a', cluster: 'bench', atLeastOnce: ['durable/*'] })
  .build();
await node.launch(BenchEcho, 1, 1, { name: 'echo', autoActivate: true });
const sink = await node.launch(BenchSink, 1, 1, { name: 'sink', autoActivate: true, queueCapacity: 65_536 });
const durable = await node.launch(BenchSink, 1, 1, { name: 'durable/sink', autoActivate: true, queueCapacity: 65_536 });
const lost = (): number => node.cluster?.stats().lost ?? 0;
const counters = {
  raw: () => rawReceived,
  sink: () => sink.counters().processed + lost(),
  durable: () => durable.counters().processed,
};

process.on('message', (request: Request) => {
  if ('stop' in request) {
    void (async () => {
      await node.shutdown();
      await raw.close();
      process.exit(0);
    })();
    return;
  }
  if ('lost' in request) {
    reply({ id: request.id, lost: lost() });
    return;
  }
  const counter = counters[request.until];
  const poll = (): void => {
    if (counter() >= request.count) reply({ id: request.id });
    else setTimeout(poll, 1);
  };
  poll();
});
reply({ ready: true });
