import { ErrorNumber } from '../../errors/codes.js';
import { WgslCompileError, type WgslCompilerMessage } from '../../errors/webgpu-errors.js';
import { FrameFlags } from '../../wire/frame-header.js';
import type { MessageSchema } from '../../wire/message-schema.js';
import { renderWgslStruct } from './wgsl-structs.js';

/**
 * A WebGPU kernel's program: the handler's WGSL wrapped in ringkernel's prelude (batch bindings, word accessors,
 * `RK_E_*` codes, the message structs of the kernel's schemas) and an entry point that runs the handler once per
 * message of a batch.
 *
 * The handler is `fn <entry>(i: u32) -> u32`: `i` is the message's index in the batch; it reads the message with
 * `rk_message(i)` (type id, size, flags, ids), `rk_in_word(i, w)` / `rk_in_byte(i, b)` or a schema's
 * `rk_read_<struct>(i)`, writes its output with `rk_out_word(i, w, value)` then `rk_emit(i, sizeBytes, typeId)` (or a
 * schema's `rk_emit_<struct>(i, value)`), and returns `RK_E_NONE` or an `RK_E_*` code (that message fails alone).
 * State, when `stateBytes` > 0, is `rk_state`: `array<atomic<u32>, stateBytes / 4>` unless the kernel names a
 * `stateType` its source defines. Invocations of one batch run concurrently: update shared state with atomics.
 */

/** What the program is built from. */
export interface WgslProgramSource {
  readonly kernelId: string;
  /** The handler's WGSL. */
  readonly source: string;
  /** The handler function's name. */
  readonly entry: string;
  /** Invocations per workgroup. */
  readonly workgroupSize: number;
  /** Bytes of state (a multiple of 4), 0 for none. */
  readonly stateBytes: number;
  /** A WGSL type for `rk_state` defined by the source (default `array<atomic<u32>, stateBytes / 4>`). */
  readonly stateType?: string | undefined;
  /** Schemas whose structs and accessors the handler uses (input, output, emitted types). */
  readonly schemas: readonly MessageSchema[];
}

/** Words of one message descriptor in the batch's `rk_messages` array. */
export const MESSAGE_DESCRIPTOR_WORDS = 8;
/** Words of one output status in the batch's `rk_outputs` array. */
export const OUTPUT_STATUS_WORDS = 4;
/** Bytes of the batch's uniform (`rk_batch`). */
export const BATCH_UNIFORM_BYTES = 16;

/** The entry point ringkernel adds; the handler's own name must differ. */
export const WGSL_MAIN_ENTRY = 'rk_main';

function prelude(program: WgslProgramSource): string {
  const codes = Object.entries(ErrorNumber)
    .map(([name, n]) => `const RK_E_${name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}: u32 = ${n}u;`)
    .join('\n');
  const flags = Object.entries(FrameFlags)
    .map(([name, bit]) => `const RK_FLAG_${name}: u32 = ${bit}u;`)
    .join('\n');
  const state =
    program.stateBytes > 0
      ? `@group(1) @binding(0) var<storage, read_write> rk_state: ${program.stateType ?? `array<atomic<u32>, ${program.stateBytes / 4}>`};\n`
      : '';
  return `// ringkernel WebGPU handler prelude. Generated; do not edit.
struct RkMessage {
  type_id: u32, size: u32, flags: u32, offset: u32,
  message_id_lo: u32, message_id_hi: u32, source: u32, priority: u32,
}
struct RkOutput { error: u32, size: u32, type_id: u32, emit: u32 }
struct RkBatch { count: u32, out_words: u32, reserved0: u32, reserved1: u32 }
@group(0) @binding(0) var<uniform> rk_batch: RkBatch;
@group(0) @binding(1) var<storage, read> rk_messages: array<RkMessage>;
@group(0) @binding(2) var<storage, read> rk_input: array<u32>;
@group(0) @binding(3) var<storage, read_write> rk_outputs: array<RkOutput>;
@group(0) @binding(4) var<storage, read_write> rk_output: array<u32>;
${state}const RK_E_NONE: u32 = 0u;
${codes}
${flags}
fn rk_message(i: u32) -> RkMessage { return rk_messages[i]; }
fn rk_in_word(i: u32, w: u32) -> u32 {
  let m = rk_messages[i];
  if (w * 4u >= m.size) { return 0u; }
  return rk_input[m.offset + w];
}
fn rk_in_byte(i: u32, b: u32) -> u32 { return (rk_in_word(i, b / 4u) >> ((b % 4u) * 8u)) & 0xffu; }
fn rk_out_capacity() -> u32 { return rk_batch.out_words * 4u; }
fn rk_out_word(i: u32, w: u32, value: u32) {
  if (w < rk_batch.out_words) { rk_output[i * rk_batch.out_words + w] = value; }
}
fn rk_emit(i: u32, size: u32, type_id: u32) {
  rk_outputs[i].size = size;
  rk_outputs[i].type_id = type_id;
  rk_outputs[i].emit = 1u;
}
`;
}

