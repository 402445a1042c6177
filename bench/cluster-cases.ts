/**
 * The cluster's cases, each beside raw NATS with the same client in the same run, across two processes on one
 * nats-server started here on loopback: this process sends and calls (node `bench-b`, and a raw connection); a
 * forked one (bench/cluster-child.ts) receives (node `bench-a` hosting the kernels, and a raw connection that
 * answers and counts). Skipped (no rows) where no nats-server can be had (scripts/fetch-nats-server.sh gets one).
 *
 * - `nats.request.64` / `cluster.call.64`: one request at a time, 64 bytes each way; p50/p99 round trip.
 * - `nats.publish.64` / `cluster.send.64`: one way, as fast as the sender can; msg/s as the receiving process counts.
 *   Raw: one 64-byte message per publish. Cluster: `trySend` of 64-byte messages, coalesced into NATS messages, into
 *   a kernel's ring on the other node. Both are warmed up alike first (the send path's code takes a few hundred
 *   thousand messages to reach its steady speed), then run in alternating rounds; each row is the median round, and
 *   `cluster.send.pairedRatio` the median of the rounds' ratios.
 * - `cluster.atLeastOnce.64`: `send` through JetStream (file storage), until the kernel has handled them all.
 *
 * On one machine the two processes and nats-server share its cores; across machines each side would have its own,
 * and the network's round trip would add to both `call` and the raw request alike.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { RingKernelRuntime } from '../src/index.js';
import { natsServerMissing, startNatsServer } from '../test/support/nats-server.js';
import { type CaseResult, median, percentiles, round } from './case-result.js';
// This process defines the kernels it addresses (as an app imports its kernel modules): their message types then
// come from the definitions, not raw bytes.
import './bench-kernels.js';

type Sample = { seq: number; flags: number; ts: number; data: number[] };
const sample = (seq: number): Sample => ({ seq, flags: 0, ts: 0, data: [1, 2, 3, 4, 5, 6] });
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Rounds of each one-way case, alternating which goes first. */
const SEND_ROUNDS = 3;

