import { describe, expect, it } from 'vitest';
import { clientAddress, originOf } from './origin.js';

const v4 = { ipv4Prefix: 32 };

describe('originOf', () => {
  it('keeps an IPv4 address whole at /32 and names its network below', () => {
    expect(originOf('203.0.113.77', v4)).toBe('203.0.113.77');
    expect(originOf('203.0.113.77', { ipv4Prefix: 24 })).toBe('203.0.113.0/24');
    expect(originOf('203.0.113.77', { ipv4Prefix: 16 })).toBe('203.0.0.0/16');
    expect(originOf('255.255.255.255', { ipv4Prefix: 8 })).toBe('255.0.0.0/8');
  });

  it('counts an IPv4-mapped IPv6 address as the IPv4 address, in either spelling', () => {
    expect(originOf('::ffff:127.0.0.2', v4)).toBe('127.0.0.2');
    expect(originOf('::FFFF:7f00:3', v4)).toBe('127.0.0.3');
    expect(originOf('::ffff:198.51.100.9', { ipv4Prefix: 24 })).toBe('198.51.100.0/24');
  });

  it('gives one origin per IPv6 /64, however the address is written', () => {
    const a = originOf('2001:db8:0:1::1', v4);
    expect(a).toBe('2001:db8:0:1::/64');
    expect(originOf('2001:0DB8:0000:0001:ffff:eeee:dddd:cccc', v4)).toBe(a);
    expect(originOf('2001:db8:0:1:a::b%eth0', v4)).toBe(a);
    expect(originOf('2001:db8:0:2::1', v4)).not.toBe(a);
    expect(originOf('::1', v4)).toBe('0:0:0:0::/64');
    expect(originOf('64:ff9b::192.0.2.1', v4)).toBe('64:ff9b:0:0::/64');
  });

  it('leaves what is not an address as its own origin', () => {
    expect(originOf('not-an-ip', v4)).toBe('not-an-ip');
    expect(originOf('', v4)).toBe('unknown');
  });
});

describe('clientAddress', () => {
  it('is the peer unless the proxy is trusted', () => {
    expect(clientAddress('198.51.100.1', '203.0.113.5', false)).toBe('198.51.100.1');
    expect(clientAddress('10.0.0.2', undefined, true)).toBe('10.0.0.2');
  });

  it('takes the right-most X-Forwarded-For entry: what the proxy appended, not what the client wrote', () => {
    // The client sent "X-Forwarded-For: 1.1.1.1, 2.2.2.2"; the proxy appended the address it saw.
    expect(clientAddress('10.0.0.2', '1.1.1.1, 2.2.2.2, 203.0.113.5', true)).toBe('203.0.113.5');
    expect(clientAddress('10.0.0.2', ['1.1.1.1', '203.0.113.6'], true)).toBe('203.0.113.6');
    expect(clientAddress('10.0.0.2', '203.0.113.7:51234', true)).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.2', '[2001:db8::9]:443', true)).toBe('2001:db8::9');
  });

  it('falls back to the peer when the header holds no address', () => {
    expect(clientAddress('10.0.0.2', 'unknown', true)).toBe('10.0.0.2');
    expect(clientAddress('10.0.0.2', ' , ', true)).toBe('10.0.0.2');
  });
});
