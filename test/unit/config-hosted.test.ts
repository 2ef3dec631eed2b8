/** The hosted sections and auth.rules of the config: what parses, and the messages for what does not. */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/validate.js';
import { configError as error } from './config-error.js';

describe('hostedRepositories and hosted', () => {
  it('patterns in file order with their defaults', () => {
    const c = validateConfig({ hostedRepositories: { 'team/**': { deleteTags: true }, 'docker.io/myorg/*': { sparseIndex: true } }, hosted: { names: ['regcache.local:5000'], uploadExpiry: '2h' } });
    expect(c.hostedRepositories).toEqual([
      { pattern: 'team/**', deleteManifests: false, deleteTags: true, deleteBlobs: false, sparseIndex: false },
      { pattern: 'docker.io/myorg/*', deleteManifests: false, deleteTags: false, deleteBlobs: false, sparseIndex: true },
    ]);
    expect(c.hosted).toEqual({ names: ['regcache.local:5000'], uploadExpiry: 7_200_000, maxManifestSize: 4 * 1024 * 1024, gcGrace: 3_600_000, gcInterval: 3_600_000 });
  });

  it('refuses bad patterns and names, naming the key', () => {
    expect(error({ hostedRepositories: { 'Team/**': {} } })).toMatch(/^hostedRepositories\.Team\/\*\*: invalid repository pattern/);
    expect(error({ hostedRepositories: { 'team/**': { delete: true } } })).toBe('hostedRepositories.team/**.delete: unknown key');
    expect(error({ hosted: { names: ['Not A Host'] } })).toMatch(/^hosted\.names\[0\]: invalid registry host/);
    expect(error({ upstreams: { hosted: { url: 'https://a.io' } } })).toBe('upstreams.hosted: the name "hosted" is reserved for hosted repositories');
  });
});

describe('auth.rules', () => {
  it('parses users x repositories x actions', () => {
    const c = validateConfig({ auth: { htpasswd: 'h', rules: [{ users: ['ci', 'anonymous'], repositories: ['team/**'], actions: ['pull', 'push'] }] } });
    expect(c.auth!.rules).toEqual([{ users: ['ci', 'anonymous'], repositories: ['team/**'], actions: ['pull', 'push'] }]);
  });

  it('refuses unknown actions, keys, bad patterns and missing fields, naming the rule', () => {
    expect(error({ auth: { htpasswd: 'h', rules: [{ users: ['ci'], repositories: ['team/**'], actions: ['write'] }] } })).toMatch(/^auth\.rules\[0\]\.actions: unknown action "write"/);
    expect(error({ auth: { htpasswd: 'h', rules: [{ users: ['ci'], repositories: ['Team'], actions: ['push'] }] } })).toMatch(/^auth\.rules\[0\]\.repositories\[0\]: invalid repository pattern/);
    expect(error({ auth: { htpasswd: 'h', rules: [{ users: ['ci'], actions: ['push'] }] } })).toBe('auth.rules[0].repositories: required');
    expect(error({ auth: { htpasswd: 'h', rules: [{ users: ['ci'], repositories: ['a'], actions: ['push'], extra: 1 }] } })).toBe('auth.rules[0].extra: unknown key');
    expect(error({ auth: { htpasswd: 'h', rules: {} } })).toMatch(/^auth\.rules: must be a list/);
  });
});