/** The receiving process, asked over IPC. */
class Receiver {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, (reply: { lost?: number }) => void>();
  #nextId = 0;

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.on('message', (reply: { id?: number; lost?: number }) => {
      if (reply.id === undefined) return;
      this.#waiting.get(reply.id)?.(reply);
      this.#waiting.delete(reply.id);
    });
  }

  static async start(servers: string): Promise<Receiver> {
    const script = fileURLToPath(new URL('./cluster-child.js', import.meta.url));
    const child = fork(script, [servers], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error("bench: the cluster's receiving process was not ready within 30 s"));
      }, 30_000);
      const onExit = (code: number | null): void => {
        clearTimeout(timer);
        reject(new Error(`bench: the cluster's receiving process exited with ${code} before it was ready`));
      };
      child.once('exit', onExit);
      child.once('message', () => {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve();
      });
    });
    return new Receiver(child);
  }

  #ask(request: object, timeoutMs: number): Promise<{ lost?: number }> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`bench: the cluster's receiving process did not answer ${JSON.stringify(request)} in time`));
      }, timeoutMs);
      this.#waiting.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.#child.send({ id, ...request });
    });
  }

  /** Resolves once the receiving side's `what` count reaches `count`. */
  async until(what: 'raw' | 'sink' | 'durable', count: number): Promise<void> {
    await this.#ask({ until: what, count }, 120_000);
  }

  /** Messages the receiving node counted as lost. */
  async lost(): Promise<number> {
    return (await this.#ask({ lost: true }, 10_000)).lost ?? 0;
  }

  async stop(): Promise<void> {
    const exited = once(this.#child, 'exit');
    this.#child.send({ stop: true });
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
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
  try {
    const receiver = await Receiver.start(server.url);
    const requester = await connect({ servers: server.url });
    const b = await RingKernelRuntime.builder()
      .config({ workers: 1 })
      .cluster({ servers: server.url, node: 'bench-b', cluster: 'bench' })
      .build();
    try {
      const deadline = performance.now() + 20_000;
      while (b.cluster?.registry.get('durable/sink') === undefined) {
        if (performance.now() > deadline) throw new Error("bench: node bench-b never saw bench-a's kernels");
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const payload = new Uint8Array(64);

      // Round trips, one at a time, the first 200 of each not counted.
      const raw: number[] = [];
      for (let i = 0; i < rtts + 200; i++) {
        const t0 = performance.now();
        await requester.request('raw.echo', payload, { timeout: 5000 });
        if (i >= 200) raw.push((performance.now() - t0) * 1000);
      }
      results.push({ name: 'nats.request.64', msgsPerSec: 0, ...percentiles(raw) });
      const echo = b.ref<Sample, unknown>('echo');
      const calls: number[] = [];
      for (let i = 0; i < rtts + 200; i++) {
        const t0 = performance.now();
        await echo.call(sample(i), { timeout: 5000 });
        if (i >= 200) calls.push((performance.now() - t0) * 1000);
      }
      results.push({ name: 'cluster.call.64', msgsPerSec: 0, ...percentiles(calls) });

      // One way: raw publish against cluster trySend, warmed up alike, then in alternating rounds.
      let rawSent = 0;
      const publish = async (n: number): Promise<number> => {
        const start = performance.now();
        for (let i = 0; i < n; i++) {
          requester.publish('raw.sink', payload);
          if ((i & 1023) === 1023) await tick();
        }
        rawSent += n;
        await receiver.until('raw', rawSent);
        return n / ((performance.now() - start) / 1000);
      };
      const remoteSink = b.ref<Sample, unknown>('sink');
      const value = sample(0);
      let clusterSent = 0;
      const send = async (n: number): Promise<number> => {
        const start = performance.now();
        for (let i = 0; i < n; i++) {
          value.seq = clusterSent + i;
          remoteSink.trySend(value);
          if ((i & 1023) === 1023) await tick();
        }
        clusterSent += n;
        // At-most-once: what the receiving node counted as lost (a slow consumer's drops) ends the wait too.
        await receiver.until('sink', clusterSent);
        return n / ((performance.now() - start) / 1000);
      };
      const warmUp = Math.min(count, 300_000);
      await publish(warmUp);
      await send(warmUp);
      const publishRates: number[] = [];
      const sendRates: number[] = [];
      const ratios: number[] = [];
      for (let r = 0; r < SEND_ROUNDS; r++) {
        const rawFirst = r % 2 === 0;
        const first = rawFirst ? await publish(count) : await send(count);
        const second = rawFirst ? await send(count) : await publish(count);
        const [rawRate, sendRate] = rawFirst ? [first, second] : [second, first];
        publishRates.push(rawRate);
        sendRates.push(sendRate);
        ratios.push(sendRate / rawRate);
      }
      const lost = await receiver.lost();
      if (lost > 0) console.log(`cluster.send.64: ${lost} of ${clusterSent} lost (counted, dead-lettered)`);
      results.push({ name: 'nats.publish.64', msgsPerSec: Math.round(median(publishRates)), p50us: 0, p99us: 0 });
      results.push({ name: 'cluster.send.64', msgsPerSec: Math.round(median(sendRates)), p50us: 0, p99us: 0 });
      results.push({
        name: 'cluster.send.pairedRatio',
        msgsPerSec: 0,
        p50us: 0,
        p99us: 0,
        value: round(median(ratios)),
        unit: `cluster.send.64 / nats.publish.64, median of ${SEND_ROUNDS} alternating rounds (each ${ratios.map((x) => x.toFixed(2)).join(', ')})`,
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
      await receiver.until('durable', durableCount);
      results.push({
        name: 'cluster.atLeastOnce.64',
        msgsPerSec: Math.round(durableCount / ((performance.now() - durableStart) / 1000)),
        p50us: 0,
        p99us: 0,
      });
    } finally {
      await b.shutdown();
      await requester.close();
      await receiver.stop();
    }
  } finally {
    await server.close();
  }
  return results;
}
