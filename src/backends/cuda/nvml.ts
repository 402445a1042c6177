import { ArgumentTypeError, InvalidArgumentError } from '../../errors/argument-errors.js';
import { NvmlError } from '../../errors/cuda-errors.js';
import { loadNativeLibrary, memoByPath, type NativeFunction } from './native-library.js';

type Koffi = typeof import('koffi');

/**
 * `nvmlReturn_t` names (nvml.h), for {@link NvmlError.nvmlErrorName}. NVML has no function that returns the
 * constant's name (`nvmlErrorString` gives a description), so the table is here.
 */
const NVML_RETURN_NAMES: ReadonlyMap<number, string> = new Map([
  [0, 'NVML_SUCCESS'],
  [1, 'NVML_ERROR_UNINITIALIZED'],
  [2, 'NVML_ERROR_INVALID_ARGUMENT'],
  [3, 'NVML_ERROR_NOT_SUPPORTED'],
  [4, 'NVML_ERROR_NO_PERMISSION'],
  [5, 'NVML_ERROR_ALREADY_INITIALIZED'],
  [6, 'NVML_ERROR_NOT_FOUND'],
  [7, 'NVML_ERROR_INSUFFICIENT_SIZE'],
  [8, 'NVML_ERROR_INSUFFICIENT_POWER'],
  [9, 'NVML_ERROR_DRIVER_NOT_LOADED'],
  [10, 'NVML_ERROR_TIMEOUT'],
  [11, 'NVML_ERROR_IRQ_ISSUE'],
  [12, 'NVML_ERROR_LIBRARY_NOT_FOUND'],
  [13, 'NVML_ERROR_FUNCTION_NOT_FOUND'],
  [14, 'NVML_ERROR_CORRUPTED_INFOROM'],
  [15, 'NVML_ERROR_GPU_IS_LOST'],
  [16, 'NVML_ERROR_RESET_REQUIRED'],
  [17, 'NVML_ERROR_OPERATING_SYSTEM'],
  [18, 'NVML_ERROR_LIB_RM_VERSION_MISMATCH'],
  [19, 'NVML_ERROR_IN_USE'],
  [20, 'NVML_ERROR_MEMORY'],
  [21, 'NVML_ERROR_NO_DATA'],
  [22, 'NVML_ERROR_VGPU_ECC_NOT_SUPPORTED'],
  [999, 'NVML_ERROR_UNKNOWN'],
]);

/**
 * The name of an `nvmlReturn_t`.
 *
 * @example
 * nvmlReturnName(3); // 'NVML_ERROR_NOT_SUPPORTED'
 */
export function nvmlReturnName(result: number): string {
  return NVML_RETURN_NAMES.get(result) ?? `NVML_ERROR_UNRECOGNIZED_${result}`;
}

const NVML_ERROR_NOT_SUPPORTED = 3;
const NVML_ERROR_INVALID_ARGUMENT = 2;
const NVML_ERROR_NOT_FOUND = 6;
/** nvml.h `NVML_NVLINK_MAX_LINKS` (18 since Hopper; older boards answer INVALID_ARGUMENT past their last link). */
export const NVML_NVLINK_MAX_LINKS = 18;

/** What is at the far end of an NVLink (nvml.h `nvmlIntNvLinkDeviceType_t`). */
export type NvLinkRemoteType = 'gpu' | 'ibmnpu' | 'switch' | 'unknown';

/** A PCI address as NVML reports it (nvml.h `nvmlPciInfo_t`, 68 bytes). */
export interface NvmlPciInfo {
  /** `domain:bus:device.function`, NVML's form (`00000000:3B:00.0`: eight-digit domain, upper-case hex). */
  readonly busId: string;
  readonly domain: number;
  readonly bus: number;
  readonly device: number;
  /** The 16-bit device id above the 16-bit vendor id (`0x233010de`). */
  readonly pciDeviceId: number;
}

/** One active NVLink of a GPU. */
export interface NvmlNvLink {
  /** The link's index on its GPU, 0…{@link NVML_NVLINK_MAX_LINKS}-1. */
  readonly link: number;
  readonly remote: NvmlPciInfo;
  /** What the link reaches; `undefined` when this NVML lacks `nvmlDeviceGetNvLinkRemoteDeviceType`. */
  readonly remoteType: NvLinkRemoteType | undefined;
}

/**
 * Parses a PCI address (`domain:bus:device.function`, hex, any digit count — CUDA writes a four-digit domain, NVML
 * eight) into one comparable key, `dddddddd:bb:dd.f` in lower case. Undefined when it is not one.
 *
 * @example
 * pciKey('0000:3B:00.0') === pciKey('00000000:3b:00.0'); // true
 */
