import { readFrameBatch } from './frame-batch.js';
import { Header } from './remote-frames.js';

/** A one-way batch or call that arrived for a kernel while it was held (about to move, or moving here). */
export interface HeldMessage {
  readonly kind: 'input' | 'call';
  readonly data: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
  readonly reply?: string;
}

/** Where a message the new node held stands against what the old node handed on. */
const NEW = -1;
/** A copy of a one-way batch the old node had taken before its hold (its ids are at or below the last taken). */
const TAKEN = -2;

/**
 * The order in which a kernel's new node handles what the two nodes held while a move handed the kernel over:
 * every message the old node handed on (`handed`, in its arrival order there), and the messages held here (`own`)
 * that are not copies of those, each put where its sender sent it.
 *
 * Both nodes listened to the kernel's subjects for a while, and each got a sender's messages in the order it sent
 * them (one connection keeps its order, across subjects). But a node takes a kernel's one-way subject and its call
 * subject with two subscriptions, and the server does not end two subscriptions at one instant: while the old node
 * lets go, a sender's call may still reach it after its one-way batch sent just before went only to the new node.
 * Handling the old node's messages first and the rest after would then answer the call before that batch. So a
 * message only `own` has goes right before the first message after it in `own`, from the same sender, that both
 * nodes got, and after the ones before it (`handed` holds every message `own` has up to the last of those). Only a
 * sender's own order is kept: two senders' messages may reach the two nodes interleaved differently.
 *
 * Copies are known by sender and message id (one-way batches and calls count ids apart), and, for messages whose
 * publisher does not say who it is, by their bytes: the n-th such copy here matches the n-th there.
 * `lastTaken` is the last one-way message id the old node took from each sender before its hold.
 */
export function handOverOrder(
  handed: readonly HeldMessage[],
  own: readonly HeldMessage[],
  lastTaken: Readonly<Record<string, number>>,
): HeldMessage[] {
  const at = new Map<string, number>();
  const taken = new Map(Object.entries(lastTaken));
  const handedKeys = new MessageKeys();
  handed.forEach((held, index) => {
    at.set(handedKeys.of(held), index);
    const sender = held.headers[Header.NODE];
    if (sender !== undefined && held.kind === 'input') {
      taken.set(sender, Math.max(taken.get(sender) ?? 0, batchIds(held.data).last));
    }
  });
  const ownKeys = new MessageKeys();
  const place = own.map((held) => {
    const index = at.get(ownKeys.of(held));
    if (index !== undefined) return index;
    const sender = held.headers[Header.NODE];
    const copy = sender !== undefined && held.kind === 'input' && batchIds(held.data).first <= (taken.get(sender) ?? 0);
    return copy ? TAKEN : NEW;
  });
  // A message only here goes before the first copy after it (in arrival order here) from its own sender: a sender's
  // messages come in its order to both nodes, but two senders' may interleave differently at each.
  const before = new Array<number>(own.length);
  const nextCopy = new Map<string, number>();
  for (let i = own.length - 1; i >= 0; i--) {
    const held = own[i] as HeldMessage;
    const sender = held.headers[Header.NODE] ?? '';
    const index = place[i] as number;
    if (index >= 0) nextCopy.set(sender, Math.min(nextCopy.get(sender) ?? handed.length, index));
    before[i] = nextCopy.get(sender) ?? handed.length;
  }
  // Stable: a sender's own messages keep their order (their places do not decrease along it).
  const fresh = own.map((_, i) => i).filter((i) => place[i] === NEW);
  fresh.sort((a, b) => (before[a] as number) - (before[b] as number));
  const order: HeldMessage[] = [];
  let next = 0;
  handed.forEach((held, index) => {
    for (; next < fresh.length && (before[fresh[next] as number] as number) <= index; next++) {
      order.push(own[fresh[next] as number] as HeldMessage);
    }
    order.push(held);
  });
  for (; next < fresh.length; next++) order.push(own[fresh[next] as number] as HeldMessage);
  return order;
}

/** Keys that name a held message across two nodes' lists: sender, kind and id; or, anonymous, bytes and occurrence. */
class MessageKeys {
  readonly #anonymous = new Map<string, number>();

  of(held: HeldMessage): string {
    const sender = held.headers[Header.NODE];
    if (sender !== undefined) return `${sender}\n${held.kind}\n${batchIds(held.data).first}`;
    const bytes = `${held.kind}\n${Buffer.from(held.data).toString('base64')}`;
    const occurrence = this.#anonymous.get(bytes) ?? 0;
    this.#anonymous.set(bytes, occurrence + 1);
    return `\n${bytes}\n${occurrence}`;
  }
}

/** The message ids of a batch's first and last frames (0 when it has none). */
function batchIds(data: Uint8Array): { first: number; last: number } {
  let first = 0;
  let last = 0;
  readFrameBatch(
    data,
    (frame) => {
      if (first === 0) first = frame.messageId;
      last = frame.messageId;
    },
    () => undefined,
  );
  return { first, last };
}
