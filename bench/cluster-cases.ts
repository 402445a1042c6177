/**
 * The cluster's cases, each beside raw NATS with the same client in the same run: two nodes (two runtimes, each
 * with its own NATS connection) in this process, on a nats-server started here on loopback. Skipped (no rows)
 * where no nats-server can be had (scripts/fetch-nats-server.sh gets one).
 *
 * - `nats.request.64` / `cluster.call.64`: one request at a time, 64 bytes each way; p50/p99 round trip.
 * - `nats.publish.64` / `cluster.send.64`: one way, as fast as the sender can; msg/s as the receiving side counts.
 *   Raw: one 64-byte message per publish. Cluster: `trySend` of 64-byte messages, coalesced into NATS messages, into
 *   a kernel's ring on the other node.
 * - `cluster.atLeastOnce.64`: `send` through JetStream (file storage), until the kernel has handled them all.
 */
import { RingKernelRuntime } from '../src/index.js';
import { natsServerMissing, startNatsServer } from '../test/support/nats-server.js';
import { BenchEcho, BenchSink } from './bench-kernels.js';
import { type CaseResult, percentiles } from './case-result.js';

type Sample = { seq: number; flags: number; ts: number; data: number[] };
const sample = (seq: number): Sample => ({ seq, flags: 0, ts: 0, data: [1, 2, 3, 4, 5, 6] });
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Waits until `done()` holds, polling every ms, at most `timeoutMs`. */
async function until(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error('bench: the cluster case did not finish in time');
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

export async function clusterCases(count: number, rtts: number): Promise<CaseResult[]> {
  if (natsServerMissing() !== undefined) {
    console.log(`cluster cases ${natsServerMissing()}`);
    return [];
  }
  const { connect } = await import('@nats-io/transport-node');
  const server = await startNatsServer();
  const results: CaseResult[] = [];
  const node = (name: string, atLeastOnce: string[] = []) =>
    RingKernelRuntime.builder()
      .config({ workers: 1 })
      .cluster({ servers: server.url, node: name, cluster: 'bench', atLeastOnce })
      .build();
  try {
    // Raw NATS request/reply and publish, with the same client.
    const requester = await connect({ servers: server.url });
    const responder = await connect({ servers: server.url });
    responder.subscribe('raw.echo', {
      callback: (_error, msg) => {
        msg.respond(msg.data);
      },
    });
    let rawReceived = 0;
    responder.subscribe('raw.sink', {
      callback: () => {
        rawReceived++;
      },
    });
    await responder.flush();
    const payload = new Uint8Array(64);
    const raw: number[] = [];
    for (let i = 0; i < rtts + 200; i++) {
      const t0 = performance.now();
      await requester.request('raw.echo', payload, { timeout: 5000 });
      if (i >= 200) raw.push((performance.now() - t0) * 1000);
    }
    results.push({ name: 'nats.request.64', msgsPerSec: 0, ...percentiles(raw) });
    const rawStart = performance.now();
    for (let i = 0; i < count; i++) {
      requester.publish('raw.sink', payload);
      if ((i & 1023) === 1023) await tick();
    }
    await until(() => rawReceived >= count, 120_000);
    results.push({
      name: 'nats.publish.64',
      msgsPerSec: Math.round(count / ((performance.now() - rawStart) / 1000)),
      p50us: 0,
      p99us: 0,
    });
    await requester.close();
    await responder.close();

    const a = await node('bench-a', ['durable/*']);
    const b = await node('bench-b');
    try {
      await a.launch(BenchEcho, 1, 1, { name: 'echo', autoActivate: true });
      const sink = await a.launch(BenchSink, 1, 1, { name: 'sink', autoActivate: true, queueCapacity: 65_536 });
      const durable = await a.launch(BenchSink, 1, 1, {
        name: 'durable/sink',
        autoActivate: true,
        queueCapacity: 65_536,
      });
      await until(() => b.cluster?.registry.get('durable/sink') !== undefined, 10_000);
      const echo = b.ref<Sample, unknown>('echo');
      const calls: number[] = [];
      for (let i = 0; i < rtts + 200; i++) {
        const t0 = performance.now();
        await echo.call(sample(i), { timeout: 5000 });
        if (i >= 200) calls.push((performance.now() - t0) * 1000);
      }
      results.push({ name: 'cluster.call.64', msgsPerSec: 0, ...percentiles(calls) });

      const remoteSink = b.ref<Sample, unknown>('sink');
      const value = sample(0);
      const sendStart = performance.now();
      for (let i = 0; i < count; i++) {
        value.seq = i;
        remoteSink.trySend(value);
        if ((i & 1023) === 1023) await tick();
      }
      // At-most-once: what the receiving node counted as lost (a slow consumer's drops) ends the wait too.
      const lost = (): number => a.cluster?.stats().lost ?? 0;
      await until(() => sink.counters().processed + lost() >= count, 120_000).catch((error: Error) => {
        throw new Error(`${error.message}: ${sink.counters().processed} handled, ${lost()} lost of ${count}`);
      });
      if (lost() > 0) console.log(`cluster.send.64: ${lost()} of ${count} lost (counted, dead-lettered)`);
      results.push({
        name: 'cluster.send.64',
        msgsPerSec: Math.round(count / ((performance.now() - sendStart) / 1000)),
        p50us: 0,
        p99us: 0,
      });

      const durableCount = Math.min(count, 200_000);
      const remoteDurable = b.ref<Sample, unknown>('durable/sink');
      const durableStart = performance.now();
      let last: Promise<void> = Promise.resolve();
      for (let i = 0; i < durableCount; i++) {
        value.seq = i;
        last = remoteDurable.send(value);
        if ((i & 1023) === 1023) await tick();
      }
      await last;
      await until(() => durable.counters().processed >= durableCount, 120_000);
      results.push({
        name: 'cluster.atLeastOnce.64',
        msgsPerSec: Math.round(durableCount / ((performance.now() - durableStart) / 1000)),
        p50us: 0,
        p99us: 0,
      });
    } finally {
      await b.shutdown();
      await a.shutdown();
    }
  } finally {
    await server.close();
  }
  return results;
}
