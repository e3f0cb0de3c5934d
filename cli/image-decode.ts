/**
 * PNG and JPEG files decoded to 8-bit RGBA in the CLI (pngjs, jpeg-js: pure JavaScript, no native build);
 * the server never decodes an image. The format is told by the file's first bytes, not by its name.
 */
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { AppError } from '../shared/errors.js';

export interface RgbaImage {
  width: number;
  height: number;
  /** width * height * 4 bytes, row by row, R G B A. */
  data: Uint8Array;
}

const isPng = (b: Uint8Array) => b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;
const isJpeg = (b: Uint8Array) => b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/** Decodes a PNG (any bit depth or colour type; 16-bit scaled to 8) or a baseline/progressive JPEG. */
export function decodeImage(bytes: Uint8Array, file: string): RgbaImage {
  const fail = (kind: string, err: unknown) => new AppError('INVALID_PAYLOAD', `${file}: cannot decode it as ${kind}, corrupt or truncated (${(err as Error).message ?? err})`, { cause: err });
  let img: RgbaImage;
  if (isPng(bytes)) {
    try {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      img = { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
    } catch (err) { throw fail('PNG', err); }
  } else if (isJpeg(bytes)) {
    try {
      const j = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
      img = { width: j.width, height: j.height, data: j.data };
    } catch (err) { throw fail('JPEG', err); }
  } else {
    throw new AppError('INVALID_PAYLOAD', `${file}: not a PNG or JPEG file (its first bytes say neither)`);
  }
  if (!(img.width >= 1 && img.height >= 1) || img.data.byteLength < img.width * img.height * 4) {
    throw new AppError('INVALID_PAYLOAD', `${file}: decoded to no pixels (${img.width}x${img.height})`);
  }
  return img;
}
