import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArgumentTypeError, describeValue, InvalidArgumentError } from '../errors/argument-errors.js';

/**
 * A kernel's device side on the WebGPU backend: a WGSL handler, `fn <entry>(i: u32) -> u32`, run once per message
 * of a batch (invocations of one batch run concurrently; outputs are written in input order). The runtime wraps it
 * in a prelude with the batch's bindings, word accessors (`rk_message`, `rk_in_word`, `rk_out_word`, `rk_emit`),
 * the `RK_E_*` codes, and the WGSL structs of the kernel's message schemas with `rk_read_<struct>(i)` and
 * `rk_emit_<struct>(i, value)` — generated from the same `defineMessage` tables the host encodes with. The handler
 * returns `RK_E_NONE` or an `RK_E_*` code: a code fails that message alone (a `handler-error` dead letter).
 *
 * @example
 * export const Double = defineKernel({
 *   id: 'double',
 *   input: Reading,
 *   output: Reading,
 *   cpu: (r) => ({ ...r, value: r.value * 2 }),
 *   webgpu: {
 *     entry: 'double_it',
 *     source: `fn double_it(i: u32) -> u32 {
 *       var r = rk_read_rk_msg_Reading(i);
 *       r.value = r.value * 2.0;
 *       rk_emit_rk_msg_Reading(i, r);
 *       return RK_E_NONE;
 *     }`,
 *   },
 * });
 */
export interface WebGpuKernelSpec {
  /** The handler's `.wgsl` file: a `file:` URL or an absolute path. Exactly one of `file` and `source`. */
  readonly file?: string | URL;
  /** The handler's WGSL text. Exactly one of `file` and `source`. */
  readonly source?: string;
  /** The handler function's name. Default `handle`. */
  readonly entry?: string;
  /** Invocations per workgroup (one message each). Default 64. */
  readonly workgroupSize?: number;
  /**
   * Bytes of kernel state on the device (a multiple of 4), zeroed at launch or filled from a checkpoint: the
   * handler's `rk_state`, an `array<atomic<u32>, stateBytes / 4>` unless `stateType` names a type the source
   * defines. It lives as long as the kernel; it is read back with every batch (so a checkpoint is exact between
   * batches): keep it small. Default 0.
   */
  readonly stateBytes?: number;
  /** The WGSL type of `rk_state`, defined in the source (a struct, say). Default `array<atomic<u32>, N>`. */
  readonly stateType?: string;
  /** Bytes each message's output may take. Default: the output schema's size, or 256 for raw bytes. */
  readonly outputBytes?: number;
  /** The most messages one batch takes. Default 4096. */
  readonly maxBatch?: number;
}

/** A checked {@link WebGpuKernelSpec}: the source read, defaults applied where they do not depend on the device. */
export interface ResolvedWebGpuKernelSpec {
  readonly source: string;
  /** Where the source came from (the file, or `'inline'`), for messages. */
  readonly origin: string;
  readonly entry: string;
  readonly workgroupSize: number;
  readonly stateBytes: number;
  readonly stateType: string | undefined;
  readonly outputBytes: number | undefined;
  readonly maxBatch: number;
}

/** The largest workgroup any adapter offers (WebGPU's maxComputeInvocationsPerWorkgroup is at most this here). */
export const MAX_WEBGPU_WORKGROUP = 1024;
/** The largest state a WebGPU kernel may ask for: it is read back with every batch. */
export const MAX_WEBGPU_STATE_BYTES = 16 << 20;
/** The largest batch. */
export const MAX_WEBGPU_BATCH = 65_536;

const WGSL_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SPEC_FIELDS = ['file', 'source', 'entry', 'workgroupSize', 'stateBytes', 'stateType', 'outputBytes', 'maxBatch'];

function count(kernelId: string, name: string, value: unknown, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') {
    throw new ArgumentTypeError(
      `spec.webgpu.${name}`,
      `kernel '${kernelId}': webgpu.${name} must be an integer between ${min} and ${max}, got ${describeValue(value)}`,
    );
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(
      `spec.webgpu.${name}`,
      `kernel '${kernelId}': webgpu.${name} must be an integer between ${min} and ${max}, got ${value}`,
    );
  }
  return value;
}

