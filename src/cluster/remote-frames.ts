import { type SpanContext, TraceFlags, trace } from '@opentelemetry/api';
import { ErrorCode, type ErrorCodeString } from '../errors/codes.js';
import { RingKernelError } from '../errors/ringkernel-error.js';
import { activeParent, withParent } from '../telemetry/active-parent.js';
import type { Envelope } from '../wire/envelope.js';
import { FrameFlags } from '../wire/frame-header.js';
import type { FrameView } from '../wire/frame-view.js';
import { BytesMessage } from '../wire/message-schema.js';

/** NATS header names the cluster uses besides W3C `traceparent`. */
export const Header = {
  /** The sending node (loss accounting, notices). */
  NODE: 'Rk-Node',
  /** A call's timeout in ms, so the serving node gives up when the caller does. */
  TIMEOUT: 'Rk-Timeout',
  TRACEPARENT: 'traceparent',
} as const;

/** The type id of an error frame's payload (a JSON {name, code, message}), in the reserved range. */
export const ERROR_FRAME_TYPE_ID = 2;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The envelope of an error answer to the request `messageId`. */
export function errorEnvelope(messageId: number, correlationId: number): Envelope & { messageId: number } {
  return { messageId, correlationId, flags: FrameFlags.RESPONSE | FrameFlags.ERROR };
}

/** An error as an error frame carries it. */
export function errorPayload(error: unknown): Uint8Array {
  const e = error as { name?: string; code?: string; message?: string };
  return encoder.encode(JSON.stringify({ name: e.name ?? 'Error', code: e.code, message: e.message ?? String(error) }));
}

/** The error codec: raw JSON bytes under the reserved error type id. */
export const ErrorPayload = { ...BytesMessage, name: 'rk.error', typeId: ERROR_FRAME_TYPE_ID };

/** The error an error frame carries, rebuilt with its code (a RingKernelError when the code is one of ours). */
export function errorFromFrame(frame: FrameView): Error {
  let parsed: { name?: string; code?: string; message?: string } = {};
  try {
    parsed = JSON.parse(decoder.decode(frame.payload));
  } catch {
    parsed = { message: 'an unreadable error frame' };
  }
  const known = parsed.code !== undefined && KNOWN_CODES.has(parsed.code);
  const error = known
    ? new RingKernelError(parsed.code as ErrorCodeString, parsed.message ?? '')
    : new Error(parsed.message ?? '');
  if (parsed.name !== undefined) error.name = parsed.name;
  return error;
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += HEX[byte];
  return out;
}

function fromHex(hex: string, into: Uint8Array): boolean {
  if (hex.length !== into.length * 2 || !/^[0-9a-f]+$/.test(hex)) return false;
  for (let i = 0; i < into.length; i++) into[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return true;
}

/**
 * The caller's active span, as envelope trace fields and a W3C `traceparent`, or undefined when there is none:
 * the frame carries the context in its header, the NATS message in its headers, so either side can continue it.
 */
export function activeTrace():
  | { traceId: Uint8Array; spanId: Uint8Array; flags: number; traceparent: string }
  | undefined {
  const parent = activeParent();
  if (parent === undefined) return undefined;
  const traceId = new Uint8Array(16);
  const spanId = new Uint8Array(8);
  fromHex(parent.traceId, traceId);
  fromHex(parent.spanId, spanId);
  return {
    traceId,
    spanId,
    flags: parent.traceFlags,
    traceparent: `00-${parent.traceId}-${parent.spanId}-${HEX[parent.traceFlags & 0xff]}`,
  };
}

/** A W3C `traceparent` as the span context to deliver under, or undefined when it is not one. */
export function contextFromTraceparent(traceparent: string | undefined): SpanContext | undefined {
  if (traceparent === undefined) return undefined;
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(traceparent);
  if (match === null) return undefined;
  const spanContext: SpanContext = {
    traceId: match[1] as string,
    spanId: match[2] as string,
    traceFlags: Number.parseInt(match[3] as string, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  return trace.isSpanContextValid(spanContext) ? spanContext : undefined;
}

/** The trace context a frame carries in its header, or undefined when it carries none. */
export function contextFromFrame(frame: FrameView): SpanContext | undefined {
  const traceId = frame.traceId;
  let any = 0;
  for (const byte of traceId) any |= byte;
  if (any === 0) return undefined;
  const spanContext: SpanContext = {
    traceId: toHex(traceId),
    spanId: toHex(frame.spanId),
    traceFlags: frame.traceFlags & TraceFlags.SAMPLED,
    isRemote: true,
  };
  return trace.isSpanContextValid(spanContext) ? spanContext : undefined;
}

/** Runs `body` under `parent` when there is one: the remote sender's span becomes the local spans' parent. */
export function withRemoteParent<T>(parent: SpanContext | undefined, body: () => T): T {
  return parent === undefined ? body() : withParent(parent, body);
}
