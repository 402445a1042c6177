import { type Attributes, type HrTime, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { getU53 } from '../wire/envelope.js';
import { LIFECYCLE_TRANSITION_NAMES, SpanRecordDetail, SpanRecordKind, SpanRecordOffset } from './span-record.js';
import { errorTypeOf, OPERATION, OPERATION_TYPE } from './span-semantics.js';
import { epochNsToHrTime } from './telemetry-clock.js';
import { idToHex, isZeroId } from './trace-ids.js';

/** The names a kernel instance is known by, for span names and attributes. */
export interface KernelNames {
  /** The launch's name (`messaging.destination.name`). */
  readonly name: string;
  /** The definition's id. */
  readonly kernelId: string;
}

const SPAN_KIND: Readonly<Record<number, SpanKind>> = {
  [SpanRecordKind.SEND]: SpanKind.PRODUCER,
  [SpanRecordKind.CALL]: SpanKind.CLIENT,
  [SpanRecordKind.PROCESS]: SpanKind.CONSUMER,
  [SpanRecordKind.RECEIVE]: SpanKind.CONSUMER,
  [SpanRecordKind.LIFECYCLE]: SpanKind.INTERNAL,
};

function duration(start: HrTime, end: HrTime): HrTime {
  let seconds = end[0] - start[0];
  let nanos = end[1] - start[1];
  if (nanos < 0) {
    seconds -= 1;
    nanos += 1e9;
  }
  return [seconds, nanos];
}

/**
 * Turns the span record at `at` into an OpenTelemetry {@link ReadableSpan} with its true ids and timestamps and
 * the messaging attributes (`messaging.system` = `ringkernel`, `messaging.destination.name` = the kernel,
 * `messaging.operation`, message id, body size), ready for a span processor or exporter. Runs on the exporter's
 * thread, never on the hot path.
 */
export function spanFromRecord(
  view: DataView,
  at: number,
  epochUnixMs: number,
  kernelNames: (instance: number) => KernelNames | undefined,
  resource: Resource,
  scope: InstrumentationScope,
): ReadableSpan {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const traceId = idToHex(bytes, at + SpanRecordOffset.TRACE_ID, 16);
  const spanId = idToHex(bytes, at + SpanRecordOffset.SPAN_ID, 8);
  const hasParent = !isZeroId(bytes, at + SpanRecordOffset.PARENT_SPAN_ID, 8);
  const kind = view.getUint8(at + SpanRecordOffset.KIND);
  const instance = view.getUint32(at + SpanRecordOffset.KERNEL, true);
  const names = kernelNames(instance);
  const kernelName = names?.name ?? `kernel-${instance}`;
  const errorNumber = view.getUint32(at + SpanRecordOffset.ERROR_CODE, true);
  const startTime = epochNsToHrTime(epochUnixMs, getU53(view, at + SpanRecordOffset.START_NS));
  const endTime = epochNsToHrTime(epochUnixMs, getU53(view, at + SpanRecordOffset.END_NS));
  // Few attributes: each costs the exporter a string to encode, per span (see docs/benchmarks.md, tracing.export).
  const attributes: Attributes = {
    'messaging.system': 'ringkernel',
    'messaging.destination.name': kernelName,
  };
  if (names !== undefined && names.kernelId !== names.name) attributes['ringkernel.kernel.id'] = names.kernelId;
  let name: string;
  if (kind === SpanRecordKind.LIFECYCLE) {
    const transition = LIFECYCLE_TRANSITION_NAMES[view.getUint8(at + SpanRecordOffset.DETAIL)] ?? 'transition';
    name = `${transition} ${kernelName}`;
    attributes['ringkernel.lifecycle.transition'] = transition;
  } else {
    const operation = OPERATION[kind] ?? 'unknown';
    name = `${operation} ${kernelName}`;
    attributes['messaging.operation'] = operation;
    attributes['messaging.operation.type'] = OPERATION_TYPE[kind] ?? operation;
    attributes['messaging.message.id'] = String(getU53(view, at + SpanRecordOffset.MESSAGE_ID));
    attributes['messaging.message.body.size'] = view.getUint32(at + SpanRecordOffset.PAYLOAD_SIZE, true);
    const peer = view.getUint32(at + SpanRecordOffset.PEER_KERNEL, true);
    if (peer !== 0) attributes['ringkernel.source.kernel'] = kernelNames(peer)?.name ?? `kernel-${peer}`;
    if (view.getUint8(at + SpanRecordOffset.DETAIL) & SpanRecordDetail.TRUNCATED) {
      attributes['ringkernel.trace.truncated'] = true;
    }
  }
  let status: ReadableSpan['status'] = { code: SpanStatusCode.UNSET };
  if (errorNumber !== 0) {
    const code = errorTypeOf(errorNumber);
    attributes['error.type'] = code;
    status = { code: SpanStatusCode.ERROR, message: code };
  }
  const context = { traceId, spanId, traceFlags: 1 };
  return {
    name,
    kind: SPAN_KIND[kind] ?? SpanKind.INTERNAL,
    spanContext: () => context,
    ...(hasParent
      ? {
          parentSpanContext: {
            traceId,
            spanId: idToHex(bytes, at + SpanRecordOffset.PARENT_SPAN_ID, 8),
            traceFlags: 1,
            isRemote: true,
          },
        }
      : {}),
    startTime,
    endTime,
    status,
    attributes,
    links: [],
    events: [],
    duration: duration(startTime, endTime),
    ended: true,
    resource,
    instrumentationScope: scope,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}
