/**
 * Where an upstream may send regcache: the address policy for redirect targets and token
 * realms (the configured upstream URL itself is trusted, the operator chose it).
 *
 * By default never loopback, link-local (cloud metadata at 169.254.169.254), unspecified,
 * multicast or reserved addresses; private ranges (10/8, 172.16/12, 192.168/16, 100.64/10,
 * fc00::/7) only when the upstream itself resolves to a private address (an on-premises
 * registry redirecting to its own object store is normal; a public one pointing into the
 * LAN is SSRF). `upstreams.<host>.allowedHosts` (host names, addresses, CIDRs) overrides both.
 *
 * The check runs on the resolved addresses inside the socket's own DNS lookup, so the
 * address that is checked is the address that is connected to: a name that resolves to a
 * public address for a check and to 127.0.0.1 for the connect (DNS rebinding) cannot slip
 * through. Every address a name resolves to must pass.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { cidrContains, classifyIp, parseCidr, parseIp, type AddressClass, type Cidr } from '../protocol/ip-ranges.js';

/** Thrown (or passed to the socket) when a target is refused; the message names the host, never a URL. */
export class AddressRefusedError extends Error {
  override name = 'AddressRefusedError';
  readonly code = 'ERR_REGCACHE_ADDRESS_REFUSED';
}

/** The refused error in `err` or its cause chain (undici may wrap socket errors). */
export function refusal(err: unknown): AddressRefusedError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (e instanceof AddressRefusedError) return e;
  }
  return undefined;
}

const REFUSED_CLASSES: Record<Exclude<AddressClass, 'public' | 'private'>, string> = {
  loopback: 'a loopback address',
  'link-local': 'a link-local address',
  unspecified: 'an unspecified address',
  reserved: 'a multicast or reserved address',
};

/**
 * The decision for one address: undefined when allowed, else why not. Pure, so the table
 * of cases is unit-tested directly.
 */
export function decideAddress(cls: AddressClass, ctx: { allowListed: boolean; upstreamPrivate: boolean }): string | undefined {
  if (ctx.allowListed || cls === 'public') return undefined;
  if (cls === 'private') return ctx.upstreamPrivate ? undefined : 'a private address (the upstream itself is not on a private network)';
  return REFUSED_CLASSES[cls];
}

type Resolve = (hostname: string) => Promise<LookupAddress[]>;

const systemResolve: Resolve = (hostname) => new Promise((resolve, reject) => {
  dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses)));
});

/** How long the upstream's own resolution (private or not) is remembered. */
const UPSTREAM_CLASS_TTL = 60_000;

export class AddressPolicy {
  private readonly names = new Set<string>();
  private readonly ranges: Cidr[] = [];
  private upstreamPrivate: { value: Promise<boolean>; at: number } | undefined;

  /**
   * @param allowedHosts entries of `upstreams.<host>.allowedHosts` (validated at config load)
   * @param upstreamHostname the configured upstream's host name, whose own resolution decides about private targets
   * @param what who the policy is for, used in messages (`upstreams.ghcr.io`)
   */
  constructor(
    allowedHosts: readonly string[],
    private readonly upstreamHostname: string,
    private readonly configKey: string,
    private readonly resolve: Resolve = systemResolve,
    private readonly now: () => number = Date.now,
  ) {
    for (const h of allowedHosts) {
      const cidr = parseCidr(h);
      if (cidr) this.ranges.push(cidr);
      else this.names.add(normalizeHost(h));
    }
  }

  /** Checks a target before connecting: allow-listed names pass, IP literals are decided here, names in `lookup`. */
  async checkHost(hostname: string): Promise<void> {
    const host = normalizeHost(hostname);
    if (this.names.has(host)) return;
    if (parseIp(host)) await this.checkAddresses(host, [host]);
  }

  /** A `lookup` for net/tls.connect that resolves, refuses the whole name if any address is refused, and connects to what it checked. */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    const host = normalizeHost(hostname);
    this.resolve(host)
      .then(async (all) => {
        const family = options.family === 4 || options.family === 6 ? options.family : undefined;
        const addresses = family ? all.filter((a) => a.family === family) : all;
        if (addresses.length === 0) throw Object.assign(new Error(`${host} has no address`), { code: 'ENOTFOUND' });
        if (!this.names.has(host)) await this.checkAddresses(host, addresses.map((a) => a.address));
        return addresses;
      })
      .then(
        (addresses) => {
          if (options.all) (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
          else callback(null, addresses[0]!.address, addresses[0]!.family);
        },
        (err: NodeJS.ErrnoException) => callback(err, '', 0),
      );
  };

  private async checkAddresses(host: string, addresses: string[]): Promise<void> {
    for (const address of addresses) {
      const ip = parseIp(address);
      if (!ip) throw new AddressRefusedError(`${host} resolved to an unparsable address`);
      const allowListed = this.ranges.some((r) => cidrContains(r, ip));
      const cls = classifyIp(ip);
      const upstreamPrivate = cls === 'private' && !allowListed ? await this.upstreamIsPrivate() : false;
      const why = decideAddress(cls, { allowListed, upstreamPrivate });
      if (why !== undefined) {
        const shown = host === address ? host : `${host} (${address})`;
        throw new AddressRefusedError(`${shown} is ${why}; list it in ${this.configKey}.allowedHosts to allow it`);
      }
    }
  }

  /** Whether the configured upstream resolves to a private address (then its private neighbours are fair targets). */
  private upstreamIsPrivate(): Promise<boolean> {
    const cached = this.upstreamPrivate;
    if (cached && this.now() - cached.at < UPSTREAM_CLASS_TTL) return cached.value;
    const host = normalizeHost(this.upstreamHostname);
    const literal = parseIp(host);
    const value = literal
      ? Promise.resolve(classifyIp(literal) === 'private')
      : this.resolve(host).then(
        (all) => all.some((a) => { const ip = parseIp(a.address); return ip !== undefined && classifyIp(ip) === 'private'; }),
        () => false,
      );
    this.upstreamPrivate = { value, at: this.now() };
    return value;
  }
}

/** Lower case, without IPv6 brackets or a trailing dot (`Example.COM.` and `example.com` are one host). */
function normalizeHost(h: string): string {
  let s = h.toLowerCase();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  return s.endsWith('.') ? s.slice(0, -1) : s;
}
