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

/** Copies `length` bytes to `to` at `at`; returns where the copy ends. A loop for short runs (ids), no subarray. */
function copyBytes(to: Uint8Array, at: number, from: Uint8Array, fromAt: number, length: number): number {
  if (length > 48 && fromAt === 0 && length === from.length) {
    to.set(from, at);
    return at + length;
  }
  for (let i = 0; i < length; i++) to[at + i] = from[fromAt + i] as number;
  return at + length;
}

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

  /** Makes room for `extra` more bytes (the buffer grows; what was written is kept). */
  ensure(extra: number): void {
    if (this.length + extra <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + extra) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  byte(value: number): void {
    this.ensure(1);
    this.bytes[this.length++] = value;
  }

  varint(value: number): void {
    this.ensure(10);
    let v = value;
    while (v >= 0x80) {
      this.bytes[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.bytes[this.length++] = v;
  }

  raw(bytes: Uint8Array, from = 0, to = bytes.length): void {
    this.ensure(to - from);
    this.length = copyBytes(this.bytes, this.length, bytes, from, to - from);
  }

  /** Writes `value` as a varint at `at`, over bytes already reserved there (its length is the caller's to know). */
  varintAt(at: number, value: number): void {
    let v = value;
    let i = at;
    while (v >= 0x80) {
      this.bytes[i++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.bytes[i] = v;
  }

  /** A u64 given as two u32 halves, fixed64 little-endian. */
  fixed64(lo: number, hi: number): void {
    this.ensure(8);
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
  /**
   * Per record kind (and lifecycle transition): the fields every such span of this kernel shares, encoded once —
   * its name (`process sink`, …), its kind, and the attributes that do not vary per message.
   */
  readonly heads: Map<number, Uint8Array>;
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

/**
 * The most bytes of a span besides its shared head and its optional source and error attributes: the spans field's
 * tag and length (4), trace id (18), span id (10), parent (10), start and end (9 each), the message id attribute (a
 * key and up to 16 digits), the body size attribute (a key and a varint) and the truncated flag.
 */
const ID_FIELDS = 4 + 18 + 10 + 10;
const MESSAGE_FIELDS = 4 + MESSAGE_ID_KEY.length + 16 + 5 + BODY_SIZE_KEY.length + 10;
const MAX_SPAN_FIXED = ID_FIELDS + 2 * 9 + MESSAGE_FIELDS + TRUNCATED_ATTRIBUTE.length;

/**
 * epoch ms + ns as u64 ns since the Unix epoch, exactly (no float past 2^53), as a fixed64 field `tag` at `at`;
 * returns where it ends.
 */
function writeTime(view: DataView, at: number, tag: number, epochUnixMs: number, ns: number): number {
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
  view.setUint8(at, tag);
  view.setUint32(at + 1, lo, true);
  view.setUint32(at + 5, hi >>> 0, true);
  return at + 9;
}

/**
 * messaging.message.id (a string of digits) and messaging.message.body.size (an int) at `at`, keys pre-encoded,
 * no string made; returns where they end.
 */
function writeMessageAttributes(out: Uint8Array, at: number, messageId: number, bodySize: number): number {
  let p = at;
  const digits = decimalLength(messageId);
  // KeyValue { key, value: AnyValue { string_value = 1 } }; ids have at most 16 digits, so one-byte lengths.
  out[p++] = SPAN_ATTRIBUTE;
  out[p++] = MESSAGE_ID_KEY.length + 2 + digits + 2;
  p = copyBytes(out, p, MESSAGE_ID_KEY, 0, MESSAGE_ID_KEY.length);
  out[p++] = 0x12;
  out[p++] = digits + 2;
  out[p++] = 0x0a;
  out[p++] = digits;
  let v = messageId;
  for (let i = p + digits - 1; i >= p; i--) {
    const rest = Math.floor(v / 10);
    out[i] = 48 + (v - rest * 10);
    v = rest;
  }
  p += digits;
  // KeyValue { key, value: AnyValue { int_value = 3 } }
  const sizeBytes = varintLength(bodySize);
  out[p++] = SPAN_ATTRIBUTE;
  out[p++] = BODY_SIZE_KEY.length + 2 + 1 + sizeBytes;
  p = copyBytes(out, p, BODY_SIZE_KEY, 0, BODY_SIZE_KEY.length);
  out[p++] = 0x12;
  out[p++] = 1 + sizeBytes;
  out[p++] = 0x18;
  let size = bodySize;
  while (size >= 0x80) {
    out[p++] = (size % 0x80) | 0x80;
    size = Math.floor(size / 0x80);
  }
  out[p++] = size;
  return p;
}

function varintLength(value: number): number {
  let length = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) length++;
  return length;
}

function decimalLength(value: number): number {
  let length = 1;
  for (let v = value; v >= 10; v = Math.floor(v / 10)) length++;
  return length;
}

/** Bytes a span's length prefix is given before the span is written: enough for any span under 16 KiB. */
const SPAN_LENGTH_GUESS = 2;

/**
 * Encodes batches of span records as one `ExportTraceServiceRequest` each: one ResourceSpans (the resource's
 * attributes), one ScopeSpans (`ringkernel`), the spans. Each span is written once, in place, after the room its
 * length prefix needs; the request's few header bytes go in front of the spans at `finish()`, so a batch is never
 * copied, and adding a record allocates nothing (what varies per kernel and per kind is encoded once and copied).
 * Two buffers take turns: the request `finish()` returns stays intact while the next batch is encoded.
 */
export class OtlpRecordEncoder {
  readonly #resource: Uint8Array;
  readonly #scope: Uint8Array;
  readonly #kernelNames: (instance: number) => KernelNames | undefined;
  readonly #kernels = new Map<number, KernelBytes>();
  readonly #errorAttributes = new Map<number, Uint8Array>();
  /** Room before the first span for the request's header (its lengths are known only at `finish()`). */
  readonly #headroom: number;
  /** The batch being encoded (spans from `#headroom` on), and the one `finish()` returned last. */
  #spans: ProtoWriter;
  #finished: ProtoWriter;
  /** The record bytes of the ring last read (a view per ring, made once). */
  #view: DataView | undefined;
  #bytes: Uint8Array = new Uint8Array(0);
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
    // Four tags, four lengths (≤ 5 bytes each: a request is < 4 GiB), the resource and the scope.
    this.#headroom = 4 + 4 * 5 + this.#resource.length + this.#scope.length;
    this.#spans = new ProtoWriter(1 << 20);
    this.#finished = new ProtoWriter(1 << 20);
    this.#spans.length = this.#headroom;
  }

  /** Spans added since the last `finish()`. */
  get count(): number {
    return this.#count;
  }

  /** Adds the record at `at`, with times counted from `epochUnixMs`. */
  add(view: DataView, at: number, epochUnixMs: number): void {
    if (view !== this.#view) {
      this.#view = view;
      this.#bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    }
    const record = this.#bytes;
    const kind = view.getUint8(at + SpanRecordOffset.KIND);
    const detail = view.getUint8(at + SpanRecordOffset.DETAIL);
    const message = kind !== SpanRecordKind.LIFECYCLE;
    const kernel = this.#kernel(view.getUint32(at + SpanRecordOffset.KERNEL, true));
    const head = this.#head(kernel, kind, detail);
    const peer = message ? view.getUint32(at + SpanRecordOffset.PEER_KERNEL, true) : 0;
    const source = peer === 0 ? undefined : this.#kernel(peer).asSource;
    const errorNumber = view.getUint32(at + SpanRecordOffset.ERROR_CODE, true);
    const error = errorNumber === 0 ? undefined : this.#errorAttribute(errorNumber);
    const writer = this.#spans;
    // Room for the whole span at once, so the fields below are written with a local cursor and no further checks.
    writer.ensure(MAX_SPAN_FIXED + head.length + (source?.length ?? 0) + (error?.length ?? 0));
    const out = writer.bytes;
    let p = writer.length;
    out[p++] = 0x12; // ScopeSpans.spans = 2
    const lengthAt = p;
    p += SPAN_LENGTH_GUESS;
    const body = p;
    out[p++] = 0x0a; // trace_id = 1
    out[p++] = 16;
    p = copyBytes(out, p, record, at + SpanRecordOffset.TRACE_ID, 16);
    out[p++] = 0x12; // span_id = 2
    out[p++] = 8;
    p = copyBytes(out, p, record, at + SpanRecordOffset.SPAN_ID, 8);
    if (!isZeroId(record, at + SpanRecordOffset.PARENT_SPAN_ID, 8)) {
      out[p++] = 0x22; // parent_span_id = 4
      out[p++] = 8;
      p = copyBytes(out, p, record, at + SpanRecordOffset.PARENT_SPAN_ID, 8);
    }
    p = writeTime(writer.view, p, 0x39, epochUnixMs, getU53(view, at + SpanRecordOffset.START_NS)); // start = 7
    p = writeTime(writer.view, p, 0x41, epochUnixMs, getU53(view, at + SpanRecordOffset.END_NS)); // end = 8
    p = copyBytes(out, p, head, 0, head.length); // name = 5, kind = 6, the shared attributes = 9
    if (message) {
      p = writeMessageAttributes(
        out,
        p,
        getU53(view, at + SpanRecordOffset.MESSAGE_ID),
        view.getUint32(at + SpanRecordOffset.PAYLOAD_SIZE, true),
      );
      if (source !== undefined) p = copyBytes(out, p, source, 0, source.length);
      if (detail & SpanRecordDetail.TRUNCATED)
        p = copyBytes(out, p, TRUNCATED_ATTRIBUTE, 0, TRUNCATED_ATTRIBUTE.length);
    }
    if (error !== undefined) p = copyBytes(out, p, error, 0, error.length);
    writer.length = p;
    this.#endSpan(writer, lengthAt, body);
    this.#count++;
  }

  /** Writes the length of the span from `body` to the end into the prefix room at `lengthAt` (moving the span when
   * its length needs more or fewer bytes than were set aside, so every varint is in its shortest form). */
  #endSpan(span: ProtoWriter, lengthAt: number, body: number): void {
    const length = span.length - body;
    const size = varintLength(length);
    if (size !== SPAN_LENGTH_GUESS) {
      span.ensure(size - SPAN_LENGTH_GUESS);
      span.bytes.copyWithin(lengthAt + size, body, span.length);
      span.length += size - SPAN_LENGTH_GUESS;
    }
    span.varintAt(lengthAt, length);
  }

  /**
   * The request with every span added since the last call (then starts afresh). A view into the encoder's memory:
   * it stays intact until `finish()` is called again (while the next batch is added), and is reused after.
   */
  finish(): Uint8Array {
    const spans = this.#spans;
    const resource = this.#resource.length;
    const scope = this.#scope.length;
    const scopeSpansLength = 1 + varintLength(scope) + scope + spans.length - this.#headroom;
    const resourceSpansLength =
      1 + varintLength(resource) + resource + 1 + varintLength(scopeSpansLength) + scopeSpansLength;
    // The header ends where the first span begins: everything but the spans, in front of them.
    const start =
      this.#headroom - (1 + varintLength(resourceSpansLength) + resourceSpansLength - (spans.length - this.#headroom));
    const end = spans.length;
    spans.length = start;
    spans.byte(0x0a); // ExportTraceServiceRequest.resource_spans = 1
    spans.varint(resourceSpansLength);
    spans.byte(0x0a); // ResourceSpans.resource = 1
    spans.varint(this.#resource.length);
    spans.raw(this.#resource);
    spans.byte(0x12); // ResourceSpans.scope_spans = 2
    spans.varint(scopeSpansLength);
    spans.byte(0x0a); // ScopeSpans.scope = 1
    spans.varint(this.#scope.length);
    spans.raw(this.#scope);
    const request = spans.bytes.subarray(start, end);
    this.#spans = this.#finished;
    this.#finished = spans;
    this.#spans.length = this.#headroom;
    this.#count = 0;
    return request;
  }

  /**
   * The fields every span of `kernel` with this kind (and, for lifecycle spans, transition) shares: name, kind,
   * messaging.system, messaging.destination.name, ringkernel.kernel.id, and messaging.operation(.type) or
   * ringkernel.lifecycle.transition — encoded once, copied into each span with one copy.
   */
  #head(kernel: KernelBytes, kind: number, detail: number): Uint8Array {
    const key = kind === SpanRecordKind.LIFECYCLE ? 256 + detail : kind;
    const known = kernel.heads.get(key);
    if (known !== undefined) return known;
    const head = new ProtoWriter();
    if (kind === SpanRecordKind.LIFECYCLE) {
      const transition = LIFECYCLE_TRANSITION_NAMES[detail] ?? 'transition';
      head.string(0x2a, `${transition} ${kernel.name}`); // name = 5
      head.byte(0x30); // kind = 6
      head.byte(OTLP_KIND[kind] ?? 1);
      head.raw(kernel.attributes);
      head.raw(keyValue(SPAN_ATTRIBUTE, 'ringkernel.lifecycle.transition', transition));
    } else {
      const operation = OPERATION[kind] ?? 'unknown';
      head.string(0x2a, `${operation} ${kernel.name}`);
      head.byte(0x30);
      head.byte(OTLP_KIND[kind] ?? 1);
      head.raw(kernel.attributes);
      head.raw(keyValue(SPAN_ATTRIBUTE, 'messaging.operation', operation));
      head.raw(keyValue(SPAN_ATTRIBUTE, 'messaging.operation.type', OPERATION_TYPE[kind] ?? operation));
    }
    const bytes = head.bytes.slice(0, head.length);
    kernel.heads.set(key, bytes);
    return bytes;
  }

  /** error.type and the span's error status, for a span that failed with `errorNumber`. */
  #errorAttribute(errorNumber: number): Uint8Array {
    const known = this.#errorAttributes.get(errorNumber);
    if (known !== undefined) return known;
    const code = errorTypeOf(errorNumber);
    const status = new ProtoWriter();
    status.string(0x12, code); // Status.message = 2
    status.byte(0x18); // Status.code = 3
    status.byte(2); // STATUS_CODE_ERROR
    const out = new ProtoWriter();
    out.raw(keyValue(SPAN_ATTRIBUTE, 'error.type', code));
    out.message(0x7a, status); // Span.status = 15
    const bytes = out.bytes.slice(0, out.length);
    this.#errorAttributes.set(errorNumber, bytes);
    return bytes;
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
      heads: new Map<number, Uint8Array>(),
      attributes: attributes.bytes.slice(0, attributes.length),
      asSource: keyValue(SPAN_ATTRIBUTE, 'ringkernel.source.kernel', name),
    };
    // Names are cached only once known: a record may come before its kernel is named.
    if (names !== undefined) this.#kernels.set(instance, entry);
    return entry;
  }
}
