import { createRequire } from 'node:module';

/** glibc's `mallopt` parameter for the mmap threshold (`M_MMAP_THRESHOLD` in malloc.h). */
const M_MMAP_THRESHOLD = -3;
/** glibc's `mallopt` parameter for how many allocations may be mappings at once (`M_MMAP_MAX`). */
const M_MMAP_MAX = -4;
/**
 * No count limit on mappings. glibc's default, 65 536, is two rings each for 32 768 kernels: past it every new ring
 * came from the heap, zero-filled, so each cost its full size resident. Adjacent mappings merge into one region,
 * so the kernel's own limit on regions per process (`vm.max_map_count`) is not reached either.
 */
const MMAP_MAX = 0x7fff_ffff;
/** Every allocation from this size up is its own mapping: glibc's default threshold, made fixed. */
const MMAP_THRESHOLD_BYTES = 128 * 1024;

let settled: RingAllocationMode | undefined;

/** How ring memory is allocated in this process: see {@link fixRingAllocation}. */
export type RingAllocationMode =
  /** glibc's mmap threshold is fixed: every ring of 128 KiB or more is a fresh, lazily zeroed mapping. */
  | 'mmap'
  /** Not glibc, or koffi is missing: the allocator's own policy. */
  | 'default';

/**
 * Makes ring allocation independent of malloc's history. A SharedArrayBuffer's memory comes from the C allocator
 * (zeroed). glibc serves large requests with mmap — fresh zero pages, resident only once touched, returned to the
 * system when freed — until a large block is freed: then it raises its "dynamic" mmap threshold past that size,
 * and later rings of the same size come from the heap, zero-filled by memset, so every page is resident (and a
 * freed one stays with the process). It does the same once 65 536 allocations are mappings at once (two rings
 * each for 32 768 kernels). An idle kernel's rings then cost their full size instead of the few pages it touched,
 * depending on what the process freed before or how many kernels it holds. Setting the threshold once
 * (`mallopt(M_MMAP_THRESHOLD)`) turns the dynamic adjustment off, and lifting the count (`M_MMAP_MAX`) the cliff:
 * rings are always mappings. Done once per process, at the first runtime; elsewhere (not glibc, no koffi) it
 * changes nothing and says so.
 */
export function fixRingAllocation(): RingAllocationMode {
  if (settled !== undefined) return settled;
  settled = 'default';
  if (process.platform !== 'linux') return settled;
  const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
    ?.glibcVersionRuntime;
  if (glibc === undefined) return settled;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const mallopt = koffi.load('libc.so.6').func('int mallopt(int param, int value)') as (
      p: number,
      v: number,
    ) => number;
    if (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) === 1 && mallopt(M_MMAP_MAX, MMAP_MAX) === 1) {
      settled = 'mmap';
    }
  } catch {
    // No koffi (or no libc.so.6): the allocator keeps its own policy.
  }
  return settled;
}
