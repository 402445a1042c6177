/**
 * The order in which a kernel's new node handles what two nodes held while a move handed the kernel over
 * (`handOverOrder`): a sender's one-way batches and calls, seen by both nodes for a while, each handled once and
 * where the sender sent it, whatever instant each node's two subscriptions (one-way, calls) began and ended.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FrameBatchWriter, readFrameBatch } from '../src/cluster/frame-batch.js';
import { type HeldMessage, handOverOrder } from '../src/cluster/hand-over.js';
import { Header } from '../src/cluster/remote-frames.js';
import { defineMessage } from '../src/index.js';
import { Random, TEST_SEED } from './support/random.js';

const Step = defineMessage('test.handOver.Step', { order: 'u32' });

/** A sender's stream: one-way batches of 1–5 messages and calls (about one in eight), ids counted apart. */
function senderStream(random: Random, sender: string | undefined, count: number): HeldMessage[] {
  const stream: HeldMessage[] = [];
  let sendId = 1;
  let callId = 1;
  for (let order = 0; order < count; order++) {
    const call = random.int(0, 7) === 0;
    const writer = new FrameBatchWriter();
    const frames = call ? 1 : random.int(1, 5);
    for (let f = 0; f < frames; f++) {
      writer.add(Step, { order: order * 8 + f }, { messageId: call ? callId++ : sendId++ });
    }
    const headers = sender === undefined ? {} : { [Header.NODE]: sender };
    stream.push({ kind: call ? 'call' : 'input', data: writer.take(), headers });
  }
  return stream;
}

/** What the messages carry, in the order given: the sender's own order. */
function orders(messages: readonly HeldMessage[]): number[] {
  const seen: number[] = [];
  for (const message of messages) {
    readFrameBatch(
      message.data,
      (frame) => seen.push(frame.decode(Step).order),
      (error) => assert.fail(error),
    );
  }
  return seen;
}

/** The messages of `stream` a node got with its one-way subscription over [inFrom, inTo) and calls' over [callFrom, callTo). */
function got(stream: readonly HeldMessage[], input: [number, number], call: [number, number]): HeldMessage[] {
  return stream.filter((message, at) => {
    const [from, to] = message.kind === 'input' ? input : call;
    return at >= from && at < to;
  });
}

describe('a moving kernel’s hand-over order', () => {
  test('every message once, in its sender’s order, wherever each node’s two subscriptions began and ended (seeded, 2000 hand-overs)', () => {
    const random = new Random(TEST_SEED);
    for (let round = 0; round < 2000; round++) {
      const count = random.int(40, 120);
      const stream = senderStream(random, 'mc#1', count);
      // The old node held from the start; it lets go of its two subjects a few messages apart, in either order.
      const letGo = random.int(20, count - 10);
      const oldNode = got(stream, [0, letGo + random.int(0, 6)], [0, letGo + random.int(0, 6)]);
      // The new node took its two subjects a few messages apart, well before the old node let go, and keeps them.
      const took = random.int(0, letGo - 15);
      const newNode = got(stream, [took + random.int(0, 6), count], [took + random.int(0, 6), count]);
      const handled = handOverOrder(oldNode, newNode, {});
      assert.deepEqual(
        orders(handled),
        orders(stream),
        `seed ${TEST_SEED}, round ${round}: let go at ${letGo}, taken at ${took}`,
      );
    }
  });

  test('several senders, interleaved differently at each node: every message once, each sender’s in its order (seeded, 2000 hand-overs)', () => {
    const random = new Random(TEST_SEED + 2);
    for (let round = 0; round < 2000; round++) {
      const count = random.int(60, 160);
      // One stream per sender; the server takes them interleaved (t: when it takes each).
      const senders = ['s1#1', 's2#1', 's3#1'];
      const streams = senders.map((sender) => senderStream(random, sender, count));
      const next = senders.map(() => 0);
      const taken: { message: HeldMessage; sender: number; t: number }[] = [];
      for (let t = 0; taken.length < count * senders.length; t++) {
        const open = senders.map((_, i) => i).filter((i) => (next[i] as number) < count);
        const sender = open[random.int(0, open.length - 1)] as number;
        taken.push({ message: (streams[sender] as HeldMessage[])[next[sender] as number] as HeldMessage, sender, t });
        next[sender] = (next[sender] as number) + 1;
      }
      /** What a node with these subscription windows got, in the order it got it: each sender's in its order. */
      const arrivals = (input: [number, number], call: [number, number]): HeldMessage[] => {
        const last = senders.map(() => -1);
        return taken
          .filter(({ message, t }) => {
            const [from, to] = message.kind === 'input' ? input : call;
            return t >= from && t < to;
          })
          .map(({ message, sender, t }) => {
            const at = Math.max(t + random.int(0, 40) / 10, (last[sender] as number) + 0.001);
            last[sender] = at;
            return { message, at };
          })
          .sort((a, b) => a.at - b.at)
          .map(({ message }) => message);
      };
      const total = taken.length;
      const letGo = random.int(total / 2, total - 20);
      const oldNode = arrivals([0, letGo + random.int(0, 8)], [0, letGo + random.int(0, 8)]);
      const took = random.int(0, letGo - 30);
      const newNode = arrivals([took + random.int(0, 8), total], [took + random.int(0, 8), total]);
      const handled = handOverOrder(oldNode, newNode, {});
      for (const [i, sender] of senders.entries()) {
        assert.deepEqual(
          orders(handled.filter((message) => message.headers[Header.NODE] === sender)),
          orders(streams[i] as HeldMessage[]),
          `seed ${TEST_SEED + 2}, round ${round}, sender ${sender}: let go at ${letGo}, taken at ${took}`,
        );
      }
    }
  });

  test('one-way batches the old node took before its hold are copies; an anonymous publisher’s copies go by bytes', () => {
    const random = new Random(TEST_SEED + 1);
    const stream = senderStream(random, 'mc#1', 30).filter((message) => message.kind === 'input');
    // The old node took the first 5 batches before its hold; the new node got them too (a late copy).
    const lastTaken = orders(stream.slice(0, 5)).length;
    const handled = handOverOrder(stream.slice(5, 20), stream.slice(3), { 'mc#1': lastTaken });
    assert.deepEqual(orders(handled), orders(stream.slice(5)));

    const anonymous = senderStream(random, undefined, 30);
    // Twice the same bytes: the second copy here matches the second there; the third is new.
    const same = anonymous[4] as HeldMessage;
    const before = [...anonymous.slice(0, 10), same];
    const here = [...anonymous.slice(2, 10), same, same, ...anonymous.slice(10)];
    assert.deepEqual(orders(handOverOrder(before, here, {})), orders([...before, same, ...anonymous.slice(10)]));
  });
});