/**
 * A kernel's program, built: plain data (no schema objects), so the host builds it, where schema errors belong,
 * and posts it to the device thread that compiles it.
 */
export interface WgslProgram {
  readonly kernelId: string;
  readonly code: string;
  /** Lines before the handler's first line (prelude and generated structs). */
  readonly handlerLineOffset: number;
  readonly workgroupSize: number;
  readonly stateBytes: number;
}

/**
 * Builds the WGSL of a kernel: prelude, generated structs, the handler's source, then the entry point.
 *
 * @throws {WgslSchemaError} when a schema has no WGSL struct.
 */
export function buildWgslProgram(program: WgslProgramSource): WgslProgram {
  const seen = new Set<number>();
  const structs = program.schemas
    .filter((schema) => !seen.has(schema.typeId) && seen.add(schema.typeId))
    .map((schema) => renderWgslStruct(schema))
    .join('\n');
  const head = `${prelude(program)}${structs}\n// ---- handler ----\n`;
  const main = `
// ---- ringkernel entry: one invocation per message ----
@compute @workgroup_size(${program.workgroupSize})
fn ${WGSL_MAIN_ENTRY}(@builtin(global_invocation_id) rk_gid: vec3u) {
  let i = rk_gid.x;
  if (i >= rk_batch.count) { return; }
  rk_outputs[i] = RkOutput(0u, 0u, rk_messages[i].type_id, 0u);
  let rk_code = ${program.entry}(i);
  rk_outputs[i].error = rk_code;
}
`;
  return {
    kernelId: program.kernelId,
    code: `${head}${program.source}\n${main}`,
    handlerLineOffset: head.split('\n').length - 1,
    workgroupSize: program.workgroupSize,
    stateBytes: program.stateBytes,
  };
}

/** The compiled pipeline of a kernel, with its bind group layouts. */
export interface CompiledWgslKernel {
  readonly pipeline: GPUComputePipeline;
  readonly batchLayout: GPUBindGroupLayout;
  readonly stateLayout: GPUBindGroupLayout | undefined;
}

/**
 * Compiles a kernel's program on `device` into a compute pipeline with an explicit layout (group 0: the batch,
 * group 1: the state).
 *
 * @throws {WgslCompileError} (`RK_WGSL_COMPILE_FAILED`) with the compiler's messages at the handler's own lines
 * (a wrong handler signature shows there too: the entry point calls it).
 */
export async function compileWgslKernel(device: GPUDevice, program: WgslProgram): Promise<CompiledWgslKernel> {
  const { code, handlerLineOffset } = program;
  // No error scope around this: Dawn's Node binding (webgpu 0.6.2) crashes the process in popErrorScope (SIGSEGV,
  // measured). Compilation messages say everything a scope would for a module.
  const module = device.createShaderModule({ code, label: `${program.kernelId} handler` });
  const info = await module.getCompilationInfo();
  const messages: WgslCompilerMessage[] = info.messages.map((m) => {
    const inHandler = m.lineNum > handlerLineOffset;
    return {
      type: m.type,
      message: m.message,
      line: m.lineNum === 0 ? 0 : inHandler ? m.lineNum - handlerLineOffset : 0,
      column: m.lineNum === 0 ? 0 : m.linePos,
    };
  });
  if (messages.some((m) => m.type === 'error')) throw new WgslCompileError(program.kernelId, messages);
  const storage = (binding: number, type: GPUBufferBindingType): GPUBindGroupLayoutEntry => ({
    binding,
    visibility: 4 /* GPUShaderStage.COMPUTE */,
    buffer: { type },
  });
  const batchLayout = device.createBindGroupLayout({
    label: `${program.kernelId} batch`,
    entries: [
      storage(0, 'uniform'),
      storage(1, 'read-only-storage'),
      storage(2, 'read-only-storage'),
      storage(3, 'storage'),
      storage(4, 'storage'),
    ],
  });
  const stateLayout =
    program.stateBytes > 0
      ? device.createBindGroupLayout({ label: `${program.kernelId} state`, entries: [storage(0, 'storage')] })
      : undefined;
  const layout = device.createPipelineLayout({
    bindGroupLayouts: stateLayout === undefined ? [batchLayout] : [batchLayout, stateLayout],
  });
  // The synchronous call: createComputePipelineAsync in Dawn's Node binding (webgpu 0.6.2) intermittently aborts
  // the process ("std::system_error: Invalid argument") or never settles (measured on lavapipe). Every error a
  // pipeline could still raise here is a WGSL error the compilation messages above already reported.
  const pipeline = device.createComputePipeline({
    label: program.kernelId,
    layout,
    compute: { module, entryPoint: WGSL_MAIN_ENTRY },
  });
  return { pipeline, batchLayout, stateLayout };
}
