import type { MessageCodec } from './message-schema.js';

/**
 * A codec whose values are payloads already encoded as `codec`'s type: `encodeInto` copies the bytes as they are.
 * For frames that arrive encoded (from another node) and go into a ring unchanged — no decode, no re-encode.
 * The caller vouches that each payload is one of `codec`'s (its type id and size checked).
 */
export function encodedPayloadCodec(codec: MessageCodec<unknown, unknown>): MessageCodec<Uint8Array, unknown> {
  return {
    name: codec.name,
    typeId: codec.typeId,
    encodedSize: (payload) => payload.length,
    encodeInto: (_view, bytes, offset, payload) => bytes.set(payload, offset),
    view: (view, bytes, offset, size) => codec.view(view, bytes, offset, size),
  };
}

/** A view of `codec`'s type over an encoded payload (for the rare path that needs the message itself). */
export function viewOfEncoded<View>(codec: MessageCodec<unknown, View>, payload: Uint8Array): View {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return codec.view(view, payload, 0, payload.length);
}
