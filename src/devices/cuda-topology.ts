import { CuDeviceP2PAttribute, type CudaDriver } from '../backends/cuda/driver.js';
import { loadNvml, type Nvml, pciKey } from '../backends/cuda/nvml.js';
import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../errors/argument-errors.js';
import { CudaError, NvmlError } from '../errors/cuda-errors.js';
import type { DeviceInfo, DeviceLink, GpuTopology } from './topology.js';

/** Options of {@link cudaTopology}. */
export interface CudaTopologyOptions {
  /**
   * NVML to ask which pairs an NVLink joins; `null` skips NVLink detection. Default: {@link loadNvml}'s
   * (`libnvidia-ml.so.1`, or `RINGKERNEL_LIBNVML`), and no detection when it does not load.
   */
  readonly nvml?: Nvml | null;
  /** Bytes of each bandwidth copy (default 32 MiB; less when a device has less than four times that free). */
  readonly copyBytes?: number;
  /** Bandwidth copies per pair; the fastest counts (default 5). */
  readonly repetitions?: number;
}

const DEFAULT_COPY_BYTES = 32 << 20;
const LATENCY_BYTES = 64;
const LATENCY_SAMPLES = 9;
const CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED = 704;

/** NVLinks NVML reports between the devices, and what it could not say. */
interface NvLinkScan {
  /** Links per pair `a-b` (a < b), direct or (`nvswitch`) through a switch. */
  readonly links: Map<string, { count: number; nvswitch: boolean }>;
  readonly detected: boolean;
  readonly notes: string[];
}

const pairKey = (a: number, b: number): string => (a < b ? `${a}-${b}` : `${b}-${a}`);

/**
 * Asks NVML which device pairs an active NVLink joins: each device's active links (`nvmlDeviceGetNvLinkState`)
 * and the PCI address at their far end (`nvmlDeviceGetNvLinkRemotePciInfo_v2`), matched against the CUDA
 * devices' addresses (`cuDeviceGetPCIBusId`). A link that reaches an NVSwitch (`nvmlDeviceGetNvLinkRemoteDeviceType`)
 * puts its GPU on the switch fabric: two GPUs on it are joined by min(their switch links) links. One fabric per
 * machine is assumed (HGX boards have one).
 */
function scanNvLinks(nvml: Nvml, busIds: readonly string[]): NvLinkScan {
  const links = new Map<string, { count: number; nvswitch: boolean }>();
  const notes: string[] = [];
  try {
    nvml.init();
  } catch (error) {
    if (!(error instanceof NvmlError)) throw error;
    notes.push(`NVML did not start (${error.message}): NVLinks not detected`);
    return { links, detected: false, notes };
  }
  try {
    const ordinalOf = new Map(busIds.map((busId, ordinal) => [pciKey(busId), ordinal]));
    const switchLinks = busIds.map(() => 0);
    busIds.forEach((busId, ordinal) => {
      for (const link of nvml.activeNvLinks(nvml.deviceHandleByPciBusId(busId))) {
        if (link.remoteType === 'switch') {
          switchLinks[ordinal] = (switchLinks[ordinal] ?? 0) + 1;
          continue;
        }
        const remote = ordinalOf.get(pciKey(link.remote.busId));
        if (remote === undefined) {
          notes.push(
            `NVLink ${link.link} of device ${ordinal} reaches ${link.remote.busId}, which is not a CUDA device of this process`,
          );
        } else if (ordinal < remote) {
          // Both ends report a link; the lower-numbered end counts it.
          const entry = links.get(pairKey(ordinal, remote)) ?? { count: 0, nvswitch: false };
          entry.count++;
          links.set(pairKey(ordinal, remote), entry);
        }
      }
    });
    for (let a = 0; a < busIds.length; a++) {
      for (let b = a + 1; b < busIds.length; b++) {
        const through = Math.min(switchLinks[a] ?? 0, switchLinks[b] ?? 0);
        if (through > 0 && !links.has(pairKey(a, b))) links.set(pairKey(a, b), { count: through, nvswitch: true });
      }
    }
    return { links, detected: true, notes };
  } catch (error) {
    if (!(error instanceof NvmlError)) throw error;
    notes.push(`NVML failed while reading NVLinks (${error.message}): NVLinks not detected`);
    return { links: new Map(), detected: false, notes };
  } finally {
    try {
      nvml.shutdown();
    } catch {
      // Shutting NVML down cannot change the answer; its error is not the caller's.
    }
  }
}

