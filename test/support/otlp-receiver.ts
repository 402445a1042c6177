/**
 * A real OTLP/HTTP traces receiver for the tests: an HTTP server on 127.0.0.1 that accepts
 * `POST /v1/traces` with an `ExportTraceServiceRequest` in protobuf (what `@opentelemetry/exporter-trace-otlp-proto`
 * sends, and what Jaeger's port 4318 takes) and decodes it with a small protobuf reader of its own. Field numbers
 * are the public ones of opentelemetry-proto (collector/trace/v1/trace_service.proto, trace/v1/trace.proto,
 * common/v1/common.proto, resource/v1/resource.proto).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** A decoded attribute value. */
export type OtlpValue = string | number | boolean | bigint | Uint8Array | OtlpValue[] | undefined;

/** One span as received. Ids are lower-case hex; times are ns since the Unix epoch. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: Readonly<Record<string, OtlpValue>>;
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
  readonly statusMessage: string;
  readonly resource: Readonly<Record<string, OtlpValue>>;
  readonly scope: string;
}

/** A protobuf wire-format reader: varints, fixed64/32, length-delimited fields. */
class ProtoReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #at: number;
  readonly #end: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#at = start;
    this.#end = end;
  }

  get done(): boolean {
    return this.#at >= this.#end;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.#at >= this.#end) throw new RangeError('truncated varint');
      const byte = this.#bytes[this.#at++] as number;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new RangeError('varint too long');
    }
  }

  /** Reads a field key: [field number, wire type]. */
  key(): [number, number] {
    const key = Number(this.varint());
    return [key >>> 3, key & 7];
  }

  fixed64(): bigint {
    const value = this.#view.getBigUint64(this.#at, true);
    this.#at += 8;
    return value;
  }

  double(): number {
    const value = this.#view.getFloat64(this.#at, true);
    this.#at += 8;
    return value;
  }

  fixed32(): number {
    const value = this.#view.getUint32(this.#at, true);
    this.#at += 4;
    return value;
  }

  /** A length-delimited field's bytes (a view, no copy). */
  bytes(): Uint8Array {
    const length = Number(this.varint());
    const start = this.#at;
    this.#at += length;
    if (this.#at > this.#end) throw new RangeError('truncated length-delimited field');
    return this.#bytes.subarray(start, start + length);
  }

  string(): string {
    return new TextDecoder().decode(this.bytes());
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.#at += 8;
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.#at += 4;
    else throw new RangeError(`unsupported wire type ${wireType}`);
  }
}

