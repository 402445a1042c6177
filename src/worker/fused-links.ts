/**
 * Kernel-to-kernel links whose two ends run on this worker thread. A producer whose consumer is here does not
 * leave the frames it wrote for the consumer's own loop to find (a wake-up, a park, an event-loop turn each): it
 * has the consumer handle them on its own turn, right after writing them. The frames still go through the link's
 * ring, so the ring's guarantees hold unchanged: FIFO, backpressure (a full ring, a consumer that will not take
 * more), handled cursors, dead letters, spans. A consumer that cannot take them now (not active, stopping, its own
 * outputs held for room, already handling) says so, and its own loop handles them as on any link.
 */

/** The consuming end of a link ring, as a producer on the same thread reaches it. */
export interface FusedLinkConsumer {
  /**
   * Handles the frames queued in link `link`'s ring now, on the caller's turn, if the kernel can take them.
   * Returns whether the ring is empty afterwards (the kernel's own loop then need not be woken for it).
   */
  drainLink(link: number): boolean;
}

/** The link consumers hosted by this worker thread, by link id (module state: one map per worker). */
const consumers = new Map<number, FusedLinkConsumer>();

/** `consumer` (a kernel on this thread) consumes link `link` from now on. */
export function registerLinkConsumer(link: number, consumer: FusedLinkConsumer): void {
  consumers.set(link, consumer);
}

/** `consumer` no longer consumes link `link` (it exited); a newer consumer registered since stays. */
export function unregisterLinkConsumer(link: number, consumer: FusedLinkConsumer): void {
  if (consumers.get(link) === consumer) consumers.delete(link);
}

/** The consumer of link `link` when it runs on this thread, else undefined (the link is not fused). */
export function linkConsumer(link: number): FusedLinkConsumer | undefined {
  return consumers.get(link);
}
