import { describe, expect, it } from 'vitest';
import { cidrContains, classifyIp, parseCidr, parseIp, type AddressClass } from '../../src/protocol/ip-ranges.js';

const classOf = (text: string): AddressClass | undefined => {
  const ip = parseIp(text);
  return ip ? classifyIp(ip) : undefined;
};

describe('classifyIp: every spelling of a special address lands in its class', () => {
  it.each<[string, AddressClass]>([
    // loopback, in every form a URL, a resolver or inet_aton accepts
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['2130706433', 'loopback'],
    ['0x7f.1', 'loopback'],
    ['0x7f000001', 'loopback'],
    ['0177.0.0.1', 'loopback'],
    ['127.1', 'loopback'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['[::ffff:7f00:1]', 'loopback'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['2002:7f00:1::', 'loopback'],
    // unspecified: connects to the local host on Linux
    ['0.0.0.0', 'unspecified'],
    ['0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['[::]', 'unspecified'],
    ['::ffff:0.0.0.0', 'unspecified'],
    // link-local, cloud metadata
    ['169.254.169.254', 'link-local'],
    ['0xa9fea9fe', 'link-local'],
    ['2852039166', 'link-local'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    // private
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.10', 'private'],
    ['100.64.0.1', 'private'],
    ['100.127.255.255', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fec0::1', 'private'],
    ['::ffff:10.1.2.3', 'private'],
    // reserved
    ['224.0.0.1', 'reserved'],
    ['239.255.255.250', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['ff02::1', 'reserved'],
    ['::127.0.0.1', 'reserved'],
    // public, including the neighbours of every range above
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['126.255.255.255', 'public'],
    ['128.0.0.0', 'public'],
    ['169.253.255.255', 'public'],
    ['169.255.0.0', 'public'],
    ['172.15.255.255', 'public'],
    ['172.32.0.0', 'public'],
    ['192.167.255.255', 'public'],
    ['192.169.0.0', 'public'],
    ['100.63.255.255', 'public'],
    ['100.128.0.0', 'public'],
    ['11.0.0.0', 'public'],
    ['223.255.255.255', 'public'],
    ['2606:4700::1111', 'public'],
    ['::ffff:8.8.8.8', 'public'],
    ['fe7f::1', 'public'],
    ['fbff::1', 'public'],
  ])('%s is %s', (text, cls) => {
    expect(classOf(text)).toBe(cls);
  });
});

describe('parseIp', () => {
  it.each(['localhost', 'example.com', '1.2.3.4.5', '256.0.0.1', '1.2.3.256', '0x1g', '1..2', '', '::1::2', '1:2:3:4:5:6:7:8:9', 'fe80::zz', '::ffff:1.2.3', '4294967296', '1.16777216'])(
    '%j is not an address', (text) => {
      expect(parseIp(text)).toBeUndefined();
    },
  );

  it('reads the full IPv6 form and the embedded IPv4 tail into the same bytes', () => {
    expect(parseIp('::ffff:127.0.0.1')).toEqual(parseIp('0:0:0:0:0:ffff:7f00:0001'));
    expect(parseIp('4294967295')).toEqual(parseIp('255.255.255.255'));
  });
});

describe('CIDR matching for allow-lists', () => {
  it.each<[string, string, boolean]>([
    ['127.0.0.0/8', '127.0.0.1', true],
    ['127.0.0.0/8', '128.0.0.1', false],
    ['127.0.0.1', '127.0.0.1', true],
    ['127.0.0.1', '127.0.0.2', false],
    ['10.1.0.0/16', '10.1.200.3', true],
    ['10.1.0.0/16', '10.2.0.1', false],
    ['172.16.0.0/12', '172.31.0.1', true],
    ['172.16.0.0/12', '172.32.0.1', false],
    ['0.0.0.0/0', '8.8.8.8', true],
    // an IPv4-mapped address connects to the IPv4 address: an IPv4 range covers it
    ['127.0.0.0/8', '::ffff:127.0.0.1', true],
    ['fd00::/8', 'fd00::5', true],
    ['fd00::/8', 'fe00::5', false],
    ['::1', '::1', true],
    ['::1/128', '127.0.0.1', false],
    ['fd00::/8', '10.0.0.1', false],
  ])('%s contains %s: %s', (cidr, ip, expected) => {
    expect(cidrContains(parseCidr(cidr)!, parseIp(ip)!)).toBe(expected);
  });

  it.each(['10.0.0.0/33', '::/129', 'example.com/8', '10.0.0.0/', '10.0.0.0/x', 'example.com'])('%j is not a CIDR', (text) => {
    expect(parseCidr(text)).toBeUndefined();
  });
});