export function pciKey(busId: string): string | undefined {
  const match = /^([0-9a-f]+):([0-9a-f]+):([0-9a-f]+)\.([0-9a-f])$/i.exec(busId.trim());
  if (match === null) return undefined;
  const [, domain, bus, device, fn] = match as unknown as [string, string, string, string, string];
  const hex = (text: string, width: number): string => Number.parseInt(text, 16).toString(16).padStart(width, '0');
  return `${hex(domain, 8)}:${hex(bus, 2)}:${hex(device, 2)}.${hex(fn, 1)}`;
}

/**
 * The library to load: `RINGKERNEL_LIBNVML` when set (tests point it at a stand-in), else `libnvidia-ml.so.1`
 * through the dynamic loader's search path (the NVIDIA driver installs it beside libcuda).
 *
 * @example
 * process.env.RINGKERNEL_LIBNVML = '/opt/nvidia/lib/libnvidia-ml.so.1';
 * libnvmlPath(); // '/opt/nvidia/lib/libnvidia-ml.so.1'
 */
export function libnvmlPath(): string {
  const override = process.env.RINGKERNEL_LIBNVML;
  return override !== undefined && override !== '' ? override : 'libnvidia-ml.so.1';
}

/** The prototypes bound, in nvml.h's words (`nvmlDevice_t` as `uint64_t`, as driver.ts does for handles). */
const PROTOTYPES = [
  'int nvmlInit_v2()',
  'int nvmlShutdown()',
  'int nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, _Out_ uint64_t *device)',
  'int nvmlDeviceGetNvLinkState(uint64_t device, uint32_t link, _Out_ int *isActive)',
  'int nvmlDeviceGetNvLinkRemotePciInfo_v2(uint64_t device, uint32_t link, _Out_ nvmlPciInfo_t *pci)',
] as const;
/** Bound when present: older NVMLs (before R460) lack it, and it only refines what a link reaches. */
const OPTIONAL_PROTOTYPES = [
  'int nvmlDeviceGetNvLinkRemoteDeviceType(uint64_t device, uint32_t link, _Out_ int *type)',
] as const;

/** NVML, or why it cannot be used. */
export type NvmlLoad =
  | { readonly available: true; readonly nvml: Nvml }
  | { readonly available: false; readonly reason: string };

/**
 * The few NVML calls ringkernel makes (libnvidia-ml through koffi): NVLink state and what each link reaches, for
 * the CUDA topology. Every call checks its `nvmlReturn_t` and throws an {@link NvmlError}. Calls other than
 * {@link Nvml.init} need an `init()` not yet matched by a {@link Nvml.shutdown} (NVML counts them).
 *
 * @example
 * const load = loadNvml();
 * if (load.available) {
 *   load.nvml.init();
 *   try {
 *     const gpu = load.nvml.deviceHandleByPciBusId('0000:3b:00.0');
 *     console.log(load.nvml.activeNvLinks(gpu).map((l) => l.remote.busId));
 *   } finally {
 *     load.nvml.shutdown();
 *   }
 * }
 */
export class Nvml {
  /** Where it was loaded from. */
  readonly path: string;
  readonly #fn: Readonly<Record<string, NativeFunction>>;

  /** @internal Use {@link loadNvml}. */
  constructor(path: string, functions: Readonly<Record<string, NativeFunction>>) {
    this.path = path;
    this.#fn = functions;
  }

  /** NVML's description of a result (`nvmlErrorString`). */
  errorString(result: number): string {
    const text = (this.#fn.nvmlErrorString as NativeFunction)(result) as string | null;
    return typeof text === 'string' ? text : 'no description';
  }

  #rc(operation: string, ...args: unknown[]): number {
    return (this.#fn[operation] as NativeFunction)(...args) as number;
  }

  #check(operation: string, rc: number): void {
    if (rc !== 0) throw new NvmlError(operation, rc, nvmlReturnName(rc), this.errorString(rc));
  }

  /** `nvmlInit_v2`. Pair each with {@link Nvml.shutdown}. */
  init(): void {
    this.#check('nvmlInit_v2', this.#rc('nvmlInit_v2'));
  }

  /** `nvmlShutdown`. */
  shutdown(): void {
    this.#check('nvmlShutdown', this.#rc('nvmlShutdown'));
  }

  /** `nvmlDeviceGetHandleByPciBusId_v2`: the GPU at a PCI address (CUDA's `cuDeviceGetPCIBusId` form is fine). */
  deviceHandleByPciBusId(busId: string): bigint {
    if (typeof busId !== 'string' || pciKey(busId) === undefined) {
      throw new ArgumentTypeError(
        'busId',
        `busId must be a PCI address domain:bus:device.function, got ${JSON.stringify(busId)}`,
      );
    }
    const out = new BigUint64Array(1);
    this.#check('nvmlDeviceGetHandleByPciBusId_v2', this.#rc('nvmlDeviceGetHandleByPciBusId_v2', busId, out));
    return out[0] as bigint;
  }

