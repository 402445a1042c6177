/**
 * Test support: a real WebGPU adapter. On machines without a GPU that is Mesa's lavapipe, fetched by
 * scripts/fetch-webgpu-driver.sh into .webgpu/ and named here through RINGKERNEL_WEBGPU_DRIVER_DIR before the
 * backend loads. Where .webgpu/ is there (this project's machines and CI run the script), no adapter is a failure,
 * not a skip.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openWebGpuDevice, probeWebGpu } from '../../src/backends/webgpu/webgpu-adapter.js';
import { type DeadLetter, RingKernelRuntime, type RuntimeConfig, type TracingOptions } from '../../src/index.js';

/** The driver folder the fetch script makes. */
export const WEBGPU_DRIVER_DIR = fileURLToPath(new URL('../../../.webgpu', import.meta.url));

if (process.env.RINGKERNEL_WEBGPU_DRIVER_DIR === undefined && existsSync(WEBGPU_DRIVER_DIR)) {
  process.env.RINGKERNEL_WEBGPU_DRIVER_DIR = WEBGPU_DRIVER_DIR;
}

let probed: Promise<string | undefined> | undefined;

/** Why no WebGPU adapter can be had here ("skipped: no WebGPU adapter (why)"), or undefined when one can. */
export function webgpuMissing(): Promise<string | undefined> {
  probed ??= probeWebGpu({ allowFallback: true }).then((probe) => {
    if (probe.available) return undefined;
    if (existsSync(WEBGPU_DRIVER_DIR)) {
      throw new Error(`the fetched WebGPU driver in ${WEBGPU_DRIVER_DIR} gives no adapter: ${probe.reason}`);
    }
    return `skipped: no WebGPU adapter (${probe.reason}; run scripts/fetch-webgpu-driver.sh)`;
  });
  return probed;
}

/** A device on the test adapter (software where there is no GPU). */
export async function openTestDevice(): Promise<GPUDevice> {
  return (await openWebGpuDevice({ allowFallback: true })).device;
}

/** A runtime on the test adapter and every dead letter it has reported, in order. Shut it down when done. */
export interface WebGpuTestRuntime {
  readonly runtime: RingKernelRuntime;
  readonly letters: DeadLetter[];
}

/**
 * Builds a runtime on the WebGPU backend of the test adapter (software where there is no GPU): one worker unless
 * `config` says otherwise, traced when `tracing` is given, its dead letters collected from the start.
 */
export async function startWebGpuRuntime(
  options: { readonly config?: Partial<RuntimeConfig>; readonly tracing?: TracingOptions } = {},
): Promise<WebGpuTestRuntime> {
  const builder = RingKernelRuntime.builder()
    .backend('webgpu', { allowFallback: true })
    .config({ workers: 1, ...options.config });
  if (options.tracing !== undefined) builder.tracing(options.tracing);
  const runtime = await builder.build();
  const letters: DeadLetter[] = [];
  runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
  return { runtime, letters };
}

/** The values (each payload's first u32, as the test kernels' messages carry it) of the letters `keep` keeps. */
export function letteredValues(letters: readonly DeadLetter[], keep: (letter: DeadLetter) => boolean): number[] {
  return letters
    .filter(keep)
    .map((letter) => new DataView(letter.payload.buffer, letter.payload.byteOffset).getUint32(0, true));
}
