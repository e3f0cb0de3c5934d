/**
 * The choice of the next server: the given ones in order, then those servers told of, round robin, each once,
 * never more than MAX_SERVERS, and nothing that is not an http(s) URL.
 */
import { describe, expect, it } from 'vitest';
import { MAX_SERVERS, ServerRotation } from './server-rotation.js';

describe('ServerRotation', () => {
  it('starts on the first server and takes the others in turn, coming round to the first again', () => {
    const r = new ServerRotation(['http://a:1', 'http://b:2', 'http://c:3']);
    expect(r.current).toBe('http://a:1');
    expect([r.advance(), r.advance(), r.advance(), r.advance()]).toEqual(['http://b:2', 'http://c:3', 'http://a:1', 'http://b:2']);
  });

  it('stays on a lone server', () => {
    const r = new ServerRotation(['http://a:1']);
    expect(r.advance()).toBe('http://a:1');
    expect(r.all).toEqual(['http://a:1']);
  });

  it('adds servers told of after the given ones, once each (a trailing slash is the same server)', () => {
    const r = new ServerRotation(['http://a:1', 'http://a:1/']);
    expect(r.learn(['http://b:2/', 'http://a:1/', 'http://b:2', 'https://c.example'])).toEqual(['http://b:2/', 'https://c.example']);
    expect(r.all).toEqual(['http://a:1', 'http://b:2/', 'https://c.example']);
    // The page goes to what it was told of only when its own server stays unreachable: its own is still first.
    expect(r.current).toBe('http://a:1');
    expect(r.advance()).toBe('http://b:2/');
  });

  it('keeps learning from where it stands: a server told of later is taken after the others', () => {
    const r = new ServerRotation(['http://a:1', 'http://b:2']);
    r.advance();
    r.learn(['http://c:3']);
    expect([r.current, r.advance(), r.advance()]).toEqual(['http://b:2', 'http://c:3', 'http://a:1']);
  });

  it('never holds more than MAX_SERVERS, and ignores what is not an http(s) URL', () => {
    const r = new ServerRotation(['http://a:1']);
    expect(r.learn('http://b:2')).toEqual([]);
    expect(r.learn(['javascript:alert(1)', 'ftp://x.example', 42, 'not a url', `http://${'x'.repeat(3000)}.example`])).toEqual([]);
    r.learn(Array.from({ length: 40 }, (_, i) => `http://peer-${i}.example`));
    expect(r.all).toHaveLength(MAX_SERVERS);
    expect(r.all[MAX_SERVERS - 1]).toBe(`http://peer-${MAX_SERVERS - 2}.example`);
  });

  it('needs a server to start with', () => {
    expect(() => new ServerRotation([])).toThrow(/at least one server/);
  });
});
