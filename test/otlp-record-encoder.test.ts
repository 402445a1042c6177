/**
 * The exporter thread encodes span records straight into OTLP protobuf. Checked against OpenTelemetry's own
 * serializer (`ProtobufTraceSerializer` from @opentelemetry/otlp-transformer) fed with the `ReadableSpan`s that
 * `spanFromRecord` builds from the same records: both requests, decoded by the tests' OTLP reader, must say the same.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { ErrorNumber, LifecycleTransition, SpanRecordKind } from '../src/internal.js';
import { OtlpRecordEncoder } from '../src/telemetry/otlp-record-encoder.js';
import { type KernelNames, spanFromRecord } from '../src/telemetry/record-to-span.js';
import { SpanRecorder } from '../src/telemetry/span-recorder.js';
import { createTelemetryRing, SpanRecordReader } from '../src/telemetry/telemetry-ring.js';
import { decodeExportTraceServiceRequest, type ReceivedSpan } from './support/otlp-receiver.js';
import { Random, TEST_SEED } from './support/random.js';

const names = new Map<number, KernelNames>([
  [1, { name: 'ingest', kernelId: 'demo.ingest' }],
  [2, { name: 'score', kernelId: 'score' }],
]);
const kernelNames = (instance: number): KernelNames | undefined => names.get(instance);

function id(random: Random, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = random.int(0, 255);
  bytes[0] = (bytes[0] as number) | 1;
  return bytes;
}

const sortById = (spans: ReceivedSpan[]): ReceivedSpan[] => [...spans].sort((a, b) => (a.spanId < b.spanId ? -1 : 1));

/** Writes `count` random records of every kind into a new ring (instances 1–3: 3 has no names). */
function randomRecords(random: Random, epoch: number, count: number): SharedArrayBuffer {
  const ring = createTelemetryRing(256, epoch);
  const recorder = new SpanRecorder(ring);
  const kinds = [
    SpanRecordKind.SEND,
    SpanRecordKind.CALL,
    SpanRecordKind.PROCESS,
    SpanRecordKind.RECEIVE,
    SpanRecordKind.LIFECYCLE,
  ];
  for (let i = 0; i < count; i++) {
    const kind = kinds[i % kinds.length] as number;
    const start = random.int(0, 2 ** 40) * 1000 + random.int(0, 999);
    recorder.record(
      id(random, 16),
      0,
      id(random, 8),
      0,
      i % 3 === 0 ? undefined : id(random, 8),
      0,
      start,
      start + random.int(0, 5_000_000),
      kind === SpanRecordKind.LIFECYCLE ? 0 : i % 4 === 0 ? random.int(0, 9) : random.int(0, 2 ** 52),
      1 + (i % 3),
      random.int(0, 1000),
      random.int(0, 70_000),
      i % 7 === 0 ? ErrorNumber.HandlerFailed : i % 11 === 0 ? ErrorNumber.Timeout : 0,
      kind,
      kind === SpanRecordKind.LIFECYCLE ? (i % 6) + LifecycleTransition.LAUNCH : 0,
      i % 2 === 0 ? 0 : 1 + (i % 3),
    );
  }
  return ring;
}

const resource = defaultResource().merge(resourceFromAttributes({ 'service.name': 'encoder-test' }));
const scope = { name: 'ringkernel', version: '0.1.0' };

/** The ring's records through our encoder (added to `encoder`) and through OpenTelemetry's serializer (decoded). */
function encodeBoth(
  encoder: OtlpRecordEncoder,
  ring: SharedArrayBuffer,
  epoch: number,
  names: (instance: number) => KernelNames | undefined,
): ReceivedSpan[] {
  const readable: ReturnType<typeof spanFromRecord>[] = [];
  new SpanRecordReader(ring).drain((view, at) => {
    encoder.add(view, at, epoch);
    readable.push(spanFromRecord(view, at, epoch, names, resource, scope));
  });
  return sortById(decodeExportTraceServiceRequest(ProtobufTraceSerializer.serializeRequest(readable) as Uint8Array));
}

describe('OTLP record encoder', () => {
  it(`encodes every kind of record as OpenTelemetry's serializer does (seed ${TEST_SEED})`, () => {
    const random = new Random(TEST_SEED);
    const epoch = 1_764_000_000_123;
    const encoder = new OtlpRecordEncoder(resource.attributes, kernelNames, '0.1.0');
    const theirs = encodeBoth(encoder, randomRecords(random, epoch, 100), epoch, kernelNames);
    assert.equal(encoder.count, 100);
    const ours = sortById(decodeExportTraceServiceRequest(encoder.finish()));
    assert.equal(ours.length, 100);
    assert.deepEqual(ours, theirs);
    // And the encoder starts afresh after finish().
    assert.equal(encoder.count, 0);
    assert.deepEqual(decodeExportTraceServiceRequest(encoder.finish())[0], undefined);
  });

  it(`writes spans longer than 16 KiB and keeps a finished request intact while the next batch is added (seed ${TEST_SEED})`, () => {
    const random = new Random(TEST_SEED + 1);
    const epoch = 1_764_000_000_456;
    // A kernel name of 20 000 characters makes its spans' lengths take three varint bytes instead of two.
    const long = new Map<number, KernelNames>([
      [1, { name: 'k'.repeat(20_000), kernelId: 'long.kernel' }],
      [2, { name: 'score', kernelId: 'score' }],
    ]);
    const longNames = (instance: number): KernelNames | undefined => long.get(instance);
    const encoder = new OtlpRecordEncoder(resource.attributes, longNames, '0.1.0');
    const first = encodeBoth(encoder, randomRecords(random, epoch, 60), epoch, longNames);
    const request = encoder.finish();
    const second = encodeBoth(encoder, randomRecords(random, epoch, 200), epoch, longNames);
    // The first request, encoded again while the second batch was being added, is as it was.
    assert.deepEqual(sortById(decodeExportTraceServiceRequest(request)), first);
    assert.deepEqual(sortById(decodeExportTraceServiceRequest(encoder.finish())), second);
    assert.ok(first.some((span) => span.name.length > 20_000));
  });
});
