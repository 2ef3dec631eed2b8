import { describe, expect, it } from 'vitest';
import { parseDuration, parseSize } from '../../src/config/units.js';
import { validateConfig } from '../../src/config/validate.js';

// The tables of docs/config.md ("Units"), row by row.
describe('durations', () => {
  it.each([
    ['500ms', 500], ['90s', 90_000], ['5m', 300_000], ['168h', 604_800_000], ['7d', 604_800_000],
    ['1h30m', 5_400_000], ['1.5h', 5_400_000], ['0', 0],
  ])('%s = %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it('a YAML number is seconds', () => expect(parseDuration(30)).toBe(30_000));

  it.each(['5', '5 m', '-5m', '5w', 'm', '5M', ''])('%j is refused', (text) => expect(parseDuration(text)).toBeUndefined());
});

describe('sizes', () => {
  it.each([
    ['1048576', 1_048_576], ['100B', 100],
    ['1KB', 1e3], ['1MB', 1e6], ['20GB', 20e9], ['1TB', 1e12], ['1.5GB', 1.5e9],
    ['1KiB', 1024], ['512MiB', 512 * 1024 ** 2], ['20GiB', 20 * 1024 ** 3], ['1TiB', 1024 ** 4],
    ['1Ki', 1024], ['1Mi', 1024 ** 2], ['20Gi', 20 * 1024 ** 3], ['1Ti', 1024 ** 4],
    ['20gib', 20 * 1024 ** 3], ['20gb', 20e9], ['512 MiB', 512 * 1024 ** 2],
  ])('%s = %d bytes', (text, bytes) => expect(parseSize(text)).toBe(bytes));

  it('the unit, not its letter case, says the base: 20GB and 20gb are the same, 20GiB differs', () => {
    expect(parseSize('20GB')).toBe(parseSize('20gb'));
    expect(parseSize('20GiB')).toBe(parseSize('20gIb'));
    expect(parseSize('20GiB')).not.toBe(parseSize('20GB'));
  });

  it.each(['20G', '20g', '1K', '5M', '1T'])('bare %s is refused as ambiguous, naming the key and both spellings', (text) => {
    expect(parseSize(text)).toBeUndefined();
    expect(() => validateConfig({ retention: { maxSize: text } })).toThrow(
      `retention.maxSize: ambiguous size "${text}": write ${text}iB (powers of 1024) or ${text}B (powers of 1000)`,
    );
  });

  it.each(['20 GiBs', 'GiB', '-1GiB', '1e3'])('%j is refused', (text) => {
    expect(parseSize(text)).toBeUndefined();
    expect(() => validateConfig({ cache: { maxManifestSize: text } })).toThrow(/^cache\.maxManifestSize: invalid size/);
  });
});