function checkOptions(options: CudaTopologyOptions): { copyBytes: number; repetitions: number } {
  if (typeof options !== 'object' || options === null)
    throw new ArgumentTypeError('options', `cudaTopology: options must be an object, got ${describeValue(options)}`);
  const { copyBytes = DEFAULT_COPY_BYTES, repetitions = 5 } = options;
  if (!Number.isSafeInteger(copyBytes) || copyBytes < 4096) {
    throw new InvalidArgumentError(
      'options.copyBytes',
      `options.copyBytes must be an integer of at least 4096, got ${copyBytes}`,
    );
  }
  if (!Number.isInteger(repetitions) || repetitions < 1 || repetitions > 100) {
    throw new InvalidArgumentError(
      'options.repetitions',
      `options.repetitions must be an integer in [1, 100], got ${repetitions}`,
    );
  }
  return { copyBytes, repetitions };
}

const median = (samples: number[]): number => {
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1] as number;
};

/**
 * The CUDA devices and the links between them, for `runtime.gpuTopology()` on the CUDA backend (which calls it
 * once and keeps the answer).
 *
 * Devices: id (the ordinal), name, kind `cuda`, memory (MiB, `cuDeviceTotalMem`), compute units (SMs). Links, one
 * per unordered pair: `nvlink` when NVML says an active NVLink joins the two (directly or through an NVSwitch),
 * else `pcie` when `cuDeviceCanAccessPeer` says each can access the other, else `host` (copies are staged through
 * host memory). `notes` says when NVML was not there to ask (then no link is `nvlink`).
 *
 * Measured once per pair, from the lower-numbered device to the other, one direction only:
 * - peers (`measuredWith: 'cuMemcpyPeerAsync'`): peer access is enabled both ways on the primary contexts (it stays
 *   enabled — the runtime's kernels share those contexts); bandwidth is the fastest of `repetitions` copies of
 *   `copyBytes` device to device with `cuMemcpyPeerAsync` on a stream of the source, each timed by CUDA events
 *   recorded before and after it (after one untimed warm-up copy); latency is the median of nine event-timed
 *   64-byte copies — the copy engine's time, not the host's cost of issuing it;
 * - host links (`measuredWith: 'host-staged'`): each copy is `cuMemcpyDtoH` into page-locked host memory then
 *   `cuMemcpyHtoD` to the other device, timed together by the host clock (`performance.now`), the same counts.
 *
 * The calling thread's current context is left unset (`cuCtxSetCurrent(0)`) afterwards; device buffers, the
 * pinned staging buffer, streams and events are freed and the primary contexts released.
 *
 * @example
 * const topology = cudaTopology(requireCudaDriver());
 * for (const link of topology.links) console.log(`${link.from}↔${link.to}: ${link.kind}, ${link.bandwidthGBps} GB/s`);
 * if (topology.linkSource !== 'cuda+nvml') console.log(topology.notes.join('\n'));
 */
