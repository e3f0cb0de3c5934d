/**
 * The flags that say how images become a model's input (`--resize`, `--layout`, `--mean`, `--std`,
 * `--scale`), parsed once from what commander hands over, with a zod schema: a bad value is refused with the
 * flag's name and what was expected.
 */
import { z } from 'zod';
import { AppError } from '../shared/errors.js';

export const Layout = { nchw: 'nchw', nhwc: 'nhwc' } as const;
export type Layout = (typeof Layout)[keyof typeof Layout];

export interface ImageOptions {
  resize?: { width: number; height: number };
  layout?: Layout;
  /** Per channel (or one for all), subtracted after scaling. */
  mean?: number[];
  /** Per channel (or one for all), divided by after the mean. */
  std?: number[];
  /** Pixel values (0..255) are multiplied by it first. */
  scale?: number;
}

const finite = (s: string) => Number(s.trim());
const isFiniteNumber = (s: string) => s.trim() !== '' && Number.isFinite(Number(s.trim()));

const numberList = (flag: string, positive: boolean) => z.string()
  .refine((s) => s.split(',').every(isFiniteNumber), `${flag}: expected numbers separated by commas, e.g. 0.485,0.456,0.406`)
  .transform((s) => s.split(',').map(finite))
  .refine((v) => !positive || v.every((x) => x > 0), `${flag}: every value must be above 0`);

const scale = z.string()
  .regex(/^\s*[^/]+(\/[^/]+)?\s*$/, '--scale: expected a number or a fraction, e.g. 1/255')
  .transform((s) => s.split('/').map(finite).reduce((a, b) => a / b))
  .refine((v) => Number.isFinite(v) && v > 0, '--scale: expected a positive number or fraction, e.g. 1/255 or 0.0039');

const resize = z.string()
  .regex(/^\s*\d+\s*[xX]\s*\d+\s*$/, '--resize: expected WIDTHxHEIGHT, e.g. 224x224')
  .transform((s) => {
    const [width, height] = s.toLowerCase().split('x').map(finite);
    return { width, height };
  })
  .refine((r) => r.width >= 1 && r.height >= 1 && r.width <= 16384 && r.height <= 16384, '--resize: each side from 1 to 16384 pixels');

export const imageFlagsSchema = z.object({
  resize: resize.optional(),
  layout: z.enum([Layout.nchw, Layout.nhwc], { message: '--layout: expected nchw or nhwc' }).optional(),
  mean: numberList('--mean', false).optional(),
  std: numberList('--std', true).optional(),
  scale: scale.optional(),
});
/** The flags as the command line gives them: strings, checked by `imageFlagsSchema`. */
export type ImageFlags = Partial<Record<keyof z.input<typeof imageFlagsSchema>, string>>;

/** Parses the image flags as given on the command line. */
export function parseImageOptions(flags: ImageFlags): ImageOptions {
  const parsed = imageFlagsSchema.safeParse(flags);
  if (!parsed.success) throw new AppError('INVALID_PAYLOAD', parsed.error.issues.map((i) => i.message).join('; '));
  return parsed.data;
}

/** The flags given, by name, to refuse them where they do not apply. */
export function givenImageFlags(o: ImageOptions): string[] {
  return (['resize', 'layout', 'mean', 'std', 'scale'] as const).filter((k) => o[k] !== undefined).map((k) => `--${k}`);
}
