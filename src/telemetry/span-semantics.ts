import { ErrorCode, type ErrorCodeName, ErrorNumber } from '../errors/codes.js';
import { SpanRecordKind } from './span-record.js';

/**
 * What a span record means in OpenTelemetry's messaging conventions, shared by the two ways records become
 * spans (the direct OTLP encoder and the SDK `ReadableSpan` path), so both say the same thing.
 */

/** `messaging.operation.name` (and the older `messaging.operation`) per record kind. */
export const OPERATION: Readonly<Record<number, string>> = {
  [SpanRecordKind.SEND]: 'send',
  [SpanRecordKind.CALL]: 'call',
  [SpanRecordKind.PROCESS]: 'process',
  [SpanRecordKind.RECEIVE]: 'receive',
};

/** `messaging.operation.type` per record kind (the semantic conventions' fixed list). */
export const OPERATION_TYPE: Readonly<Record<number, string>> = {
  [SpanRecordKind.SEND]: 'send',
  [SpanRecordKind.CALL]: 'send',
  [SpanRecordKind.PROCESS]: 'process',
  [SpanRecordKind.RECEIVE]: 'receive',
};

const codeByNumber = new Map<number, string>(
  (Object.keys(ErrorNumber) as ErrorCodeName[]).map((name) => [ErrorNumber[name], ErrorCode[name]]),
);

/**
 * The `error.type` of a record's error number: its ringkernel code, or `RK_E_<n>` for a number this build does
 * not know (a record written by newer native or CUDA code).
 *
 * @example
 * errorTypeOf(506); // 'RK_HANDLER_FAILED'
 */
export function errorTypeOf(errorNumber: number): string {
  return codeByNumber.get(errorNumber) ?? `RK_E_${errorNumber}`;
}
