import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeNpy } from '../shared/npy.js';
import { pngFile, rgba } from '../test/helpers/images-fixtures.js';
import { rawNpy } from '../test/helpers/npy-fixtures.js';
import { inputSources } from './input-sources.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-sources-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const at = (...p: string[]) => path.join(root, ...p);

fs.mkdirSync(at('arrays'));
fs.writeFileSync(at('arrays', 'a.npy'), writeNpy('float32', [2, 4], new Uint8Array(32)));
fs.writeFileSync(at('arrays', 'b.npy'), rawNpy({ descr: '<f8', fortran: true, shape: [2, 4], data: new Uint8Array(64) }));
fs.mkdirSync(at('photos'));
fs.writeFileSync(at('photos', 'p.png'), pngFile(2, 2, rgba(2, 2, () => [1, 2, 3, 255])));
fs.writeFileSync(at('x.npy'), writeNpy('float32', [2, 4], new Uint8Array(32)));

const vec = (name: string) => ({ name, dtype: 'float32', shape: ['n', 4] });
const img = { name: 'img', dtype: 'float32', shape: ['n', 3, 2, 2] };

describe('inputSources', () => {
  it('takes a .npy for a one-input model, and a folder of <input>.npy for several', () => {
    expect(inputSources(at('x.npy'), [vec('x')], {}).inputs.map((i) => [i.input, i.source, i.note])).toEqual([['x', at('x.npy'), null]]);
    const two = inputSources(at('arrays'), [vec('a'), vec('b')], {});
    expect(two.images).toBeNull();
    expect(two.inputs.map((i) => i.note)).toEqual([null, "input b: float64 -> float32 (numpy's default dtype), Fortran order -> C order"]);
  });

  it('takes a folder of images for a one-input model, with its manifest', () => {
    const got = inputSources(at('photos'), [img], {});
    expect(got.images?.manifest.files).toEqual(['p.png']);
    expect(got.inputs).toEqual([got.images]);
  });

  it('refuses what does not fit, saying what would', () => {
    expect(() => inputSources(at('nope'), [vec('x')], {})).toThrow(`inputs not found: ${at('nope')}`);
    expect(() => inputSources(at('x.npy'), [vec('a'), vec('b')], {})).toThrow('the model has 2 inputs (a, b): pass a folder with one .npy per input');
    expect(() => inputSources(at('photos'), [vec('a'), vec('b')], {})).toThrow(`${at('photos')} has no a.npy; the model's inputs are: a, b (one .npy each)`);
    expect(() => inputSources(at('arrays'), [vec('c')], {})).toThrow(`${at('arrays')} has no c.npy; the model's inputs are: c (one .npy each, or PNG/JPEG images for an image input)`);
    expect(() => inputSources(at('x.npy'), [vec('x')], { scale: 2 })).toThrow(`--scale applies to a folder of images; ${at('x.npy')} is an array`);
  });
});
