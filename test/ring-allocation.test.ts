import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixRingAllocation } from '../src/wire/ring-allocation.js';

/** glibc's default limit on allocations that are mappings at once (`M_MMAP_MAX`): 65 536. */
const GLIBC_DEFAULT_MMAP_MAX = 65_536;
/** Just over the mmap threshold the runtime fixes (128 KiB): every such buffer is meant to be a mapping. */
const RING_BYTES = 132 * 1024;

describe('ring allocation', () => {
  // Rings past glibc's count of mappings came from the heap, zero-filled, each resident in full: a process holding
  // more than 32 768 kernels (two rings each) grew by the whole ring size per kernel and ran out of memory.
  it('keeps rings lazily zeroed mappings past 65 536 of them', { skip: fixRingAllocation() !== 'mmap' }, () => {
    const held: SharedArrayBuffer[] = [];
    while (held.length < GLIBC_DEFAULT_MMAP_MAX + 1_000) held.push(new SharedArrayBuffer(RING_BYTES));
    const extra = 4_000;
    const before = process.memoryUsage().rss;
    for (let i = 0; i < extra; i++) held.push(new SharedArrayBuffer(RING_BYTES));
    const residentPerRing = (process.memoryUsage().rss - before) / extra;
    // A mapping costs a page or two resident (glibc's chunk header, V8's object); a heap block all 132 KiB.
    assert.ok(
      residentPerRing < RING_BYTES / 4,
      `each ring past the first ${held.length - extra} took ${Math.round(residentPerRing / 1024)} KiB resident`,
    );
    assert.equal(held.length, GLIBC_DEFAULT_MMAP_MAX + 1_000 + extra);
  });
});