function readSource(kernelId: string, file: unknown): { source: string; origin: string } {
  let path: string;
  if (file instanceof URL) {
    if (file.protocol !== 'file:') {
      throw new InvalidArgumentError(
        'spec.webgpu.file',
        `kernel '${kernelId}': webgpu.file must be a file: URL or an absolute path, got a ${file.protocol} URL`,
      );
    }
    path = fileURLToPath(file);
  } else if (typeof file === 'string' && file.startsWith('file:')) path = fileURLToPath(file);
  else if (typeof file === 'string' && isAbsolute(file)) path = file;
  else {
    const error = typeof file === 'string' ? InvalidArgumentError : ArgumentTypeError;
    throw new error(
      'spec.webgpu.file',
      `kernel '${kernelId}': webgpu.file must be a file: URL or an absolute path, got ${describeValue(file)}`,
    );
  }
  try {
    return { source: readFileSync(path, 'utf8'), origin: path };
  } catch (error) {
    throw new InvalidArgumentError(
      'spec.webgpu.file',
      `kernel '${kernelId}': webgpu.file ${path} cannot be read: ${(error as Error).message}`,
    );
  }
}

/**
 * Checks a kernel's `webgpu` part. @internal
 * @throws {ArgumentTypeError} (a `TypeError`, code RK_INVALID_ARGUMENT) on a field of the wrong type;
 * {@link InvalidArgumentError} (a `RangeError`, same code) on a value outside the valid ones. Both name the field
 * (`argument`, e.g. `spec.webgpu.stateBytes`) and say what is valid.
 */
export function resolveWebGpuKernelSpec(kernelId: string, spec: unknown): ResolvedWebGpuKernelSpec {
  if (typeof spec !== 'object' || spec === null) {
    throw new ArgumentTypeError(
      'spec.webgpu',
      `kernel '${kernelId}': webgpu must be an object ({ file } or { source }), got ${describeValue(spec)}`,
    );
  }
  for (const key of Object.keys(spec)) {
    if (!SPEC_FIELDS.includes(key)) {
      throw new ArgumentTypeError(
        `spec.webgpu.${key}`,
        `kernel '${kernelId}': webgpu.${key} is not a field of the webgpu part (the fields are ${SPEC_FIELDS.join(', ')})`,
      );
    }
  }
  const { file, source, entry, workgroupSize, stateBytes, stateType, outputBytes, maxBatch } = spec as Record<
    string,
    unknown
  >;
  if ((file === undefined) === (source === undefined)) {
    throw new ArgumentTypeError(
      'spec.webgpu',
      `kernel '${kernelId}': webgpu needs exactly one of file and source, got ${file === undefined ? 'neither' : 'both'}`,
    );
  }
  if (source !== undefined && (typeof source !== 'string' || source.trim() === '')) {
    const error = typeof source === 'string' ? InvalidArgumentError : ArgumentTypeError;
    throw new error(
      'spec.webgpu.source',
      `kernel '${kernelId}': webgpu.source must be the handler's WGSL text, got ${describeValue(source)}`,
    );
  }
  if (entry !== undefined && (typeof entry !== 'string' || !WGSL_IDENTIFIER.test(entry) || entry.startsWith('rk_'))) {
    const error = typeof entry === 'string' ? InvalidArgumentError : ArgumentTypeError;
    throw new error(
      'spec.webgpu.entry',
      `kernel '${kernelId}': webgpu.entry must be a WGSL identifier not starting with rk_, got ${describeValue(entry)}`,
    );
  }
  if (stateType !== undefined && (typeof stateType !== 'string' || stateType.trim() === '')) {
    const error = typeof stateType === 'string' ? InvalidArgumentError : ArgumentTypeError;
    throw new error(
      'spec.webgpu.stateType',
      `kernel '${kernelId}': webgpu.stateType must be a WGSL type name, got ${describeValue(stateType)}`,
    );
  }
  const state = count(kernelId, 'stateBytes', stateBytes, 0, MAX_WEBGPU_STATE_BYTES) ?? 0;
  if (state % 4 !== 0) {
    throw new InvalidArgumentError(
      'spec.webgpu.stateBytes',
      `kernel '${kernelId}': webgpu.stateBytes must be a multiple of 4 between 0 and ${MAX_WEBGPU_STATE_BYTES}, got ${state}`,
    );
  }
  const read = source === undefined ? readSource(kernelId, file) : { source: source as string, origin: 'inline' };
  return {
    ...read,
    entry: (entry as string | undefined) ?? 'handle',
    workgroupSize: count(kernelId, 'workgroupSize', workgroupSize, 1, MAX_WEBGPU_WORKGROUP) ?? 64,
    stateBytes: state,
    stateType: stateType as string | undefined,
    outputBytes: count(kernelId, 'outputBytes', outputBytes, 0, 1 << 24),
    maxBatch: count(kernelId, 'maxBatch', maxBatch, 1, MAX_WEBGPU_BATCH) ?? 4096,
  };
}
