/**
 * socket.io's own parser, with room for a message's tasks. Each input of each task arrives as a binary
 * attachment, and the stock Decoder refuses a packet with more than 10 ("too many attachments"): `--slots` above
 * 10, or a model with many inputs, made every task list a parse error and the worker reconnected for ever. A
 * message carries at most MAX_SLOTS tasks; this accepts 256 inputs for each. The server sends nothing else
 * binary, and a bound remains, so a broken server cannot make the worker hold an unbounded packet.
 * The server's side is server/api/socket-parser.ts; the wire format is the stock one.
 */
import { Decoder, Encoder } from 'socket.io-parser';
import { MAX_SLOTS } from '../../shared/protocol.js';

export const MAX_INPUTS_PER_TASK = 256;

class TaskListDecoder extends Decoder {
  constructor() {
    super({ maxAttachments: MAX_SLOTS * MAX_INPUTS_PER_TASK });
  }
}

/** Pass as `parser` in socket.io-client's options. */
export const clientParser = { Encoder, Decoder: TaskListDecoder };
