/**
 * The cluster within one process: two runtimes, each a node of the same cluster, over a real nats-server (started
 * here on a free loopback port). Multi-process behaviour is in cluster-processes.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connect, headers } from '@nats-io/transport-node';
import { FrameBatchWriter } from '../src/cluster/frame-batch.js';
import {
  ClusterAuthError,
  ClusterNameUnknownError,
  ClusterNodeDownError,
  ClusterUnreachableError,
} from '../src/cluster.js';
import { type ClusterOptions, type DeadLetter, ErrorCode, InvalidStateError, RingKernelRuntime } from '../src/index.js';
import { Accumulator, Echo, Numbers, Sink } from './fixtures/kernels.js';
import { until, within } from './support/eventually.js';
import { freePort, type NatsServer, natsServerForSuite, natsServerMissing } from './support/nats-server.js';
import { Random, TEST_SEED } from './support/random.js';

const missing = natsServerMissing();

async function node(
  server: NatsServer,
  name: string,
  cluster = 'test',
  more: Partial<ClusterOptions> = {},
): Promise<RingKernelRuntime> {
  return RingKernelRuntime.builder()
    .config({ workers: 1 })
    .cluster({ servers: server.url, node: name, cluster, heartbeatMs: 200, downAfterMs: 1000, ...more })
    .build();
}

describe('cluster nodes in one process', { skip: missing }, () => {
  const server = natsServerForSuite();

  test('a kernel on node A is found by name on node B, and takes send, call and receive from there', async () => {
    await using a = await node(server, 'a');
    await using b = await node(server, 'b');
    const acc = await a.launch(Accumulator, 1, 1, { name: 'sums/total', autoActivate: true });
    await until(() => b.cluster?.registry.get('sums/total') !== undefined);
    const entry = b.cluster?.registry.get('sums/total');
    assert.equal(entry?.node, 'a');
    assert.equal(entry?.kernelId, Accumulator.id);
    assert.deepEqual(
      b.cluster?.registry.lookup('sums/*').map((e) => e.name),
      ['sums/total'],
    );
    const remote = b.ref<{ sender: number; seq: number; value: number }, { total: number; count: number }>(
      'sums/total',
    );
    assert.notEqual(remote, acc, 'a remote reference on B');
    assert.equal(a.ref('sums/total'), acc, 'the local handle on A');
    // One-way sends (many per NATS message), then a call that sees them all: the ring keeps order.
    for (let seq = 0; seq < 200; seq++) assert.equal(remote.trySend({ sender: 2, seq, value: 1 }), true);
    const answer = await remote.call({ sender: 2, seq: 200, value: 1 }, { timeout: 10_000 });
    assert.equal(answer.count, 201);
    assert.equal(answer.total, 201);
    // The 200 one-way sends' outputs wait on A; B receives them.
    const first = await remote.receive(5000);
    assert.equal(first.count, 1);
    let received = 1;
    while (received < 200) {
      await remote.receive(5000);
      received++;
    }
    const metrics = await remote.metrics();
    assert.equal(metrics.messagesProcessed, 201);
    // The status the registry lists is republished on the next heartbeat after it changes.
    await until(() => remote.status === 'Active');
    const stats = b.cluster?.stats();
    assert.ok(stats !== undefined && stats.lostByPeers === 0 && stats.refusedByPeers === 0);
    assert.ok(a.cluster !== undefined && a.cluster.stats().delivered === 200);
  });

  test('a handler error answers the remote call with its code; a name no node hosts is a typed error', async () => {
    await using a = await node(server, 'a2');
    await using b = await node(server, 'b2');
    await a.launch(Accumulator, 1, 1, { name: 'acc2', autoActivate: true });
    await until(() => b.cluster?.registry.get('acc2') !== undefined);
    const remote = b.ref<{ sender: number; seq: number; value: number }, unknown>('acc2');
    await assert.rejects(remote.call({ sender: 1, seq: 1, value: -1 }, { timeout: 5000 }), {
      code: ErrorCode.HandlerFailed,
    });
    assert.throws(() => b.ref('nowhere/at-all'), ClusterNameUnknownError);
    assert.throws(() => b.ref('nowhere/at-all'), { code: ErrorCode.ClusterNameUnknown });
  });

  test("a name is the cluster's: a second node's launch under a live kernel's name is refused, typed", async () => {
    await using a = await node(server, 'a-names');
    await using b = await node(server, 'b-names');
    const first = await a.launch(Accumulator, 1, 1, { name: 'only-one' });
    await until(() => b.cluster?.registry.get('only-one') !== undefined);
    // Before, B launched its own 'only-one' and its listing overwrote A's: senders by name lost A's kernel.
    await assert.rejects(b.launch(Accumulator, 1, 1, { name: 'only-one' }), (error: unknown) => {
      assert.ok(error instanceof InvalidStateError);
      assert.equal(error.code, ErrorCode.InvalidState);
      assert.match(error.message, /the name 'only-one' is taken by a kernel on node 'a-names' of the cluster/);
      return true;
    });
    assert.equal(b.kernels().length, 0, 'nothing was launched on B');
    assert.equal(b.cluster?.registry.get('only-one')?.node, 'a-names');
    // Once A's kernel has ended, the name is free for B.
    await first.terminate();
    await until(() => b.cluster?.registry.get('only-one') === undefined);
    const second = await b.launch(Accumulator, 1, 1, { name: 'only-one' });
    await until(() => a.cluster?.registry.get('only-one')?.node === 'b-names');
    assert.equal(
      (
        await a
          .ref<{ sender: number; seq: number; value: number }, { total: number }>('only-one')
          .call({ sender: 0, seq: 0, value: 4 }, { timeout: 10_000 })
      ).total,
      4,
    );
    await second.terminate();
  });

  test('a kernel whose name a dead node still listed when it launched is listed once that entry is swept', async () => {
    // Heartbeats a second apart (not 200 ms): the launch below has to fit between the dead node's entry arriving and
    // the next sweep, which removes it.
    const slow = { heartbeatMs: 1000, downAfterMs: 5000 };
    await using a = await node(server, 'a-relist', 'test', slow);
    await using b = await node(server, 'b-relist', 'test', slow);
    const registry = a.cluster?.registry;
    assert.ok(registry !== undefined);
    // Workers up first, so that the launch below takes milliseconds, well inside one heartbeat.
    await (await a.launch(Accumulator, 1, 1, { name: 'warm-up' })).terminate();
    // Seen as it arrives, not polled for: a sweep can remove it milliseconds later (either node's next heartbeat),
    // sooner than a poll on a loaded machine comes round.
    const seen = new Promise<void>((resolve) => {
      const stop = registry.watch('relisted', (event) => {
        if (event.type !== 'registered' || event.entry.node !== 'gone') return;
        stop();
        resolve();
      });
    });
    // The entry a node that died before its first heartbeat left behind: a launch here cannot claim the name yet.
    await registry.register({
      name: 'relisted',
      kernelId: Accumulator.id,
      node: 'gone',
      backend: 'cpu',
      status: 'Active',
      delivery: 'at-most-once',
    });
    await within(seen, 10_000, "the dead node's entry in A's registry");
    // Launched at once, before the next heartbeat sweeps that entry: its claim (a KV create) finds the name taken.
    await a.launch(Accumulator, 1, 1, { name: 'relisted' });
    // Before, the kernel stayed unlisted for good once its claim had failed: nobody could reach it by name.
    await until(() => b.cluster?.registry.get('relisted')?.node === 'a-relist', 30_000);
    const answer = await b
      .ref<{ sender: number; seq: number; value: number }, { total: number }>('relisted')
      .call({ sender: 0, seq: 0, value: 7 }, { timeout: 10_000 });
    assert.equal(answer.total, 7);
  });

  test('a launch placed on a node that never answers rejects after placementTimeoutMs, typed', async () => {
    await using a = await node(server, 'a-place', 'test', { placementTimeoutMs: 300 });
    const registry = a.cluster?.registry;
    const subjects = a.cluster?.subjects;
    assert.ok(registry !== undefined && subjects !== undefined);
    // A node that heart-beats but never answers a placement: a plain client that swallows the request.
    const mute = await connect({ servers: server.url });
    try {
      const swallowed: unknown[] = [];
      mute.subscribe(subjects.place('mute'), {
        callback: (_error, msg) => {
          swallowed.push(msg);
        },
      });
      await mute.flush();
      await registry.beat({ node: 'mute', backend: 'cpu', kernels: 0, processed: 0, queued: 0 });
      await until(() => registry.isAlive('mute'));
      const started = performance.now();
      await assert.rejects(a.launch(Accumulator, { name: 'never-placed', node: 'mute' }), (error: unknown) => {
        assert.ok(error instanceof ClusterNodeDownError);
        assert.equal(error.code, ErrorCode.ClusterNodeDown);
        return true;
      });
      assert.equal(swallowed.length, 1, 'the placement reached the mute node');
      // Rejected at the configured bound (300 ms), not at the 30 s default.
      assert.ok(performance.now() - started < 10_000, 'rejected at placementTimeoutMs, not the default');
    } finally {
      await mute.close();
    }
    assert.throws(() => RingKernelRuntime.builder().cluster({ servers: 'nats://x', placementTimeoutMs: 0 }), {
      message: 'cluster options: placementTimeoutMs must be a positive number, got 0',
    });
  });

  test('raw bytes kernels: payloads travel as they are', async () => {
    await using a = await node(server, 'a3');
    await using b = await node(server, 'b3');
    await a.launch(Echo, 1, 1, { name: 'echo', autoActivate: true });
    await until(() => b.cluster?.registry.get('echo') !== undefined);
    const echo = b.ref<Uint8Array, Uint8Array>('echo');
    const payload = new Uint8Array(300).map((_, i) => i & 0xff);
    assert.deepEqual(await echo.call(payload, { timeout: 5000 }), payload);
  });

  test('a malformed frame from a foreign publisher is a typed dead letter, and the kernel goes on', async () => {
    await using a = await node(server, 'a4');
    const letters: DeadLetter[] = [];
    a.deadLetters.on('deadLetter', (letter) => letters.push(letter));
    const acc = await a.launch(Accumulator, 1, 1, { name: 'acc4', autoActivate: true });
    // Listed: its node subscribed for it before it published the entry.
    await until(() => a.cluster?.registry.get('acc4') !== undefined);
    const subjects = a.cluster?.subjects;
    assert.ok(subjects !== undefined);
    const foreign = await connect({ servers: server.url });
    try {
      // Garbage, a truncated frame, a frame with a bad magic, and a well-formed frame of another message type.
      foreign.publish(subjects.input('acc4'), new Uint8Array([1, 2, 3]));
      const good = new FrameBatchWriter();
      good.add(Numbers, { sender: 9, seq: 0, value: 5 }, { messageId: 1 });
      const bytes = good.take();
      foreign.publish(subjects.input('acc4'), bytes.subarray(0, 100));
      const badMagic = bytes.slice();
      badMagic[4] = (badMagic[4] ?? 0) ^ 0xff;
      foreign.publish(subjects.input('acc4'), badMagic);
      const other = new FrameBatchWriter();
      other.add(Echo.input, new Uint8Array(8), { messageId: 2 });
      foreign.publish(subjects.input('acc4'), other.take());
      // The kernel's type id over a payload of the wrong size (checked by size, before the frame goes into the ring).
      const resized = new FrameBatchWriter();
      resized.add({ ...Echo.input, typeId: Numbers.typeId }, new Uint8Array(8), { messageId: 3 });
      foreign.publish(subjects.input('acc4'), resized.take());
      // A call with garbage is answered with an error, not left hanging.
      const reply = await foreign.request(subjects.call('acc4'), new Uint8Array(7), { timeout: 5000 });
      assert.ok(reply.data.length > 0);
      // And a good frame still goes through.
      const h = headers();
      foreign.publish(subjects.input('acc4'), bytes, { headers: h });
      await foreign.flush();
      await until(() => acc.counters().processed === 1, 5000);
      await until(() => letters.length >= 6, 5000);
    } finally {
      await foreign.close();
    }
    const codes = letters.map((letter) => letter.error.code);
    assert.ok(letters.every((letter) => letter.reason === 'malformed-frame'));
    assert.ok(codes.includes(ErrorCode.FrameBadLength), codes.join());
    assert.ok(codes.includes(ErrorCode.FrameBadMagic), codes.join());
    assert.ok(codes.includes(ErrorCode.MessageTypeMismatch), codes.join());
    assert.ok(
      letters.some((letter) => letter.error.message.includes(`payload is 8 bytes, not ${Numbers.size}`)),
      'the resized frame is refused by its size',
    );
    assert.equal(acc.counters().processed, 1, 'only the good frame reached the kernel');
    assert.equal(acc.status, 'Active');
    assert.ok((a.cluster?.stats().malformed ?? 0) >= 6);
  });

  test('a gap in a sender’s message ids is counted as lost on both sides, never silent', async () => {
    await using a = await node(server, 'a5');
    await using b = await node(server, 'b5');
    const letters: DeadLetter[] = [];
    b.deadLetters.on('deadLetter', (letter) => letters.push(letter));
    await a.launch(Accumulator, 1, 1, { name: 'acc5', autoActivate: true });
    await until(() => b.cluster?.registry.get('acc5') !== undefined);
    const subjects = a.cluster?.subjects;
    assert.ok(subjects !== undefined);
    // Node b's own sender id, with ids 1, 2 and then 6: three messages (3, 4, 5) lost on the way.
    const batch = new FrameBatchWriter();
    for (const id of [1, 2, 6]) batch.add(Numbers, { sender: 1, seq: id, value: 1 }, { messageId: id });
    const h = headers();
    h.set('Rk-Node', 'b5#feed');
    b.cluster?.connection.publish(subjects.input('acc5'), batch.take(), { headers: h });
    await until(() => (a.cluster?.stats().lost ?? 0) === 3, 5000);
    await until(() => letters.some((letter) => letter.reason === 'message-lost'), 5000);
    assert.equal(letters.find((letter) => letter.reason === 'message-lost')?.error.code, ErrorCode.ClusterMessageLost);
  });

  test('remote sends waiting for room when their kernel ends are each one dead letter, not two', async () => {
    await using a = await node(server, 'a-wait');
    await using b = await node(server, 'b-wait');
    const letters: DeadLetter[] = [];
    a.deadLetters.on('deadLetter', (letter) => letters.push(letter));
    // Not active: the ring fills, and the sends after that wait for room on A.
    const sink = await a.launch(Sink, 1, 1, { name: 'waiting', queueCapacity: 8, onFull: 'wait', autoActivate: false });
    await until(() => b.cluster?.registry.get('waiting') !== undefined);
    const remote = b.ref<{ sender: number; seq: number; value: number }, unknown>('waiting');
    for (let seq = 0; seq < 40; seq++) remote.trySend({ sender: 1, seq, value: 1 });
    await until(() => (a.cluster?.stats().delivered ?? 0) > 0 && sink.metrics().inputQueueDepth > 0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await sink.terminate({ drain: false });
    // Queued in the ring or waiting for room: each of the 40 is one dead letter on A (before, a waiting send was
    // lettered by the kernel and again by the node).
    await until(() => letters.length >= 40);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(letters.length, 40, letters.map((letter) => letter.reason).join());
    assert.deepEqual(
      letters.map((letter) => Numbers.decode(letter.payload).seq).sort((x, y) => x - y),
      Array.from({ length: 40 }, (_, i) => i),
    );
  });

  test('a kernel that ends while a heartbeat re-lists its status leaves no entry behind (seeded, 40 kernels)', async () => {
    // Heartbeats every 5 ms: a status change (Active → Terminating → Terminated) is re-listed by a heartbeat while
    // the kernel's end removes its entry, over and over. An entry left behind names a kernel nobody serves: senders
    // elsewhere keep sending to it, and what they send is lost without a word.
    await using a = await node(server, 'a12', 'test', { heartbeatMs: 5 });
    const random = new Random(TEST_SEED);
    const names: string[] = [];
    for (let round = 0; round < 40; round++) {
      const name = `ending/k${round}`;
      names.push(name);
      const kernel = await a.launch(Sink, 1, 1, { name, autoActivate: true });
      await until(() => a.cluster?.registry.get(name) !== undefined);
      await new Promise((resolve) => setTimeout(resolve, random.int(0, 10)));
      await kernel.terminate({ drain: random.int(0, 1) === 0 });
    }
    // A few heartbeats later, the bucket lists none of them.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const left: string[] = [];
    for (const name of names) if ((await a.cluster?.registry.current(name)) !== undefined) left.push(name);
    assert.deepEqual(left, [], `seed ${TEST_SEED}: entries of ended kernels left in the registry`);
  });

  test('remote sends racing a terminate are each handled or dead-lettered, never lost silently (seeded)', async (t) => {
    await using a = await node(server, 'a9');
    await using b = await node(server, 'b9');
    const letters: DeadLetter[] = [];
    a.deadLetters.on('deadLetter', (letter) => letters.push(letter));
    const lettersOfB: DeadLetter[] = [];
    b.deadLetters.on('deadLetter', (letter) => lettersOfB.push(letter));
    const random = new Random(TEST_SEED);
    for (let round = 0; round < 4; round++) {
      const name = `race/sink-${round}`;
      const sink = await a.launch(Sink, 1, 1, { name, autoActivate: true });
      await until(() => b.cluster?.registry.get(name) !== undefined);
      const remote = b.ref<{ sender: number; seq: number; value: number }, unknown>(name);
      const lostBefore = b.cluster?.stats().lostByPeers ?? 0;
      let sent = 0;
      let terminated: Promise<void> | undefined;
      const stopAt = random.int(500, 5_000);
      // Batches of sends from B while A terminates the kernel (draining or not): frames reach it before, during
      // and after its end, and after its subjects are let go.
      for (let turn = 0; turn < 2_000; turn++) {
        try {
          for (let k = random.int(1, 100); k > 0; k--) {
            remote.trySend({ sender: 9, seq: sent, value: 1 });
            sent++;
          }
        } catch (error) {
          assert.ok(error instanceof InvalidStateError, `refused at the sender once the kernel is gone: ${error}`);
          break;
        }
        if (terminated === undefined && sent >= stopAt) terminated = sink.terminate({ drain: round % 2 === 0 });
        await new Promise((resolve) => setImmediate(resolve));
      }
      await terminated;
      const handled = (): number => sink.counters().processed;
      const refused = (): DeadLetter[] => letters.filter((l) => l.kernel === name && l.reason !== 'message-lost');
      // Lost: what B sent that A never took (gaps A saw, and what followed the kernel's end), counted on B.
      const lost = (): number => (b.cluster?.stats().lostByPeers ?? 0) - lostBefore;
      await until(() => handled() + refused().length + lost() >= sent);
      assert.equal(handled() + refused().length + lost(), sent, `handled ${handled()}, refused ${refused().length}`);
      for (const letter of refused()) {
        const message = Numbers.decode(letter.payload);
        assert.ok(
          message.sender === 9 && message.seq < sent,
          `a dead letter carries a message B sent: ${letter.reason}`,
        );
      }
      if (lost() > 0) assert.ok(lettersOfB.some((l) => l.kernel === name && l.reason === 'message-lost'));
      t.diagnostic(`round ${round}: sent ${sent}, handled ${handled()}, refused ${refused().length}, lost ${lost()}`);
    }
  });

  test('a node that stops heart-beating is declared down within downAfterMs + a heartbeat, its kernels removed', async () => {
    await using b = await node(server, 'b6');
    const a = await node(server, 'a6');
    await a.launch(Accumulator, 1, 1, { autoActivate: false, name: 'acc6' });
    await until(() => b.cluster?.registry.get('acc6') !== undefined);
    const down = new Promise<number>((resolve) => b.cluster?.once('nodeDown', () => resolve(performance.now())));
    // Silence a6 without leaving: close its connection under it (as a crash would).
    const silenced = performance.now();
    await a.cluster?.connection.close();
    const at = await down;
    assert.ok(at - silenced <= 1000 + 2 * 200 + 500, `declared down after ${Math.round(at - silenced)} ms`);
    await until(() => b.cluster?.registry.get('acc6') === undefined, 2000);
    assert.equal(b.cluster?.registry.isAlive('a6'), false);
    await a.shutdown();
  });

  test('another cluster on the same NATS does not see our kernels', async () => {
    await using ours = await node(server, 'a7', 'ours');
    await using theirs = await node(server, 'b7', 'theirs');
    await ours.launch(Accumulator, 1, 1, { autoActivate: false, name: 'private' });
    await until(() => ours.cluster?.registry.get('private') !== undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(theirs.cluster?.registry.get('private'), undefined);
    assert.throws(() => theirs.ref('private'), ClusterNameUnknownError);
  });

  test('at-least-once: sends stored in JetStream, handled once each, acknowledged; a republished batch is dropped', async () => {
    const a = await RingKernelRuntime.builder()
      .config({ workers: 1 })
      .cluster({
        servers: server.url,
        node: 'a8',
        cluster: 'durable',
        atLeastOnce: ['dur/*'],
        heartbeatMs: 200,
        downAfterMs: 1000,
      })
      .build();
    await using b = await node(server, 'b8', 'durable');
    try {
      const acc = await a.launch(Accumulator, 1, 1, { name: 'dur/acc', autoActivate: true, queueCapacity: 64 });
      await until(() => b.cluster?.registry.get('dur/acc')?.delivery === 'at-least-once');
      const remote = b.ref<{ sender: number; seq: number; value: number }, { seq: number; count: number }>('dur/acc');
      // Outputs are taken as they come (the 64-frame output ring would stall the kernel otherwise).
      const seqs: number[] = [];
      const draining = (async () => {
        while (seqs.length < 3001) seqs.push((await acc.receive(20_000)).seq);
      })();
      const sends: Promise<void>[] = [];
      // More than the 64-frame input ring holds: the inbox waits for room and holds the acknowledgements meanwhile.
      for (let seq = 0; seq < 3000; seq++) sends.push(remote.send({ sender: 1, seq, value: 1 }));
      await Promise.all(sends);
      await until(() => acc.counters().processed === 3000, 20_000);
      // The same batch published twice under one Nats-Msg-Id is stored once.
      const batch = new FrameBatchWriter();
      batch.add(Numbers, { sender: 2, seq: 3000, value: 1 }, { messageId: 1 });
      const bytes = batch.take();
      const subjects = b.cluster?.subjects;
      assert.ok(subjects !== undefined);
      const { jetstream } = await import('@nats-io/jetstream');
      const js = jetstream(b.cluster?.connection as never);
      const first = await js.publish(subjects.durable('dur/acc'), bytes, { msgID: 'twice' });
      const second = await js.publish(subjects.durable('dur/acc'), bytes, { msgID: 'twice' });
      assert.equal(first.duplicate, false);
      assert.equal(second.duplicate, true);
      await draining;
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(acc.counters().processed, 3001, 'the duplicate was not handled');
      assert.deepEqual(
        seqs,
        Array.from({ length: 3001 }, (_, i) => i),
        'every message once, in the order sent',
      );
    } finally {
      await a.shutdown();
    }
  });

  test('an unreachable server is a typed error at build', async () => {
    const port = await freePort();
    await assert.rejects(
      RingKernelRuntime.builder()
        .config({ workers: 1 })
        .cluster({ servers: `nats://127.0.0.1:${port}`, connectTimeoutMs: 1000 })
        .build(),
      ClusterUnreachableError,
    );
  });

  test('options are checked up front with exact messages', () => {
    assert.throws(() => RingKernelRuntime.builder().cluster({ servers: [] }), {
      message: 'cluster options: servers must be a URL or a non-empty array of URLs',
    });
    assert.throws(() => RingKernelRuntime.builder().cluster({ servers: 'nats://x', cluster: 'a.b' }), {
      message: `cluster options: cluster must be 1–64 letters, digits, '-' or '_', got "a.b"`,
    });
    assert.throws(
      () => RingKernelRuntime.builder().cluster({ servers: 'nats://x', heartbeatMs: 1000, downAfterMs: 1500 }),
      {
        message:
          'cluster options: downAfterMs (1500) must be at least twice heartbeatMs (1000), or live nodes are declared down',
      },
    );
  });
});

describe('a cluster on a server that requires auth', { skip: missing }, () => {
  const server = natsServerForSuite({
    config: 'authorization { users = [ { user: "ours", password: "s3cret" } ] }\n',
  });

  test('an unauthenticated node is refused with ClusterAuthError; the right credentials join', async () => {
    await assert.rejects(
      RingKernelRuntime.builder().config({ workers: 1 }).cluster({ servers: server.url }).build(),
      (error: Error & { code?: string }) => {
        assert.ok(error instanceof ClusterAuthError, `${error.name}: ${error.message}`);
        assert.equal(error.code, ErrorCode.ClusterAuthFailed);
        return true;
      },
    );
    await assert.rejects(
      RingKernelRuntime.builder()
        .config({ workers: 1 })
        .cluster({ servers: server.url, user: 'ours', pass: 'wrong' })
        .build(),
      ClusterAuthError,
    );
    await using joined = await RingKernelRuntime.builder()
      .config({ workers: 1 })
      .cluster({ servers: server.url, user: 'ours', pass: 's3cret', node: 'authed' })
      .build();
    assert.equal(joined.cluster?.node, 'authed');
  });
});
