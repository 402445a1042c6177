import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CONTROL_BLOCK_LAYOUT,
  ControlBlock,
  ControlBlockOffset,
  ErrorCode,
  KernelStatus,
  kernelStatusName,
  layoutField,
} from '../src/internal.js';
import { KERNEL_HISTOGRAMS_BYTES, LATENCY_HISTOGRAM_BYTES, LatencyHistogram } from '../src/kernel/latency-histogram.js';
import { TERMINATE_FINISH } from '../src/wire/control-block.js';

/** Reads a field straight from memory at the offset the layout table gives, as C would. */
function raw(block: ControlBlock, name: string): number | bigint {
  const field = layoutField(CONTROL_BLOCK_LAYOUT, name);
  const view = new DataView(block.buffer);
  return field.kind === 'u64' ? view.getBigUint64(field.offset, true) : view.getUint32(field.offset, true);
}

describe('ControlBlock', () => {
  it('initialises as Created, paused, with its ids, and refuses a block of another layout version', () => {
    const block = ControlBlock.create(7, 70);
    assert.equal(block.status, KernelStatus.Created);
    assert.equal(block.isActive, false);
    assert.equal(block.kernelId, 7);
    assert.equal(block.hlc.node, 70);
    assert.equal(raw(block, 'layout_version'), 1);
    assert.throws(() => new ControlBlock(new SharedArrayBuffer(128)), /layout version 0 is not 1/);
    assert.throws(() => new ControlBlock(new SharedArrayBuffer(64)), /needs 128 bytes/);
    assert.throws(() => new ControlBlock(block.buffer, 4), /multiple of 8/);
  });

  it("keeps a kernel's histograms after the block in its one buffer, neither touching the other", () => {
    const block = ControlBlock.create(5, 5, KERNEL_HISTOGRAMS_BYTES);
    assert.equal(block.buffer.byteLength, ControlBlockOffset.SIZE + KERNEL_HISTOGRAMS_BYTES);
    const handler = new LatencyHistogram(block.buffer, ControlBlockOffset.SIZE);
    const hops = new LatencyHistogram(block.buffer, ControlBlockOffset.SIZE + LATENCY_HISTOGRAM_BYTES);
    for (let i = 1; i <= 100; i++) handler.record(i * 1000);
    hops.record(5000);
    block.setStatus(KernelStatus.Active);
    block.addBatch(3, 3, 0, 0);
    assert.equal(handler.summary().samples, 100);
    assert.equal(hops.summary().samples, 1);
    assert.equal(block.status, KernelStatus.Active);
    assert.equal(block.kernelId, 5);
    assert.equal(block.messagesProcessed, 3n);
  });

  it('writes each field exactly where the layout table (and so the C header) puts it', () => {
    const block = ControlBlock.create(1);
    const peer = new ControlBlock(block.buffer); // another thread's view of the same memory
    block.setStatus(KernelStatus.Active);
    block.setActive(true);
    block.requestTermination();
    block.markTerminated();
    block.addBatch(10, 7, 2, 1);
    block.addBatch(5, 5, 0, 0);
    block.setInFlight(3);
    block.beat(1_700_000_000_123_456);
    block.recordError(ErrorCode.FrameBadChecksum);
    block.recordError(ErrorCode.FrameBadMagic);
    block.publishHlc(1_700_000_000_000_001, 9);
    block.bumpGeneration();
    const expected: Record<string, number | bigint> = {
      status: KernelStatus.Active,
      is_active: 1,
      should_terminate: 1,
      has_terminated: 1,
      messages_received: 15n,
      messages_processed: 12n,
      messages_failed: 2n,
      messages_dropped: 1n,
      messages_in_flight: 3,
      heartbeat_us: 1_700_000_000_123_456n,
      last_error_code: 102,
      error_count: 2,
      hlc_physical_us: 1_700_000_000_000_001n,
      hlc_logical: 9,
      generation: 1,
      kernel_id: 1,
    };
    for (const [name, value] of Object.entries(expected)) assert.equal(raw(block, name), value, name);
    assert.equal(peer.messagesProcessed, 12n);
    assert.equal(peer.messagesReceived, 15n);
    assert.equal(peer.messagesFailed, 2n);
    assert.equal(peer.messagesDropped, 1n);
    assert.equal(peer.messagesInFlight, 3);
    assert.equal(peer.heartbeatUs, 1_700_000_000_123_456);
    assert.equal(peer.lastErrorCode, 102);
    assert.equal(peer.errorCount, 2);
    assert.equal(peer.shouldTerminate && peer.hasTerminated && peer.isActive, true);
    assert.deepEqual(peer.hlc, { physicalUs: 1_700_000_000_000_001, logical: 9, node: 1 });
    assert.equal(peer.generation, 1);
    assert.equal(kernelStatusName(peer.status), 'Active');
    assert.equal(kernelStatusName(42), undefined);
  });

  it('carries the device-executor words (discard, pause, integrity) and clears them for a restart', () => {
    const block = ControlBlock.create(2);
    const peer = new ControlBlock(block.buffer);
    block.setIntegrity(true);
    block.requestPause(true);
    block.requestTermination(TERMINATE_FINISH, true);
    assert.equal(raw(block, 'terminate_discard'), 1);
    assert.equal(raw(block, 'pause_request'), 1);
    assert.equal(raw(block, 'integrity'), 1);
    assert.equal(peer.terminateDiscards, true);
    assert.equal(peer.paused, false, "paused is the executor's answer, not the request");
    block.resetForRestart();
    assert.equal(peer.terminateDiscards, false);
    assert.equal(raw(block, 'pause_request'), 0);
    assert.equal(peer.terminationRequest, 0);
    assert.equal(raw(block, 'integrity'), 1, "integrity is the rings' property: it outlives restarts");
  });
});
