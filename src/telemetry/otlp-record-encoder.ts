import type { Attributes } from '@opentelemetry/api';
import { getU53 } from '../wire/envelope.js';
import type { KernelNames } from './record-to-span.js';
import { LIFECYCLE_TRANSITION_NAMES, SpanRecordDetail, SpanRecordKind, SpanRecordOffset } from './span-record.js';
import { errorTypeOf, OPERATION, OPERATION_TYPE } from './span-semantics.js';
import { isZeroId } from './trace-ids.js';

/**
 * Encodes span records straight into an OTLP `ExportTraceServiceRequest` (protobuf), the body the OTLP/HTTP
 * exporter POSTs — without building an OpenTelemetry `ReadableSpan` per record, formatting ids as hex and parsing
 * them back, or the SDK transformer's intermediate objects. The exporter thread uses it with the OTLP exporter's
 * own HTTP transport (endpoint, headers, timeout, retries and compression from the same `OTEL_*` variables).
 * It writes the same fields, names and attributes as {@link spanFromRecord} (a test checks the two decode alike);
 * what varies per kernel (its names) and per kind is encoded once and copied.
 *
 * Field numbers: opentelemetry-proto, collector/trace/v1/trace_service.proto, trace/v1/trace.proto,
 * common/v1/common.proto, resource/v1/resource.proto.
 */

const encoder = new TextEncoder();

/** A growable protobuf writer. */
class ProtoWriter {
  bytes: Uint8Array;
  view: DataView;
  length = 0;

  constructor(capacity = 64) {
    this.bytes = new Uint8Array(capacity);
    this.view = new DataView(this.bytes.buffer);
  }

  reset(): void {
    this.length = 0;
  }

  #room(extra: number): void {
    if (this.length + extra <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + extra) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  byte(value: number): void {
    this.#room(1);
    this.bytes[this.length++] = value;
  }

