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
  /** Why, and what to use instead. */
  readonly reason: string;

  constructor(schemaName: string, field: string, reason: string) {
    super(ErrorCode.WgslSchemaUnsupported, `${schemaName}.${field} cannot be expressed in WGSL: ${reason}`);
    this.schemaName = schemaName;
    this.field = field;
    this.reason = reason;
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

/** A WebGPU error as data, to cross a thread (an executor's attach failure) and be rebuilt typed. */
export type SerializedWebGpuError =
  | { readonly type: 'schema'; readonly schemaName: string; readonly field: string; readonly reason: string }
  | { readonly type: 'compile'; readonly kernelId: string; readonly messages: readonly WgslCompilerMessage[] }
  | {
      readonly type: 'device';
      readonly kind: WebGpuError['kind'];
      readonly operation: string;
      readonly message: string;
    };

/** The data of a WebGPU error, or undefined for any other error. @internal */
export function serializeWebGpuError(error: unknown): SerializedWebGpuError | undefined {
  if (error instanceof WgslSchemaError) {
    return { type: 'schema', schemaName: error.schemaName, field: error.field, reason: error.reason };
  }
  if (error instanceof WgslCompileError) return { type: 'compile', kernelId: error.kernelId, messages: error.messages };
  if (error instanceof WebGpuError) {
    return { type: 'device', kind: error.kind, operation: error.operation, message: error.message };
  }
  return undefined;
}

/** Rebuilds a WebGPU error from {@link serializeWebGpuError}'s data. @internal */
export function reviveWebGpuError(data: SerializedWebGpuError): RingKernelError {
  switch (data.type) {
    case 'schema':
      return new WgslSchemaError(data.schemaName, data.field, data.reason);
    case 'compile':
      return new WgslCompileError(data.kernelId, data.messages);
    case 'device': {
      const error = new WebGpuError(data.kind, data.operation, '');
      error.message = data.message;
      return error;
    }
  }
}