/** Runs `onField` for each field of the message in `bytes`. */
function fields(bytes: Uint8Array, onField: (field: number, wireType: number, reader: ProtoReader) => void): void {
  const reader = new ProtoReader(bytes);
  while (!reader.done) {
    const [field, wireType] = reader.key();
    onField(field, wireType, reader);
  }
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** common.v1.AnyValue */
function anyValue(bytes: Uint8Array): OtlpValue {
  let value: OtlpValue;
  fields(bytes, (field, wireType, r) => {
    if (field === 1) value = r.string();
    else if (field === 2) value = r.varint() !== 0n;
    else if (field === 3) value = Number(BigInt.asIntN(64, r.varint()));
    else if (field === 4) value = r.double();
    else if (field === 5) {
      const list: OtlpValue[] = [];
      fields(r.bytes(), (f, w, rr) => (f === 1 ? list.push(anyValue(rr.bytes())) : rr.skip(w)));
      value = list;
    } else if (field === 7) value = r.bytes().slice();
    else r.skip(wireType);
  });
  return value;
}

/** common.v1.KeyValue into `into`. */
function keyValue(bytes: Uint8Array, into: Record<string, OtlpValue>): void {
  let key = '';
  let value: OtlpValue;
  fields(bytes, (field, wireType, r) => {
    if (field === 1) key = r.string();
    else if (field === 2) value = anyValue(r.bytes());
    else r.skip(wireType);
  });
  into[key] = value;
}

/** trace.v1.Span */
function span(bytes: Uint8Array, resource: Record<string, OtlpValue>, scope: string): ReceivedSpan {
  let traceId = '';
  let spanId = '';
  let parentSpanId = '';
  let name = '';
  let kind = 0;
  let startNs = 0n;
  let endNs = 0n;
  let statusCode = 0;
  let statusMessage = '';
  const attributes: Record<string, OtlpValue> = {};
  fields(bytes, (field, wireType, r) => {
    if (field === 1) traceId = hex(r.bytes());
    else if (field === 2) spanId = hex(r.bytes());
    else if (field === 4) parentSpanId = hex(r.bytes());
    else if (field === 5) name = r.string();
    else if (field === 6) kind = Number(r.varint());
    else if (field === 7) startNs = r.fixed64();
    else if (field === 8) endNs = r.fixed64();
    else if (field === 9) keyValue(r.bytes(), attributes);
    else if (field === 15) {
      fields(r.bytes(), (f, w, rr) => {
        if (f === 2) statusMessage = rr.string();
        else if (f === 3) statusCode = Number(rr.varint());
        else rr.skip(w);
      });
    } else r.skip(wireType);
  });
  return {
    traceId,
    spanId,
    parentSpanId,
    name,
    kind,
    startNs,
    endNs,
    attributes,
    statusCode,
    statusMessage,
    resource,
    scope,
  };
}

/** Decodes a collector.trace.v1.ExportTraceServiceRequest. */
export function decodeExportTraceServiceRequest(bytes: Uint8Array): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  fields(bytes, (field, wireType, r) => {
    if (field !== 1) return r.skip(wireType);
    // ResourceSpans: 1 resource, 2 scope_spans
    const resource: Record<string, OtlpValue> = {};
    const scopeSpans: Uint8Array[] = [];
    fields(r.bytes(), (f, w, rr) => {
      if (f === 1) fields(rr.bytes(), (rf, rw, rrr) => (rf === 1 ? keyValue(rrr.bytes(), resource) : rrr.skip(rw)));
      else if (f === 2) scopeSpans.push(rr.bytes());
      else rr.skip(w);
    });
    for (const scoped of scopeSpans) {
      // ScopeSpans: 1 scope (InstrumentationScope: 1 name), 2 spans
      let scope = '';
      const raw: Uint8Array[] = [];
      fields(scoped, (f, w, rr) => {
        if (f === 1) {
          fields(rr.bytes(), (sf, sw, rrr) => {
            if (sf === 1) scope = rrr.string();
            else rrr.skip(sw);
          });
        } else if (f === 2) raw.push(rr.bytes());
        else rr.skip(w);
      });
      for (const s of raw) spans.push(span(s, resource, scope));
    }
  });
  return spans;
}

/**
 * A running receiver. `spans` grows as requests arrive; `requests` counts them. `respondWith` sets the status
 * the next requests get (e.g. 503 to play a failing collector).
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  requests = 0;
  status = 200;
  readonly #server: Server;
  #url = '';

  private constructor(server: Server) {
    this.#server = server;
  }

  /** Starts a receiver on 127.0.0.1 on a free port. */
  static async start(): Promise<OtlpReceiver> {
    let receiver: OtlpReceiver | undefined;
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const self = receiver as OtlpReceiver;
        self.requests++;
        if (request.method !== 'POST' || request.url !== '/v1/traces') {
          response.writeHead(404).end();
          return;
        }
        let body: Uint8Array = Buffer.concat(chunks);
        if (request.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        if (request.headers['content-type'] !== 'application/x-protobuf') {
          response.writeHead(415).end();
          return;
        }
        if (self.status !== 200) {
          response.writeHead(self.status).end();
          return;
        }
        self.spans.push(...decodeExportTraceServiceRequest(body));
        // An empty ExportTraceServiceResponse.
        response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    receiver = new OtlpReceiver(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    receiver.#url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
    return receiver;
  }

  /** The traces endpoint, `http://127.0.0.1:PORT/v1/traces`. */
  get url(): string {
    return this.#url;
  }

  /** Spans whose name starts with `prefix`. */
  named(prefix: string): ReceivedSpan[] {
    return this.spans.filter((s) => s.name.startsWith(prefix));
  }

  /** Forgets the spans received so far. */
  clear(): void {
    this.spans.length = 0;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
