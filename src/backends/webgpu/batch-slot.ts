import { BATCH_UNIFORM_BYTES, MESSAGE_DESCRIPTOR_WORDS, OUTPUT_STATUS_WORDS } from './wgsl-program.js';

/** GPUBufferUsage bits (WebGPU spec constants; the binding's globals are not installed). */
export const Usage = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128 } as const;
/** Bytes of one output status. */
export const STATUS_BYTES = OUTPUT_STATUS_WORDS * 4;
/** Bytes of one message descriptor. */
export const DESCRIPTOR_BYTES = MESSAGE_DESCRIPTOR_WORDS * 4;

/** One batch's buffers on the device, the host's copy of what it uploaded, and where the batch stands. */
export interface Slot {
  readonly uniform: GPUBuffer;
  readonly messages: GPUBuffer;
  readonly input: GPUBuffer;
  readonly statuses: GPUBuffer;
  readonly outputs: GPUBuffer;
  readonly readback: GPUBuffer;
  readonly bindGroup: GPUBindGroup;
  /** Host copies of what was uploaded: descriptors, payload bytes, and the envelope fields outputs need. */
  readonly descriptors: Uint32Array;
  readonly data: Uint8Array;
  readonly messageIds: Float64Array;
  readonly correlationIds: Float64Array;
  count: number;
  dataBytes: number;
  submittedAt: number;
  /** Which input the batch came from: 0 the kernel's own ring, then kernel-to-kernel links. */
  source: number;
  /** The kernel's own ring: where the batch's first frame starts (its cursor before the batch). */
  startCursor: number;
  /** Where each frame of the batch ends in its ring: the handled cursor when a batch is cut short. */
  readonly frameEnds: Uint32Array;
  /** Tracing: which messages are sampled (1), and their trace id and parent span id (24 bytes each). */
  readonly sampled: Uint8Array;
  readonly traceContext: Uint8Array;
  anySampled: boolean;
  startNs: number;
  /** The readback of this batch: settles (resolves or rejects) exactly once; never left pending at teardown. */
  mapped: Promise<void> | undefined;
  /** The batch size the uniform header holds now (it is rewritten only when a batch's differs). */
  headerCount: number;
  /**
   * A one-message batch encoded ahead, while the engine had nothing to do, for the next call: submitted as is
   * (a command buffer is used once) when the slot's next batch has one message, dropped otherwise.
   */
  single: GPUCommandBuffer | undefined;
}

/** The sizes of a kernel's batch slots. */
export interface BatchSlotShape {
  readonly label: string;
  readonly maxBatch: number;
  /** Bytes each message's output may take. */
  readonly outputBytes: number;
  /** Bytes of payload one batch can carry. */
  readonly dataCapacity: number;
  /** Bytes of the readback: statuses, outputs, then the state. */
  readonly readbackBytes: number;
  /** Tracing is on: keep each message's trace context. */
  readonly traced: boolean;
}

/** Makes one batch slot: its buffers (made once, at launch, reused by every batch) and its bind group. */
export function createBatchSlot(device: GPUDevice, layout: GPUBindGroupLayout, shape: BatchSlotShape): Slot {
  const { label, maxBatch: max, outputBytes: outBytes, dataCapacity } = shape;
  const uniform = device.createBuffer({ label, size: BATCH_UNIFORM_BYTES, usage: Usage.UNIFORM | Usage.COPY_DST });
  const messages = device.createBuffer({ label, size: max * DESCRIPTOR_BYTES, usage: Usage.STORAGE | Usage.COPY_DST });
  const input = device.createBuffer({ label, size: dataCapacity, usage: Usage.STORAGE | Usage.COPY_DST });
  const statuses = device.createBuffer({ label, size: max * STATUS_BYTES, usage: Usage.STORAGE | Usage.COPY_SRC });
  const outputs = device.createBuffer({
    label,
    size: Math.max(4, max * outBytes),
    usage: Usage.STORAGE | Usage.COPY_SRC,
  });
  // Statuses, then outputs, then a copy of the state as this batch left it (the sync checkpoint's source).
  const readback = device.createBuffer({ label, size: shape.readbackBytes, usage: Usage.MAP_READ | Usage.COPY_DST });
  const bindGroup = device.createBindGroup({
    layout,
    entries: [uniform, messages, input, statuses, outputs].map((buffer, binding) => ({
      binding,
      resource: { buffer },
    })),
  });
  return {
    uniform,
    messages,
    input,
    statuses,
    outputs,
    readback,
    bindGroup,
    descriptors: new Uint32Array(max * MESSAGE_DESCRIPTOR_WORDS),
    data: new Uint8Array(dataCapacity),
    messageIds: new Float64Array(max),
    correlationIds: new Float64Array(max),
    count: 0,
    dataBytes: 0,
    submittedAt: 0,
    source: 0,
    startCursor: 0,
    frameEnds: new Uint32Array(max),
    sampled: new Uint8Array(shape.traced ? max : 0),
    traceContext: new Uint8Array(shape.traced ? max * 24 : 0),
    anySampled: false,
    startNs: 0,
    mapped: undefined,
    headerCount: 0,
    single: undefined,
  };
}

/** Destroys a slot's buffers (the engine's teardown). */
export function destroyBatchSlot(slot: Slot): void {
  for (const buffer of [slot.uniform, slot.messages, slot.input, slot.statuses, slot.outputs, slot.readback]) {
    buffer.destroy();
  }
}

/** How a kernel's batches are dispatched and read back (fixed at launch). */
export interface BatchDispatch {
  readonly pipeline: GPUComputePipeline;
  readonly workgroupSize: number;
  /** Words each message's output may take. */
  readonly outWords: number;
  /** Where the outputs start in a readback: after the statuses of the largest batch. */
  readonly outputAt: number;
  /** The kernel's state, when it has one: its bind group (group 1), and where its copy lies in a readback. */
  readonly state:
    | { readonly buffer: GPUBuffer; readonly bindGroup: GPUBindGroup; readonly at: number; readonly bytes: number }
    | undefined;
}

/**
 * Encodes one batch of `count` messages in the slot: the kernel's dispatch, then the copies into the slot's
 * readback — statuses, outputs, and the state as the batch leaves it (a synchronous checkpoint's source).
 */
export function encodeBatch(device: GPUDevice, slot: Slot, dispatch: BatchDispatch, count: number): GPUCommandBuffer {
  const state = dispatch.state;
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(dispatch.pipeline);
  pass.setBindGroup(0, slot.bindGroup);
  if (state !== undefined) pass.setBindGroup(1, state.bindGroup);
  pass.dispatchWorkgroups(Math.ceil(count / dispatch.workgroupSize));
  pass.end();
  const outputBytes = count * dispatch.outWords * 4;
  encoder.copyBufferToBuffer(slot.statuses, 0, slot.readback, 0, count * STATUS_BYTES);
  if (outputBytes > 0) encoder.copyBufferToBuffer(slot.outputs, 0, slot.readback, dispatch.outputAt, outputBytes);
  if (state !== undefined) encoder.copyBufferToBuffer(state.buffer, 0, slot.readback, state.at, state.bytes);
  return encoder.finish();
}
