/**
 * socket.io's own parser, with room for a result's tensors. A worker sends each output as a binary attachment,
 * and the stock Decoder refuses a packet with more than 10 ("too many attachments"): a model with 11 outputs made
 * every result a parse error, the worker reconnected for ever and its leases lapsed. This one accepts as many as
 * a result may carry (MAX_OUTPUTS), and stays bounded: nothing else a worker sends is binary, and socket-guards.ts
 * caps the bytes of one message, attachments included. The wire format is unchanged, so every client that exists
 * keeps working; the page and the headless worker use client/net/socket-parser.ts for what they receive.
 *
 * The alternative, every tensor of a message packed into one attachment, would reshape the protocol (an ack can
 * carry 16 tasks, each with its inputs) for every client at once; a parser option is the smaller change.
 */
import { Decoder, Encoder } from 'socket.io-parser';
import { MAX_OUTPUTS } from '../../shared/protocol.js';

class ResultDecoder extends Decoder {
  constructor() {
    super({ maxAttachments: MAX_OUTPUTS });
  }
}

/** Pass as `parser` in the socket.io Server's options. */
export const serverParser = { Encoder, Decoder: ResultDecoder };