  /**
   * `nvmlDeviceGetNvLinkState`: whether link `link` of `device` is active; `undefined` when the GPU has no such
   * link (NVML_ERROR_NOT_SUPPORTED: no NVLink at all; NVML_ERROR_INVALID_ARGUMENT: past its last link).
   */
  nvLinkState(device: bigint, link: number): boolean | undefined {
    checkLink(link);
    const out = [0];
    const rc = this.#rc('nvmlDeviceGetNvLinkState', device, link, out);
    if (rc === NVML_ERROR_NOT_SUPPORTED || rc === NVML_ERROR_INVALID_ARGUMENT) return undefined;
    this.#check('nvmlDeviceGetNvLinkState', rc);
    return out[0] === 1;
  }

  /** `nvmlDeviceGetNvLinkRemotePciInfo_v2`: the PCI address at the far end of a link. */
  nvLinkRemotePciInfo(device: bigint, link: number): NvmlPciInfo {
    checkLink(link);
    const out: Record<string, unknown>[] = [{}];
    this.#check(
      'nvmlDeviceGetNvLinkRemotePciInfo_v2',
      this.#rc('nvmlDeviceGetNvLinkRemotePciInfo_v2', device, link, out),
    );
    const pci = out[0] as { busId: string; domain: number; bus: number; device: number; pciDeviceId: number };
    return { busId: pci.busId, domain: pci.domain, bus: pci.bus, device: pci.device, pciDeviceId: pci.pciDeviceId };
  }

  /** `nvmlDeviceGetNvLinkRemoteDeviceType`, or `undefined` when this NVML lacks it (or does not know). */
  nvLinkRemoteType(device: bigint, link: number): NvLinkRemoteType | undefined {
    checkLink(link);
    if (this.#fn.nvmlDeviceGetNvLinkRemoteDeviceType === undefined) return undefined;
    const out = [0];
    const rc = this.#rc('nvmlDeviceGetNvLinkRemoteDeviceType', device, link, out);
    if (rc === NVML_ERROR_NOT_SUPPORTED || rc === NVML_ERROR_NOT_FOUND) return undefined;
    this.#check('nvmlDeviceGetNvLinkRemoteDeviceType', rc);
    return (['gpu', 'ibmnpu', 'switch'] as const)[out[0] as number] ?? 'unknown';
  }

  /** Every active NVLink of `device` and what it reaches (empty for a GPU without NVLink). */
  activeNvLinks(device: bigint): NvmlNvLink[] {
    const links: NvmlNvLink[] = [];
    for (let link = 0; link < NVML_NVLINK_MAX_LINKS; link++) {
      const active = this.nvLinkState(device, link);
      if (active === undefined) break;
      if (!active) continue;
      links.push({
        link,
        remote: this.nvLinkRemotePciInfo(device, link),
        remoteType: this.nvLinkRemoteType(device, link),
      });
    }
    return links;
  }
}

function checkLink(link: number): void {
  if (!Number.isInteger(link) || link < 0 || link >= NVML_NVLINK_MAX_LINKS) {
    throw new InvalidArgumentError('link', `link must be an integer in [0, ${NVML_NVLINK_MAX_LINKS - 1}], got ${link}`);
  }
}

/**
 * Loads (once per thread and path; lazily — nothing loads NVML until a CUDA topology asks) libnvidia-ml and binds
 * the calls {@link Nvml} makes, or says why it cannot. Never throws. Loading does not call `nvmlInit_v2`.
 *
 * @example
 * const load = loadNvml();
 * if (!load.available) console.log(`no NVLink detection: ${load.reason}`);
 */
export function loadNvml(): NvmlLoad {
  return loadNvmlAt(libnvmlPath());
}

const loadNvmlAt = memoByPath((path): NvmlLoad => {
  const load = loadNativeLibrary(
    path,
    ['const char *nvmlErrorString(int result)', ...PROTOTYPES],
    // An older NVML may lack these: links are then classified by their remote PCI address alone.
    OPTIONAL_PROTOTYPES,
    '',
    nvmlPciInfoType,
  );
  return load.available ? { available: true, nvml: new Nvml(path, load.functions) } : load;
});

let pciInfoType: unknown;
/**
 * nvml.h's `nvmlPciInfo_t` as a koffi struct (registered once per koffi instance, by name, for the prototypes):
 * `char busIdLegacy[16]` @0, `unsigned domain` @16, `bus` @20, `device` @24, `pciDeviceId` @28,
 * `pciSubSystemId` @32, `char busId[32]` @36 — 68 bytes. The tests check the size and offsets.
 *
 *
 */
export function nvmlPciInfoType(koffi: Koffi): unknown {
  pciInfoType ??= koffi.struct('nvmlPciInfo_t', {
    busIdLegacy: 'char[16]',
    domain: 'uint32_t',
    bus: 'uint32_t',
    device: 'uint32_t',
    pciDeviceId: 'uint32_t',
    pciSubSystemId: 'uint32_t',
    busId: 'char[32]',
  });
  return pciInfoType;
}