  varint(value: number): void {
    this.#room(10);
    let v = value;
    while (v >= 0x80) {
      this.bytes[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.bytes[this.length++] = v;
  }

  raw(bytes: Uint8Array, from = 0, to = bytes.length): void {
    this.#room(to - from);
    if (to - from > 48) {
      // Long runs (a whole batch of spans): one native copy; short ones (ids, names) a loop, without a subarray.
      this.bytes.set(bytes.subarray(from, to), this.length);
      this.length += to - from;
      return;
    }
    for (let i = from; i < to; i++) this.bytes[this.length++] = bytes[i] as number;
  }

  /** A u64 given as two u32 halves, fixed64 little-endian. */
  fixed64(lo: number, hi: number): void {
    this.#room(8);
    this.view.setUint32(this.length, lo, true);
    this.view.setUint32(this.length + 4, hi, true);
    this.length += 8;
  }

  /** Tag + length + bytes of another writer's content. */
  message(tag: number, body: ProtoWriter): void {
    this.byte(tag);
    this.varint(body.length);
    this.raw(body.bytes, 0, body.length);
  }

  /** A string field. */
  string(tag: number, text: string): void {
    const bytes = encoder.encode(text);
    this.byte(tag);
    this.varint(bytes.length);
    this.raw(bytes);
  }
}

/** `KeyValue` bytes of one attribute, as a repeated field `tag` (9 in Span, 1 in Resource). */
function keyValue(tag: number, key: string, value: string | number | boolean): Uint8Array {
  const any = new ProtoWriter();
  if (typeof value === 'string') any.string(0x0a, value);
  else if (typeof value === 'boolean') {
    any.byte(0x10);
    any.byte(value ? 1 : 0);
  } else if (Number.isInteger(value) && value >= 0) {
    any.byte(0x18);
    any.varint(value);
  } else {
    any.byte(0x21);
    any.view.setFloat64(any.length, value, true);
    any.length += 8;
  }
  const kv = new ProtoWriter();
  kv.string(0x0a, key);
  kv.message(0x12, any);
  const out = new ProtoWriter();
  out.message(tag, kv);
  return out.bytes.slice(0, out.length);
}

const SPAN_ATTRIBUTE = 0x4a; // Span.attributes = 9, length-delimited
/** `ringkernel.trace.truncated = true`: downstream of this span a telemetry ring was full. */
const TRUNCATED_ATTRIBUTE = keyValue(SPAN_ATTRIBUTE, 'ringkernel.trace.truncated', true);

/** OTLP SpanKind per record kind. */
const OTLP_KIND: Readonly<Record<number, number>> = {
  [SpanRecordKind.SEND]: 4,
  [SpanRecordKind.CALL]: 3,
  [SpanRecordKind.PROCESS]: 5,
  [SpanRecordKind.RECEIVE]: 5,
  [SpanRecordKind.LIFECYCLE]: 1,
};
/** What is encoded once per kernel instance. */
interface KernelBytes {
  /** The launch's name. */
  readonly name: string;
  /** The span name per record kind (`process sink`, …) and per lifecycle transition, as a Span.name field. */
  readonly names: Map<number, Uint8Array>;
  /** messaging.system, messaging.destination.name, ringkernel.kernel.id: as Span.attributes fields. */
  readonly attributes: Uint8Array;
  /** ringkernel.source.kernel = this kernel, for spans whose message came from it. */
  readonly asSource: Uint8Array;
}

const TWO_32 = 0x1_0000_0000;

/** A KeyValue's key field (tag 1), pre-encoded. */
function keyField(key: string): Uint8Array {
  const writer = new ProtoWriter();
  writer.string(0x0a, key);
  return writer.bytes.slice(0, writer.length);
}
const MESSAGE_ID_KEY = keyField('messaging.message.id');
const BODY_SIZE_KEY = keyField('messaging.message.body.size');

function varintLength(value: number): number {
  let length = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) length++;
  return length;
}

/**
 * Encodes batches of span records as one `ExportTraceServiceRequest` each: one ResourceSpans (the resource's
 * attributes), one ScopeSpans (`ringkernel`), the spans.
 */
export class OtlpRecordEncoder {
  readonly #resource: Uint8Array;
  readonly #scope: Uint8Array;
  readonly #kernelNames: (instance: number) => KernelNames | undefined;
  readonly #kernels = new Map<number, KernelBytes>();
  readonly #kindAttributes = new Map<number, Uint8Array>();
  readonly #errorAttributes = new Map<number, Uint8Array>();
  readonly #transitionAttributes = new Map<number, Uint8Array>();
  readonly #spans = new ProtoWriter(1 << 20);
  readonly #span = new ProtoWriter(1024);
  readonly #out = new ProtoWriter(1 << 20);
  readonly #scratch = new ProtoWriter(1 << 20);
  #count = 0;

  constructor(resource: Attributes, kernelNames: (instance: number) => KernelNames | undefined, version: string) {
    const writer = new ProtoWriter();
    for (const [key, value] of Object.entries(resource)) {
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
        writer.raw(keyValue(0x0a, key, value)); // Resource.attributes = 1
      }
    }
    this.#resource = writer.bytes.slice(0, writer.length);
    const scope = new ProtoWriter();
    scope.string(0x0a, 'ringkernel'); // InstrumentationScope.name = 1
    scope.string(0x12, version); // InstrumentationScope.version = 2
    this.#scope = scope.bytes.slice(0, scope.length);
    this.#kernelNames = kernelNames;
  }

  /** Spans added since the last `finish()`. */
  get count(): number {
    return this.#count;
  }

