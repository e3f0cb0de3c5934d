// shared/ compiles without Node or DOM types; these two globals exist in both, so declare just them.
declare class TextEncoder { encode(input?: string): Uint8Array; }
declare class TextDecoder {
  constructor(label?: string);
  decode(input?: ArrayBufferView | ArrayBuffer): string;
}
