/**
 * IP address parsing and classification for the outbound address policy: which special
 * range (loopback, link-local, private, ...) an address is in, and CIDR matching for
 * operator allow-lists. Pure: no DNS, no sockets.
 *
 * Every textual form a URL, a resolver or an attacker may use for the same address must
 * classify the same way: `2130706433`, `0x7f.1` and `0177.0.0.1` are 127.0.0.1 (inet_aton
 * forms, which getaddrinfo also accepts), `::ffff:127.0.0.1` and `::ffff:7f00:1` are
 * 127.0.0.1 seen through IPv6 (and connect there).
 */

export type AddressClass = 'loopback' | 'unspecified' | 'link-local' | 'private' | 'reserved' | 'public';

export interface IpAddress {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

export interface Cidr extends IpAddress {
  prefix: number;
}

/**
 * IPv4 the way inet_aton and the WHATWG URL parser read it: 1 to 4 parts, each decimal,
 * hex (`0x`) or octal (leading `0`); the last part fills the remaining bytes.
 */
function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length > 4 || parts.some((p) => p === '')) return undefined;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0x[0-9a-f]*$/i.test(p)) n = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]+$/.test(p)) n = parseInt(p.slice(1), 8);
    else if (/^(0|[1-9][0-9]*)$/.test(p)) n = Number(p);
    else return undefined;
    if (!Number.isSafeInteger(n)) return undefined;
    nums.push(n);
  }
  const last = nums.pop()!;
  if (nums.some((n) => n > 255) || last >= 256 ** (4 - nums.length)) return undefined;
  let value = last;
  nums.forEach((n, i) => { value += n * 256 ** (3 - i); });
  return Uint8Array.of(value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255);
}

function parseIpv6(text: string): Uint8Array | undefined {
  // A zone (`fe80::1%eth0`) names an interface, not another address.
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  let tail: Uint8Array | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    // Embedded dotted IPv4 in the last 32 bits: only the strict 4-part decimal form.
    const v4 = text.slice(lastColon + 1);
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(v4)) return undefined;
    tail = parseIpv4(v4.split('.').map((p) => String(Number(p))).join('.'));
    if (!tail) return undefined;
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const group = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = group(halves[0]!);
  const rest = halves.length === 2 ? group(halves[1]!) : [];
  if (!head || !rest) return undefined;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const words = [...head, ...new Array<number>(missing).fill(0), ...rest];
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => { bytes[2 * i] = w >> 8; bytes[2 * i + 1] = w & 255; });
  if (tail) bytes.set(tail, 12);
  return bytes;
}

/** An IP address in any accepted textual form (IPv6 with or without brackets), or undefined for a host name. */
export function parseIp(text: string): IpAddress | undefined {
  const t = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (t.includes(':')) {
    const b = parseIpv6(t);
    return b ? { family: 6, bytes: b } : undefined;
  }
  const b = parseIpv4(t);
  return b ? { family: 4, bytes: b } : undefined;
}

/** `10.0.0.0/8`, `fd00::/8`, or a single address (a full-length prefix). */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!ip) return undefined;
  const max = ip.family === 4 ? 32 : 128;
  if (slash < 0) return { ...ip, prefix: max };
  const p = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(p) || Number(p) > max) return undefined;
  return { ...ip, prefix: Number(p) };
}

function prefixMatches(net: Uint8Array, prefix: number, addr: Uint8Array): boolean {
  for (let bit = 0; bit < prefix; bit += 8) {
    const n = Math.min(8, prefix - bit);
    const mask = (0xff << (8 - n)) & 0xff;
    if ((net[bit / 8]! & mask) !== (addr[bit / 8]! & mask)) return false;
  }
  return true;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), if it is one. */
function mappedIpv4(ip: IpAddress): Uint8Array | undefined {
  if (ip.family !== 6) return undefined;
  const b = ip.bytes;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return undefined;
  return b[10] === 0xff && b[11] === 0xff ? b.slice(12) : undefined;
}

/** Whether `ip` is inside `cidr`; an IPv4-mapped IPv6 address matches IPv4 ranges (it connects there). */
export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.family === ip.family) return prefixMatches(cidr.bytes, cidr.prefix, ip.bytes);
  const v4 = mappedIpv4(ip);
  return cidr.family === 4 && v4 !== undefined && prefixMatches(cidr.bytes, cidr.prefix, v4);
}

type Range = [net: number[], prefix: number, cls: AddressClass];

/** IPv4 special ranges, most specific first where they overlap. */
const V4: Range[] = [
  [[0, 0, 0, 0], 8, 'unspecified'], // "this network": 0.0.0.0 connects to the local host on Linux
  [[127, 0, 0, 0], 8, 'loopback'],
  [[169, 254, 0, 0], 16, 'link-local'], // cloud metadata services live here
  [[10, 0, 0, 0], 8, 'private'],
  [[172, 16, 0, 0], 12, 'private'],
  [[192, 168, 0, 0], 16, 'private'],
  [[100, 64, 0, 0], 10, 'private'], // carrier-grade NAT, also used by cluster and VPN networks
  [[224, 0, 0, 0], 4, 'reserved'], // multicast
  [[240, 0, 0, 0], 4, 'reserved'], // reserved and the broadcast address
];

function classifyV4(b: Uint8Array): AddressClass {
  for (const [net, prefix, cls] of V4) if (prefixMatches(Uint8Array.from(net), prefix, b)) return cls;
  return 'public';
}

/** The class of an address; IPv6 forms that carry an IPv4 address take that address's class. */
export function classifyIp(ip: IpAddress): AddressClass {
  if (ip.family === 4) return classifyV4(ip.bytes);
  const b = ip.bytes;
  const zeroUpTo = (n: number): boolean => b.subarray(0, n).every((x) => x === 0);
  if (zeroUpTo(16)) return 'unspecified';
  if (zeroUpTo(15) && b[15] === 1) return 'loopback';
  const v4 = mappedIpv4(ip);
  if (v4) return classifyV4(v4);
  // IPv4-compatible (::a.b.c.d, deprecated): no legitimate registry uses it.
  if (zeroUpTo(12)) return 'reserved';
  // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they embed.
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && b.subarray(4, 12).every((x) => x === 0)) return classifyV4(b.slice(12));
  if (b[0] === 0x20 && b[1] === 0x02) return classifyV4(b.slice(2, 6));
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'link-local'; // fe80::/10
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0xc0) return 'private'; // fec0::/10, deprecated site-local
  if ((b[0]! & 0xfe) === 0xfc) return 'private'; // fc00::/7, unique local
  if (b[0] === 0xff) return 'reserved'; // multicast
  return 'public';
}