  /** Adds the record at `at`, with times counted from `epochUnixMs`. */
  add(view: DataView, at: number, epochUnixMs: number): void {
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    const span = this.#span;
    span.reset();
    span.byte(0x0a); // trace_id = 1
    span.byte(16);
    span.raw(bytes, at + SpanRecordOffset.TRACE_ID, at + SpanRecordOffset.TRACE_ID + 16);
    span.byte(0x12); // span_id = 2
    span.byte(8);
    span.raw(bytes, at + SpanRecordOffset.SPAN_ID, at + SpanRecordOffset.SPAN_ID + 8);
    if (!isZeroId(bytes, at + SpanRecordOffset.PARENT_SPAN_ID, 8)) {
      span.byte(0x22); // parent_span_id = 4
      span.byte(8);
      span.raw(bytes, at + SpanRecordOffset.PARENT_SPAN_ID, at + SpanRecordOffset.PARENT_SPAN_ID + 8);
    }
    const kind = view.getUint8(at + SpanRecordOffset.KIND);
    const detail = view.getUint8(at + SpanRecordOffset.DETAIL);
    const kernel = this.#kernel(view.getUint32(at + SpanRecordOffset.KERNEL, true));
    span.raw(this.#name(kernel, kind, detail)); // name = 5
    span.byte(0x30); // kind = 6
    span.byte(OTLP_KIND[kind] ?? 1);
    this.#time(span, 0x39, epochUnixMs, getU53(view, at + SpanRecordOffset.START_NS)); // start_time_unix_nano = 7
    this.#time(span, 0x41, epochUnixMs, getU53(view, at + SpanRecordOffset.END_NS)); // end_time_unix_nano = 8
    span.raw(kernel.attributes);
    if (kind === SpanRecordKind.LIFECYCLE) {
      span.raw(
        this.#cached(this.#transitionAttributes, detail, () => {
          const transition = LIFECYCLE_TRANSITION_NAMES[detail] ?? 'transition';
          return keyValue(SPAN_ATTRIBUTE, 'ringkernel.lifecycle.transition', transition);
        }),
      );
    } else {
      span.raw(
        this.#cached(this.#kindAttributes, kind, () => {
          const operation = OPERATION[kind] ?? 'unknown';
          const both = new ProtoWriter();
          both.raw(keyValue(SPAN_ATTRIBUTE, 'messaging.operation', operation));
          both.raw(keyValue(SPAN_ATTRIBUTE, 'messaging.operation.type', OPERATION_TYPE[kind] ?? operation));
          return both.bytes.slice(0, both.length);
        }),
      );
      this.#messageAttributes(
        span,
        getU53(view, at + SpanRecordOffset.MESSAGE_ID),
        view.getUint32(at + SpanRecordOffset.PAYLOAD_SIZE, true),
      );
      const peer = view.getUint32(at + SpanRecordOffset.PEER_KERNEL, true);
      if (peer !== 0) span.raw(this.#kernel(peer).asSource);
      if (detail & SpanRecordDetail.TRUNCATED) span.raw(TRUNCATED_ATTRIBUTE);
    }
    const errorNumber = view.getUint32(at + SpanRecordOffset.ERROR_CODE, true);
    if (errorNumber !== 0) {
      span.raw(
        this.#cached(this.#errorAttributes, errorNumber, () => {
          const code = errorTypeOf(errorNumber);
          const status = new ProtoWriter();
          status.string(0x12, code); // Status.message = 2
          status.byte(0x18); // Status.code = 3
          status.byte(2); // STATUS_CODE_ERROR
          const out = new ProtoWriter();
          out.raw(keyValue(SPAN_ATTRIBUTE, 'error.type', code));
          out.message(0x7a, status); // Span.status = 15
          return out.bytes.slice(0, out.length);
        }),
      );
    }
    this.#spans.message(0x12, span); // ScopeSpans.spans = 2
    this.#count++;
  }

  /** The request with every span added since the last call (then starts afresh). A view: copy it to keep it. */
  finish(): Uint8Array {
    const scopeSpans = this.#scratch;
    scopeSpans.reset();
    scopeSpans.byte(0x0a); // ScopeSpans.scope = 1
    scopeSpans.varint(this.#scope.length);
    scopeSpans.raw(this.#scope);
    scopeSpans.raw(this.#spans.bytes, 0, this.#spans.length);
    const resourceSpans = new ProtoWriter(scopeSpans.length + this.#resource.length + 16);
    resourceSpans.byte(0x0a); // ResourceSpans.resource = 1
    resourceSpans.varint(this.#resource.length);
    resourceSpans.raw(this.#resource);
    resourceSpans.message(0x12, scopeSpans); // ResourceSpans.scope_spans = 2
    const out = this.#out;
    out.reset();
    out.message(0x0a, resourceSpans); // ExportTraceServiceRequest.resource_spans = 1
    this.#spans.reset();
    this.#count = 0;
    return out.bytes.subarray(0, out.length);
  }

  /** epoch ms + ns as u64 ns since the Unix epoch, exactly (no float past 2^53), as a fixed64 field. */
  #time(writer: ProtoWriter, tag: number, epochUnixMs: number, ns: number): void {
    // epochUnixMs × 10^6 exactly, as hi/lo u32: split the ms into 2^32-sized parts first.
    const msHi = Math.floor(epochUnixMs / TWO_32);
    const msLo = epochUnixMs - msHi * TWO_32;
    const loProduct = msLo * 1e6; // < 2^52: exact
    const loCarry = Math.floor(loProduct / TWO_32);
    let lo = loProduct - loCarry * TWO_32 + (ns % TWO_32);
    let hi = msHi * 1e6 + loCarry + Math.floor(ns / TWO_32);
    if (lo >= TWO_32) {
      lo -= TWO_32;
      hi += 1;
    }
    writer.byte(tag);
    writer.fixed64(lo, hi >>> 0);
  }

  /** messaging.message.id (a string of digits) and messaging.message.body.size (an int), keys pre-encoded. */
  #messageAttributes(span: ProtoWriter, messageId: number, bodySize: number): void {
    const id = String(messageId);
    // KeyValue { key, value: AnyValue { string_value = 1 } }; ids have at most 16 digits, so one-byte lengths.
    span.byte(SPAN_ATTRIBUTE);
    span.byte(MESSAGE_ID_KEY.length + 2 + id.length + 2);
    span.raw(MESSAGE_ID_KEY);
    span.byte(0x12);
    span.byte(id.length + 2);
    span.byte(0x0a);
    span.byte(id.length);
    for (let i = 0; i < id.length; i++) span.byte(id.charCodeAt(i));
    // KeyValue { key, value: AnyValue { int_value = 3 } }
    const sizeBytes = varintLength(bodySize);
    span.byte(SPAN_ATTRIBUTE);
    span.byte(BODY_SIZE_KEY.length + 2 + 1 + sizeBytes);
    span.raw(BODY_SIZE_KEY);
    span.byte(0x12);
    span.byte(1 + sizeBytes);
    span.byte(0x18);
    span.varint(bodySize);
  }

  #name(kernel: KernelBytes, kind: number, detail: number): Uint8Array {
    const key = kind === SpanRecordKind.LIFECYCLE ? 256 + detail : kind;
    return this.#cached(kernel.names, key, () => {
      const operation =
        kind === SpanRecordKind.LIFECYCLE
          ? (LIFECYCLE_TRANSITION_NAMES[detail] ?? 'transition')
          : (OPERATION[kind] ?? 'unknown');
      const writer = new ProtoWriter();
      writer.string(0x2a, `${operation} ${kernel.name}`);
      return writer.bytes.slice(0, writer.length);
    });
  }

  #kernel(instance: number): KernelBytes {
    const known = this.#kernels.get(instance);
    if (known !== undefined) return known;
    const names = this.#kernelNames(instance);
    const name = names?.name ?? `kernel-${instance}`;
    const attributes = new ProtoWriter();
    attributes.raw(keyValue(SPAN_ATTRIBUTE, 'messaging.system', 'ringkernel'));
    attributes.raw(keyValue(SPAN_ATTRIBUTE, 'messaging.destination.name', name));
    if (names !== undefined && names.kernelId !== names.name) {
      attributes.raw(keyValue(SPAN_ATTRIBUTE, 'ringkernel.kernel.id', names.kernelId));
    }
    const entry: KernelBytes = {
      name,
      names: new Map<number, Uint8Array>(),
      attributes: attributes.bytes.slice(0, attributes.length),
      asSource: keyValue(SPAN_ATTRIBUTE, 'ringkernel.source.kernel', name),
    };
    // Names are cached only once known: a record may come before its kernel is named.
    if (names !== undefined) this.#kernels.set(instance, entry);
    return entry;
  }

  #cached(map: Map<number, Uint8Array>, key: number, make: () => Uint8Array): Uint8Array {
    let bytes = map.get(key);
    if (bytes === undefined) {
      bytes = make();
      map.set(key, bytes);
    }
    return bytes;
  }
}
