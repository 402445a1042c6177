import { InvalidArgumentError } from '../errors/argument-errors.js';
import { LinkTypeMismatchError } from '../errors/runtime-errors.js';
import type { FrameRingMemory } from '../wire/frame-ring.js';
import type { MessageCodec } from '../wire/message-schema.js';
import type { LinkCommand } from './kernel-handle-options.js';

/** A kernel as a kernel-to-kernel link sees it (producer or consumer). */
export interface LinkableKernel {
  readonly name: string;
  readonly inputCodec: MessageCodec<unknown, unknown>;
  readonly outputCodec: MessageCodec<unknown, unknown>;
  readonly emittedCodecs: readonly MessageCodec<unknown, unknown>[] | undefined;
  /** Its input ring (the link's ring gets the same integrity setting). */
  readonly inputMemory: FrameRingMemory;
  /** How its rings reach it: the producer rings the doorbell of the consumer's own input end. */
  readonly transfer: { readonly kernelInput: FrameRingMemory };
  link(command: LinkCommand): Promise<void>;
}

/** The next link's id: unique in this process, so unique on every worker thread a runtime of it has. */
let nextLinkId = 1;

/** Where a link's ring comes from, and where its memory is accounted. */
export interface LinkRings {
  readonly defaultQueueCapacity: number;
  /** A ring for `codec`'s messages, `capacity` of them. */
  ring(codec: MessageCodec<unknown, unknown>, capacity: number, integrity: boolean): FrameRingMemory;
  /** The link's ring lives as long as its consumer: its memory is the consumer's. */
  record(consumer: LinkableKernel, owner: string, memory: FrameRingMemory): void;
}

/**
 * Wires `source`'s outputs straight into `target`'s input over a ring of their own, worker to worker (see
 * `RingKernelRuntime.connect`). A kernel that emits several types sends the link only the consumer's.
 * @throws {InvalidArgumentError} to connect a kernel to itself; {@link LinkTypeMismatchError} when `source`
 * emits nothing `target` takes.
 */
export async function connectKernels(
  source: LinkableKernel,
  target: LinkableKernel,
  queueCapacity: number | undefined,
  rings: LinkRings,
): Promise<void> {
  if (source === target) {
    throw new InvalidArgumentError('to', `kernel '${source.name}' cannot be connected to itself`);
  }
  const accepted = target.inputCodec;
  const emitted = [source.outputCodec, ...(source.emittedCodecs ?? [])];
  const produced = emitted.find((codec) => codec.typeId === accepted.typeId);
  if (produced === undefined) {
    throw new LinkTypeMismatchError(
      `cannot connect '${source.name}' to '${target.name}': '${source.name}' outputs ${emitted.map((codec) => codec.name).join(', ')} and '${target.name}' takes ${accepted.name}`,
    );
  }
  // A kernel that emits several types: the link takes only the consumer's (routing by message type).
  const types = emitted.length > 1 ? [accepted.typeId] : undefined;
  const memory = rings.ring(produced, queueCapacity ?? rings.defaultQueueCapacity, target.inputMemory.integrity);
  rings.record(target, `${source.name}→${target.name}`, memory);
  const link = nextLinkId++;
  // Consumer first: frames may flow as soon as the producer has the ring.
  await target.link({ command: 'LINK_IN', memory, link });
  await source.link({ command: 'LINK_OUT', memory, link, wake: target.transfer.kernelInput.signal, types });
}