export function cudaTopology(driver: CudaDriver, options: CudaTopologyOptions = {}): GpuTopology {
  const { copyBytes: wanted, repetitions } = checkOptions(options);
  driver.init();
  const count = driver.deviceCount();
  const ordinals = Array.from({ length: count }, (_, ordinal) => ordinal);
  const handles = ordinals.map((ordinal) => driver.device(ordinal));
  const devices: DeviceInfo[] = ordinals.map((ordinal) => {
    const info = driver.deviceInfo(ordinal);
    return {
      id: ordinal,
      name: info.name,
      kind: 'cuda',
      memoryMB: Math.floor(Number(info.totalMemoryBytes / 1_048_576n)),
      computeUnits: info.multiprocessorCount,
      workerThreadIds: [],
    };
  });
  const notes: string[] = [];
  if (driver.emulated) {
    notes.push('the CUDA driver is the emulator: devices are CPU threads, link figures are host memory copies');
  }
  let scan: NvLinkScan = { links: new Map(), detected: false, notes: [] };
  if (count > 1) {
    let nvml: Nvml | undefined;
    if (options.nvml === null) notes.push('NVLink detection was switched off (options.nvml: null)');
    else if (options.nvml !== undefined) nvml = options.nvml;
    else {
      const load = loadNvml();
      if (load.available) nvml = load.nvml;
      else notes.push(`NVML is not available (${load.reason}): NVLinks not detected, links are pcie or host`);
    }
    if (nvml !== undefined) {
      scan = scanNvLinks(
        nvml,
        handles.map((device) => driver.devicePciBusId(device)),
      );
      notes.push(...scan.notes);
    }
  }
  const links: DeviceLink[] = [];
  if (count > 1) measurePairs(driver, handles, wanted, repetitions, scan, links);
  return {
    devices,
    links,
    linkSource: scan.detected ? 'cuda+nvml' : 'cuda',
    notes,
  };
}

function measurePairs(
  driver: CudaDriver,
  handles: readonly number[],
  wanted: number,
  repetitions: number,
  scan: NvLinkScan,
  links: DeviceLink[],
): void {
  const contexts: bigint[] = [];
  const buffers: bigint[] = [];
  let staging: Uint8Array | undefined;
  let registered = false;
  try {
    let copyBytes = wanted;
    for (const device of handles) {
      contexts.push(driver.primaryContextRetain(device));
      // A device with little free memory gets smaller copies, never an out-of-memory failure.
      const free = Number(driver.memGetInfo().freeBytes);
      copyBytes = Math.max(4096, Math.min(copyBytes, Math.floor(free / 4 / 4096) * 4096));
    }
    handles.forEach((_, ordinal) => {
      driver.setCurrentContext(contexts[ordinal] as bigint);
      buffers.push(driver.memAlloc(copyBytes));
    });
    for (let a = 0; a < handles.length; a++) {
      for (let b = a + 1; b < handles.length; b++) {
        const from = handles[a] as number;
        const to = handles[b] as number;
        const peerAccess = driver.deviceCanAccessPeer(from, to) && driver.deviceCanAccessPeer(to, from);
        const nvlink = scan.links.get(pairKey(a, b));
        const common = {
          from: a,
          to: b,
          kind: nvlink !== undefined ? ('nvlink' as const) : peerAccess ? ('pcie' as const) : ('host' as const),
          peerAccess,
          nativeAtomics:
            peerAccess && driver.deviceP2PAttribute(CuDeviceP2PAttribute.NativeAtomicSupported, from, to) === 1,
          p2pPerformanceRank: peerAccess
            ? driver.deviceP2PAttribute(CuDeviceP2PAttribute.PerformanceRank, from, to)
            : 0,
          nvlinks: nvlink?.count ?? 0,
          nvswitch: nvlink?.nvswitch ?? false,
        };
        const ends = {
          source: buffers[a] as bigint,
          sourceContext: contexts[a] as bigint,
          destination: buffers[b] as bigint,
          destinationContext: contexts[b] as bigint,
        };
        if (peerAccess) {
          enablePeerAccess(driver, ends.sourceContext, ends.destinationContext);
          enablePeerAccess(driver, ends.destinationContext, ends.sourceContext);
          links.push({
            ...common,
            ...timePeerCopies(driver, ends, copyBytes, repetitions),
            measuredWith: 'cuMemcpyPeerAsync',
          });
          continue;
        }
        if (staging === undefined) {
          // Page-locked (portable: every context sees it pinned), as the driver stages peer-less copies.
          staging = new Uint8Array(new SharedArrayBuffer(copyBytes));
          driver.setCurrentContext(contexts[0] as bigint);
          driver.memHostRegister(staging, 0x01);
          registered = true;
        }
        links.push({ ...common, ...timeStagedCopies(driver, ends, staging, repetitions), measuredWith: 'host-staged' });
      }
    }
  } finally {
    // Undo in reverse; a failure here must not hide the one that got us here.
    const quietly = (step: () => void): void => {
      try {
        step();
      } catch {
        // Best effort: the topology (or its error) is already decided.
      }
    };
    buffers.forEach((pointer, ordinal) => {
      quietly(() => driver.setCurrentContext(contexts[ordinal] as bigint));
      quietly(() => driver.memFree(pointer));
    });
    if (registered && staging !== undefined) {
      const pinned = staging;
      quietly(() => driver.setCurrentContext(contexts[0] as bigint));
      quietly(() => driver.memHostUnregister(pinned));
    }
    for (let ordinal = 0; ordinal < contexts.length; ordinal++) {
      quietly(() => driver.primaryContextRelease(handles[ordinal] as number));
    }
    quietly(() => driver.setCurrentContext(0n));
  }
}

