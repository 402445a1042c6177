/**
 * The cluster across processes: node processes (test/fixtures/cluster-node.ts) and this test's own runtime, all
 * nodes of one cluster on a real nats-server on loopback.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { assign, createActor, enqueueActions, setup, toPromise } from 'xstate';
import { ClusterNodeDownError, ClusterNodeUnknownError, ClusterPlacementError } from '../src/cluster.js';
import { defineKernel, ErrorCode, fromKernel, type KernelActorOutputEvent, RingKernelRuntime } from '../src/index.js';
import { Accumulator, Echo, Numbers, Total } from './fixtures/kernels.js';
import { Doubler } from './fixtures/placed-kernel.js';
import { startNodeProcess } from './support/cluster-process.js';
import { eventually, until } from './support/eventually.js';
import { natsServerForSuite, natsServerMissing } from './support/nats-server.js';
import { OtlpReceiver } from './support/otlp-receiver.js';

const missing = natsServerMissing();

type NumbersIn = { sender: number; seq: number; value: number };
type TotalOut = { sender: number; seq: number; total: number; count: number };

describe('cluster nodes in several processes', { skip: missing }, () => {
  const server = natsServerForSuite();

  const self = (node: string, cluster: string, downAfterMs = 1000): Promise<RingKernelRuntime> =>
    RingKernelRuntime.builder()
      .config({ workers: 1 })
      .cluster({ servers: server.url, node, cluster, heartbeatMs: 200, downAfterMs })
      .build();

  test('kernels in two other processes are found by name and take send, call and receive from this one', async () => {
    const cluster = 'procs';
    const [a, b] = await Promise.all([
      startNodeProcess({ servers: server.url, node: 'pa', cluster, kernels: [{ id: Accumulator.id, name: 'p/acc' }] }),
      startNodeProcess({ servers: server.url, node: 'pb', cluster, kernels: [{ id: Echo.id, name: 'p/echo' }] }),
    ]);
    try {
      await using here = await self('pc', cluster);
      await until(() => here.cluster?.registry.lookup('p/*').length === 2);
      assert.deepEqual(
        here.cluster?.registry.lookup('p/**').map((entry) => [entry.name, entry.node]),
        [
          ['p/acc', 'pa'],
          ['p/echo', 'pb'],
        ],
      );
      const acc = here.ref<NumbersIn, TotalOut>('p/acc');
      const echo = here.ref<Uint8Array, Uint8Array>('p/echo');
      for (let seq = 0; seq < 1000; seq++) acc.trySend({ sender: 1, seq, value: 2 });
      const total = await acc.call({ sender: 1, seq: 1000, value: 2 }, { timeout: 10_000 });
      assert.equal(total.count, 1001, 'the call comes after the 1000 sends, in order');
      assert.equal(total.total, 2002);
      const outputs: number[] = [];
      while (outputs.length < 1000) outputs.push((await acc.receive(10_000)).seq);
      assert.deepEqual(
        outputs,
        Array.from({ length: 1000 }, (_, i) => i),
      );
      const bytes = new Uint8Array([1, 2, 3, 250]);
      assert.deepEqual(await echo.call(bytes, { timeout: 10_000 }), bytes);
      assert.equal((await acc.metrics()).messagesProcessed, 1001);
      assert.equal(here.cluster?.stats().lostByPeers, 0);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  test('fromKernel over a remote kernel: a machine on this node invokes a kernel on another process', async () => {
    const cluster = 'actors';
    const a = await startNodeProcess({
      servers: server.url,
      node: 'xa',
      cluster,
      kernels: [{ id: Accumulator.id, name: 'x/acc' }],
    });
    try {
      await using here = await self('xc', cluster);
      await until(() => here.cluster?.registry.get('x/acc') !== undefined);
      const remote = here.ref<NumbersIn, TotalOut>('x/acc');
      const machine = setup({
        types: {
          context: {} as { total: number; answers: number; outputs: number },
          events: {} as KernelActorOutputEvent<TotalOut>,
        },
        actors: { accumulator: fromKernel(remote) },
      }).createMachine({
        context: { total: 0, answers: 0, outputs: 0 },
        initial: 'working',
        states: {
          working: {
            invoke: { id: 'acc', src: 'accumulator' },
            // Three one-way sends (their outputs come back as kernel.output), then four calls.
            entry: enqueueActions(({ enqueue }) => {
              for (const seq of [1, 2, 3]) {
                enqueue.sendTo('acc', { type: 'kernel.send', message: { sender: 0, seq, value: 1 } });
              }
              for (const value of [4, 5, 6, 7]) {
                enqueue.sendTo('acc', {
                  type: 'kernel.call',
                  requestId: value,
                  message: { sender: 0, seq: value, value },
                });
              }
            }),
            on: {
              'kernel.response': {
                actions: assign(({ context, event }) => ({ total: event.output.total, answers: context.answers + 1 })),
              },
              'kernel.output': { actions: assign(({ context }) => ({ outputs: context.outputs + 1 })) },
            },
            always: { guard: ({ context }) => context.answers === 4 && context.outputs === 3, target: 'done' },
          },
          done: { type: 'final' },
        },
        output: ({ context }) => context.total,
      });
      assert.equal(await toPromise(createActor(machine).start()), 3 + 4 + 5 + 6 + 7);
      // Stopping the actor left the kernel on its node running: it belongs to that node.
      assert.equal((await remote.call({ sender: 0, seq: 8, value: 1 }, { timeout: 5000 })).count, 8);
    } finally {
      await a.stop();
    }
  });

  test('one trace across two processes: the caller’s span parents the serving node’s call and processing spans', async () => {
    const cluster = 'traced';
    const receiver = await OtlpReceiver.start();
    // The caller is a user's program with its own tracer: a context manager and a span around the call.
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const exporter = new InMemorySpanExporter();
    const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).getTracer('caller');
    const a = await startNodeProcess({
      servers: server.url,
      node: 'ta',
      cluster,
      kernels: [{ id: Accumulator.id, name: 't/acc' }],
      traceEndpoint: receiver.url,
    });
    try {
      await using here = await self('tc', cluster);
      await until(() => here.cluster?.registry.get('t/acc') !== undefined);
      const acc = here.ref<NumbersIn, TotalOut>('t/acc');
      await tracer.startActiveSpan('client checkout', async (span) => {
        await acc.call({ sender: 1, seq: 1, value: 1 }, { timeout: 5000 });
        span.end();
      });
      const client = exporter.getFinishedSpans()[0];
      assert.ok(client !== undefined);
      const traceId = client.spanContext().traceId;
      // The serving node exports its spans as they end, in batches: wait for the call and its processing.
      const spans = await eventually(() => {
        const inTrace = receiver.spans.filter((s) => s.traceId === traceId);
        assert.ok(
          inTrace.some((s) => s.name === 'process t/acc'),
          'the serving node exported its processing span',
        );
        assert.ok(
          inTrace.some((s) => s.name === 'call t/acc'),
          'the serving node exported its call span',
        );
        // Every span the other process exported resolves its parent: the caller's span, or one of its own.
        const ids = new Set([client.spanContext().spanId, ...inTrace.map((s) => s.spanId)]);
        for (const span of inTrace) assert.ok(ids.has(span.parentSpanId), `${span.name}: parent ${span.parentSpanId}`);
        return inTrace;
      }, 10_000);
      const call = spans.find((s) => s.name === 'call t/acc');
      assert.equal(call?.parentSpanId, client.spanContext().spanId, 'the serving call is a child of the caller’s span');
      assert.equal(spans.find((s) => s.name === 'process t/acc')?.parentSpanId, call?.spanId);
    } finally {
      context.disable();
      await a.stop();
      await receiver.close();
    }
  });

  test('launch with { node } places a kernel on another process, which imports its module; least-loaded picks the emptiest node', async () => {
    const cluster = 'placed';
    // Placement counts only live nodes. On a loaded machine a process importing a module and starting its first
    // kernel can go a second without a heartbeat; this test is about where launches go, not about finding nodes
    // down, so its nodes wait longer before they call one down.
    const downAfterMs = 5000;
    // pa hosts two kernels, pb none; neither process imports the Doubler's module.
    const [a, b] = await Promise.all([
      startNodeProcess({
        servers: server.url,
        node: 'pa',
        cluster,
        downAfterMs,
        kernels: [
          { id: Accumulator.id, name: 'l/acc' },
          { id: Echo.id, name: 'l/echo' },
        ],
      }),
      startNodeProcess({ servers: server.url, node: 'pb', cluster, downAfterMs, kernels: [] }),
    ]);
    try {
      await using here = await self('pz', cluster, downAfterMs);
      await here.launch(Accumulator, { name: 'l/here' });
      await until(
        () => here.cluster?.registry.lookup('l/*').length === 3 && here.cluster.registry.nodes().length === 3,
      );

      const onA = await here.launch(Doubler, { name: 'l/doubler', node: 'pa' });
      assert.equal(here.cluster?.registry.get('l/doubler')?.node, 'pa', 'registered on pa when launch resolves');
      assert.equal(here.cluster?.registry.get('l/doubler')?.moduleUrl, Doubler.moduleUrl);
      onA.trySend({ sender: 0, seq: 0, value: 3 });
      const doubled = await onA.call({ sender: 0, seq: 1, value: 4 }, { timeout: 10_000 });
      assert.deepEqual([doubled.sender, doubled.total, doubled.count], [a.child.pid, 14, 2], 'handled in pa');
      assert.equal(here.ref('l/doubler'), onA, 'the name reaches the same reference');

      // Loads now: pa 3 kernels, pz 1, pb 0.
      const auto = await here.launch(Doubler, { name: 'l/auto', node: 'least-loaded', queueCapacity: 64 });
      assert.equal(here.cluster?.registry.get('l/auto')?.node, 'pb');
      assert.equal((await auto.call({ sender: 0, seq: 0, value: 5 }, { timeout: 10_000 })).sender, b.child.pid);
      assert.equal((await auto.metrics()).inputQueueCapacity, 64, 'the launch options travelled');
      // pb 1 = pz 1: the tie goes to the fewest queued, then the name.
      const second = await here.launch(Accumulator, { name: 'l/auto2', node: 'least-loaded' });
      assert.equal(here.cluster?.registry.get('l/auto2')?.node, 'pb');
      assert.equal((await second.call({ sender: 0, seq: 0, value: 1 }, { timeout: 10_000 })).count, 1);
      // Now pb 2 > pz 1: least-loaded is this node, and the launch is local (a handle, no NATS hop).
      const local = await here.launch(Accumulator, { name: 'l/auto3', node: 'least-loaded' });
      assert.equal(local, here.kernel('l/auto3'));
      await until(() => here.cluster?.registry.get('l/auto3')?.node === 'pz');

      const unknown = await here.launch(Doubler, { name: 'l/nowhere', node: 'edge-9' }).then(
        () => assert.fail('a launch on an unknown node resolved'),
        (e: Error) => e,
      );
      assert.ok(unknown instanceof ClusterNodeUnknownError, `${unknown.name}: ${unknown.message}`);
      assert.equal(unknown.code, ErrorCode.ClusterNodeUnknown);
      assert.deepEqual(unknown.liveNodes, ['pa', 'pb', 'pz']);
      assert.match(unknown.message, /'edge-9'.*pa, pb, pz/);

      // A kernel whose module is not there on the node: its import fails there, and the launch rejects with why.
      const missingModule = pathToFileURL(join(tmpdir(), `rk-missing-${process.pid}`, 'kernel.js')).href;
      const Missing = defineKernel({
        id: 'test.placed.missing',
        module: missingModule,
        input: Numbers,
        output: Total,
        cpu: () => undefined,
      });
      const refused = await here.launch(Missing, { name: 'l/missing', node: 'pb' }).then(
        () => assert.fail('a launch whose module the node cannot load resolved'),
        (e: Error & { code?: string }) => e,
      );
      assert.ok(refused instanceof ClusterPlacementError, `${refused.name}: ${refused.message}`);
      assert.equal(refused.code, ErrorCode.ClusterPlacementFailed);
      assert.deepEqual([refused.node, refused.kernelId], ['pb', 'test.placed.missing']);
      assert.match(refused.message, /ERR_MODULE_NOT_FOUND|Cannot find module/);
      assert.equal(here.cluster?.registry.get('l/missing'), undefined);
      // The node's own launch refusing it (the name is taken there) comes back with that error's code as the cause.
      const taken = await here.launch(Doubler, { name: 'l/doubler', node: 'pa' }).then(
        () => assert.fail('a launch under a name taken on that node resolved'),
        (e: Error & { code?: string }) => e,
      );
      assert.ok(taken instanceof ClusterPlacementError);
      assert.equal((taken.cause as { code?: string }).code, ErrorCode.InvalidState);
      assert.equal((await onA.call({ sender: 0, seq: 2, value: 1 }, { timeout: 10_000 })).count, 3);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  test('a placed kernel fails over to a node whose program never imported its module: it imports it from the registry entry', async () => {
    const cluster = 'placed-failover';
    const [a, b] = await Promise.all([
      startNodeProcess({ servers: server.url, node: 'qa', cluster, kernels: [] }),
      startNodeProcess({ servers: server.url, node: 'qb', cluster, kernels: [], failover: ['q/*'] }),
    ]);
    try {
      await using here = await self('qz', cluster);
      await until(() => here.cluster?.registry.nodes().length === 3);
      await here.launch(Doubler, { name: 'q/doubler', node: 'qa' });
      await a.kill();
      await until(() => here.cluster?.registry.get('q/doubler')?.node === 'qb', 10_000);
      const moved = here.ref<NumbersIn, TotalOut>('q/doubler');
      const answer = await eventually(() => moved.call({ sender: 0, seq: 0, value: 21 }, { timeout: 2000 }), 10_000);
      assert.deepEqual([answer.sender, answer.total], [b.child.pid, 42], 'handled in qb, from init()');
      await until(() => b.output().includes('{"failover":"q/doubler","from":"qa"}'));
    } finally {
      await Promise.all([a.kill(), b.stop()]);
    }
  });

  test('a node killed mid-call: the call rejects within its timeout, the node is declared down, its names go', async () => {
    const cluster = 'killed';
    const a = await startNodeProcess({
      servers: server.url,
      node: 'ka',
      cluster,
      kernels: [{ id: 'test.slow', name: 'k/slow' }],
    });
    try {
      await using here = await self('kc', cluster);
      await until(() => here.cluster?.registry.get('k/slow') !== undefined);
      const slow = here.ref<NumbersIn, TotalOut>('k/slow');
      const started = performance.now();
      // The handler is busy 1.5 s; the node dies 200 ms into it.
      const call = slow.call({ sender: 0, seq: 0, value: 1500 }, { timeout: 3000 });
      setTimeout(() => void a.kill(), 200);
      const error = await call.then(
        () => assert.fail('the call to a killed node resolved'),
        (e: Error & { code?: string }) => e,
      );
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 3000 + 500, `rejected after ${Math.round(elapsed)} ms`);
      assert.ok(
        error instanceof ClusterNodeDownError || error.code === ErrorCode.Timeout,
        `${error.name}: ${error.message}`,
      );
      await until(() => here.cluster?.registry.get('k/slow') === undefined, 3000);
      assert.throws(() => here.ref('k/slow'), { code: ErrorCode.ClusterNameUnknown });
    } finally {
      await a.kill();
    }
  });

  test('nats-server restarts mid-stream: the nodes reconnect by themselves and the kernels answer again', async () => {
    const cluster = 'restart';
    const a = await startNodeProcess({
      servers: server.url,
      node: 'ra',
      cluster,
      kernels: [{ id: Accumulator.id, name: 'r/acc' }],
    });
    try {
      await using here = await self('rc', cluster);
      await until(() => here.cluster?.registry.get('r/acc') !== undefined);
      const acc = here.ref<NumbersIn, TotalOut>('r/acc');
      assert.equal((await acc.call({ sender: 0, seq: 0, value: 1 }, { timeout: 5000 })).count, 1);
      const reconnected = new Promise<void>((resolve) =>
        here.cluster?.on('connection', (state) => state === 'reconnected' && resolve()),
      );
      await server.restart();
      await reconnected;
      // The registry (JetStream, on the kept store) and the other node's subscriptions are back.
      const answer = await eventually(() => acc.call({ sender: 0, seq: 1, value: 1 }, { timeout: 2000 }), 15_000);
      assert.equal(answer.count, 2);
      assert.ok((here.cluster?.stats().reconnects ?? 0) >= 1);
    } finally {
      await a.stop();
    }
  });

  test('failover: a node SIGKILLed mid-stream, its at-least-once kernel restarts on this node and every message is handled, in order', async () => {
    const cluster = 'failover';
    // 100 000 messages in 64-frame batches, the node killed once the first half is stored.
    const total = 100_000;
    const a = await startNodeProcess({
      servers: server.url,
      node: 'fa',
      cluster,
      kernels: [{ id: Accumulator.id, name: 'f/acc' }],
      atLeastOnce: ['f/*'],
    });
    try {
      await using here = await RingKernelRuntime.builder()
        .config({ workers: 1 })
        .cluster({
          servers: server.url,
          node: 'fc',
          cluster,
          heartbeatMs: 200,
          downAfterMs: 1000,
          atLeastOnce: ['f/*'],
          failover: ['f/*'],
        })
        .build();
      await until(() => here.cluster?.registry.get('f/acc')?.node === 'fa');
      const took = new Promise<{ name: string; from: string; error?: Error }>((resolve) =>
        here.cluster?.once('failover', resolve),
      );
      const acc = here.ref<NumbersIn, TotalOut>('f/acc');
      const sends: Promise<void>[] = [];
      for (let seq = 0; seq < total / 2; seq++) sends.push(acc.send({ sender: 1, seq, value: 1 }));
      await Promise.all(sends);
      const killedAt = performance.now();
      await a.kill();
      // Sent while the kernel has no node: stored by JetStream, handled once it runs again.
      for (let seq = total / 2; seq < total; seq++) sends.push(acc.send({ sender: 1, seq, value: 1 }));
      await Promise.all(sends);
      const failover = await Promise.race([
        took,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('no node took f/acc over within 10 s')), 10_000).unref(),
        ),
      ]);
      assert.equal(failover.error, undefined);
      assert.deepEqual([failover.name, failover.from], ['f/acc', 'fa']);
      assert.ok(performance.now() - killedAt < 1000 + 3 * 200 + 2000, 'restarted within downAfterMs and a few beats');
      assert.equal(here.cluster?.registry.get('f/acc')?.node, 'fc');
      const local = here.kernel('f/acc');
      const receive = async (): Promise<TotalOut> => (await local.receive(20_000)) as TotalOut;
      // The restarted kernel handles, once each and in order, every message from the first one the dead node had
      // not acknowledged (those before it it had handled) to the last.
      const first = (await receive()).seq;
      let next = first + 1;
      while (next < total) {
        const out = await receive();
        assert.equal(out.seq, next, `after seq ${next - 1} came ${out.seq}`);
        next++;
      }
      assert.equal(local.counters().processed, total - first);
      const { jetstreamManager } = await import('@nats-io/jetstream');
      const jsm = await jetstreamManager(here.cluster?.connection as never);
      const stream = here.cluster?.subjects.stream as string;
      await eventually(async () => {
        const info = await jsm.streams.info(stream);
        assert.equal(info.state.messages, 0, `${info.state.messages} batches not acknowledged`);
      }, 20_000);
      assert.equal(local.tryReceive(), undefined, 'nothing handled twice after the last');
    } finally {
      await a.kill();
    }
  });

  test('at-least-once through a nats-server restart mid-stream: every message stored and handled', async () => {
    const cluster = 'durable-restart';
    // 20 000 messages, the server stopped and started after the first 10 000 (sized to stay well under 30 s here).
    const total = 20_000;
    const a = await startNodeProcess({
      servers: server.url,
      node: 'da',
      cluster,
      kernels: [{ id: 'test.sink', name: 'd/sink' }],
      atLeastOnce: ['d/*'],
    });
    try {
      await using here = await self('dc', cluster);
      await until(() => here.cluster?.registry.get('d/sink')?.delivery === 'at-least-once');
      const sink = here.ref<NumbersIn, unknown>('d/sink');
      const sends: Promise<void>[] = [];
      for (let seq = 0; seq < total / 2; seq++) sends.push(sink.send({ sender: 1, seq, value: 1 }));
      await Promise.all(sends);
      const restarted = server.restart();
      // Sent while the server is down or coming back: retried under their Nats-Msg-Id until stored.
      for (let seq = total / 2; seq < total; seq++) sends.push(sink.send({ sender: 1, seq, value: 1 }));
      await restarted;
      await Promise.all(sends);
      const processed = await eventually(async () => {
        const metrics = await sink.metrics();
        assert.ok(metrics.messagesProcessed >= total, `${metrics.messagesProcessed} of ${total} handled`);
        return metrics.messagesProcessed;
      }, 20_000);
      assert.ok(processed >= total);
      assert.equal(here.cluster?.stats().undeliverable, 0);
    } finally {
      await a.stop();
    }
  });
});
