import { BytesMessage, type MessageCodec } from '../../wire/message-schema.js';

/**
 * The codecs a WebGPU kernel's outputs are written with: its handler's output bytes are already encoded, so each is
 * raw bytes carrying the type id the handler emitted; error responses carry the runtime's error-reply type.
 */

/** The type id of an error response (the runtime's `ErrorReply`: JSON `{ name, message, code }`). */
export const ERROR_RESPONSE_TYPE_ID = 2;

const encoder = new TextEncoder();

/** An error response's codec. */
export const ErrorResponse: MessageCodec<Uint8Array, Uint8Array> = {
  ...BytesMessage,
  name: 'error-reply',
  typeId: ERROR_RESPONSE_TYPE_ID,
};
/** The answer to a call whose handler emitted nothing. */
export const NO_RESPONSE = errorBody(
  'NoResponse',
  'the WGSL handler emitted nothing, so the call has no response',
  undefined,
);

/** An error response's JSON body. */
export function errorBody(name: string, message: string, code: string | number | undefined): Uint8Array {
  return encoder.encode(JSON.stringify({ name, message, code }));
}

/** Output codecs by type id: raw bytes carrying the handler's type id (the payload is already encoded). */
const codecs = new Map<number, MessageCodec<Uint8Array, Uint8Array>>();
export function typed(typeId: number): MessageCodec<Uint8Array, Uint8Array> {
  let codec = codecs.get(typeId);
  if (codec === undefined) {
    codec = { ...BytesMessage, name: `type ${typeId}`, typeId };
    codecs.set(typeId, codec);
  }
  return codec;
}