function enablePeerAccess(driver: CudaDriver, context: bigint, peer: bigint): void {
  driver.setCurrentContext(context);
  try {
    driver.contextEnablePeerAccess(peer);
  } catch (error) {
    // Enabled already (by an earlier topology, or the application): that is what we wanted.
    if (!(error instanceof CudaError) || error.cudaResult !== CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED) throw error;
  }
}

interface PairEnds {
  readonly source: bigint;
  readonly sourceContext: bigint;
  readonly destination: bigint;
  readonly destinationContext: bigint;
}

type Figures = { readonly bandwidthGBps: number; readonly latencyUs: number };

const figures = (copyBytes: number, bestMs: number, latencyMs: number): Figures => ({
  bandwidthGBps: Math.round((copyBytes / 1e9 / (Math.max(bestMs, 1e-6) / 1000)) * 10) / 10,
  latencyUs: Math.round(latencyMs * 1e6) / 1000,
});

function timePeerCopies(driver: CudaDriver, ends: PairEnds, copyBytes: number, repetitions: number): Figures {
  driver.setCurrentContext(ends.sourceContext);
  const stream = driver.streamCreate();
  const start = driver.eventCreate();
  const end = driver.eventCreate();
  try {
    const timed = (bytes: number): number => {
      driver.eventRecord(start, stream);
      driver.memcpyPeerAsync(ends.destination, ends.destinationContext, ends.source, ends.sourceContext, bytes, stream);
      driver.eventRecord(end, stream);
      driver.eventSynchronize(end);
      return driver.eventElapsedMs(start, end);
    };
    timed(copyBytes); // warm-up: the first peer copy maps the peer's memory
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < repetitions; i++) best = Math.min(best, timed(copyBytes));
    const latency = median(Array.from({ length: LATENCY_SAMPLES }, () => timed(LATENCY_BYTES)));
    return figures(copyBytes, best, latency);
  } finally {
    driver.eventDestroy(end);
    driver.eventDestroy(start);
    driver.streamDestroy(stream);
  }
}

function timeStagedCopies(driver: CudaDriver, ends: PairEnds, staging: Uint8Array, repetitions: number): Figures {
  const timed = (bytes: number): number => {
    const host = staging.subarray(0, bytes);
    const started = performance.now();
    driver.setCurrentContext(ends.sourceContext);
    driver.memcpyDtoH(host, ends.source);
    driver.setCurrentContext(ends.destinationContext);
    driver.memcpyHtoD(ends.destination, host);
    return performance.now() - started;
  };
  timed(staging.byteLength);
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < repetitions; i++) best = Math.min(best, timed(staging.byteLength));
  const latency = median(Array.from({ length: LATENCY_SAMPLES }, () => timed(LATENCY_BYTES)));
  return figures(staging.byteLength, best, latency);
}
