import { BytesMessage, type MessageCodec } from './message-schema.js';

/**
 * A codec whose values are payloads already encoded as `codec`'s type: the raw-bytes codec under `codec`'s name and
 * type id, so a frame that arrives encoded (from another node) goes into a ring as it is — no decode, no re-encode.
 * The caller vouches that each payload is one of `codec`'s (its type id and size checked).
 */
export function encodedPayloadCodec(codec: MessageCodec<unknown, unknown>): MessageCodec<Uint8Array, Uint8Array> {
  return { ...BytesMessage, name: codec.name, typeId: codec.typeId };
}

/** A view of `codec`'s type over an encoded payload (for the rare path that needs the message itself). */
export function viewOfEncoded<View>(codec: MessageCodec<unknown, View>, payload: Uint8Array): View {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return codec.view(view, payload, 0, payload.length);
}
