import { ErrorCode } from './codes.js';
import { RingKernelError } from './ringkernel-error.js';

/**
 * A message schema has no WGSL host-shareable struct with the same bytes: a field WGSL has no type for (8- and
 * 16-bit scalars, f64), a field that shares a 32-bit word with another, or a name WGSL reserves. `field` names the
 * field, `message` says why and what to use instead.
 *
 * @example
 * try {
 *   renderWgslStruct(Reading);
 * } catch (error) {
 *   if (error instanceof WgslSchemaError) console.error(`${error.schemaName}.${error.field}: ${error.message}`);
 * }
 */
export class WgslSchemaError extends RingKernelError {
  /** The message schema's name. */
  readonly schemaName: string;
  /** The field WGSL cannot express. */
  readonly field: string;

  constructor(schemaName: string, field: string, reason: string) {
    super(ErrorCode.WgslSchemaUnsupported, `${schemaName}.${field} cannot be expressed in WGSL: ${reason}`);
    this.schemaName = schemaName;
    this.field = field;
  }
}

/** One message of the WGSL compiler, positioned in the handler's own source (1-based line and column). */
export interface WgslCompilerMessage {
  readonly type: 'error' | 'warning' | 'info';
  readonly message: string;
  /** 1-based line in the handler source; 0 when the message is about generated code or has no position. */
  readonly line: number;
  /** 1-based column; 0 when the message has no position. */
  readonly column: number;
}

/**
 * A WebGPU kernel's WGSL handler did not compile. `messages` are the compiler's, with line and column in the
 * kernel's own source (the generated prelude is not counted); `message` carries the first errors.
 *
 * @example
 * try {
 *   await runtime.launch(MyWgslKernel);
 * } catch (error) {
 *   if (error instanceof WgslCompileError) for (const m of error.messages) console.error(`${m.line}:${m.column} ${m.message}`);
 * }
 */
export class WgslCompileError extends RingKernelError {
  /** The kernel whose handler failed to compile. */
  readonly kernelId: string;
  /** The compiler's messages (errors first). */
  readonly messages: readonly WgslCompilerMessage[];

  constructor(kernelId: string, messages: readonly WgslCompilerMessage[]) {
    const errors = messages.filter((m) => m.type === 'error');
    const head = (errors.length > 0 ? errors : messages)
      .slice(0, 8)
      .map((m) => `  ${m.line}:${m.column}: ${m.type}: ${m.message}`)
      .join('\n');
    super(ErrorCode.WgslCompileFailed, `kernel '${kernelId}': the WGSL handler did not compile:\n${head}`);
    this.kernelId = kernelId;
    this.messages = messages;
  }
}

/**
 * A WebGPU device reported an error: `kind` is the WebGPU error scope it came from (`validation`,
 * `out-of-memory`, `internal`) or `lost` when the device itself was lost (code `RK_WEBGPU_DEVICE_LOST`).
 */
export class WebGpuError extends RingKernelError {
  /** What kind of error the device reported. */
  readonly kind: 'validation' | 'out-of-memory' | 'internal' | 'lost';
  /** What the runtime was doing, e.g. `'create compute pipeline'`. */
  readonly operation: string;

  constructor(kind: WebGpuError['kind'], operation: string, detail: string) {
    super(
      kind === 'lost' ? ErrorCode.WebGpuDeviceLost : ErrorCode.WebGpuError,
      `WebGPU ${kind === 'lost' ? 'device lost' : `${kind} error`} during ${operation}: ${detail}`,
    );
    this.kind = kind;
    this.operation = operation;
  }
}
