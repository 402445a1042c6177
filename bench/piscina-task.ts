/** A Piscina task per message: what a user would write without ringkernel. Reads one byte and answers. */
export default function handle(message: Uint8Array): number {
  return message[0] as number;
}
