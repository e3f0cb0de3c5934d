/**
 * The network origin of a connection: the unit that quorums count as independent (a crowd of identities behind
 * one address must not outvote anyone) and that connection limits are kept per. An IPv4 address, or its /N
 * network when `ipv4Prefix` < 32; an IPv6 /64, what one subscriber is usually given; an IPv4-mapped IPv6
 * address (`::ffff:a.b.c.d`, how a dual-stack socket reports IPv4 peers) counts as the IPv4 address it maps.
 */
import net from 'node:net';

export interface OriginOptions {
  /** IPv4 addresses in one /N count as one origin (8 to 32). */
  ipv4Prefix: number;
}

/** The origin key of an address; an address that is not an IP address is its own origin. */
export function originOf(address: string, o: OriginOptions): string {
  const bare = address.trim().replace(/%.*$/, ''); // an IPv6 zone (fe80::1%eth0) names an interface, not a host
  if (net.isIPv4(bare)) return ipv4Origin(ipv4Octets(bare), o.ipv4Prefix);
  if (net.isIPv6(bare)) {
    const g = ipv6Groups(bare);
    const mapped = g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
    if (mapped) return ipv4Origin([g[6]! >> 8, g[6]! & 0xff, g[7]! >> 8, g[7]! & 0xff], o.ipv4Prefix);
    return `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
  }
  return bare || 'unknown';
}

/**
 * The address a connection comes from. Without a trusted proxy, the socket's peer. Behind one (`trustProxy`),
 * the right-most entry of X-Forwarded-For: the rule "right-most address not added by a proxy we trust", with
 * exactly one trusted proxy, the peer itself. That entry is the address our proxy saw and appended; everything
 * left of it is the client's own word and can be forged. With a chain of proxies (a CDN in front of nginx) the
 * right-most entry is the CDN's, so every client would share one origin: configure the last proxy to replace the
 * header rather than append to it. A header missing or unreadable leaves the peer's address (the proxy's), which
 * errs towards tighter limits, never looser.
 */
export function clientAddress(peer: string, forwardedFor: string | string[] | undefined, trustProxy: boolean): string {
  if (!trustProxy || forwardedFor === undefined) return peer;
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
  const last = header.split(',').map((s) => s.trim()).filter(Boolean).pop();
  if (!last) return peer;
  const address = withoutPort(last);
  return net.isIP(address) ? address : peer;
}

/** `1.2.3.4:5678` and `[2001:db8::1]:443` (some proxies write the port) without the port. */
function withoutPort(entry: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(entry);
  if (bracketed) return bracketed[1]!;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(entry);
  return v4 ? v4[1]! : entry;
}

function ipv4Octets(address: string): number[] {
  return address.split('.').map(Number);
}

function ipv4Origin(octets: number[], prefix: number): string {
  if (prefix >= 32) return octets.join('.');
  const value = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  const network = prefix <= 0 ? 0 : (value & (~0 << (32 - prefix))) >>> 0;
  return `${[network >>> 24, (network >>> 16) & 0xff, (network >>> 8) & 0xff, network & 0xff].join('.')}/${prefix}`;
}

/** The eight 16-bit groups of a valid IPv6 address, `::` expanded and a trailing dotted IPv4 part converted. */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase();
  const dotted = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = ipv4Octets(dotted[1]!);
    text = `${text.slice(0, dotted.index)}${((a! << 8) | b!).toString(16)}:${((c! << 8) | d!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, null];
  const parse = (part: string) => (part ? part.split(':').map((h) => Number.parseInt(h, 16)) : []);
  const left = parse(head);
  if (tail === null) return left;
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
