/** `auth`: present means clients must log in; `rules` say who may push and delete where (docs/hosted.md). */
import { globProblem } from '../../protocol/glob.js';
import { fail } from '../errors.js';
import type { AccessAction, AccessRule, Config } from '../types.js';
import { key, mapping, section, checkKnown } from './define.js';
import { bool, str, stringList } from './values.js';

const ACTIONS: readonly AccessAction[] = ['pull', 'push', 'delete', 'admin'];

function rules(v: unknown, k: string): AccessRule[] {
  if (!Array.isArray(v)) fail(k, 'must be a list of rules ({users, repositories, actions})');
  return v.map((r, i) => {
    const at = `${k}[${i}]`;
    const raw = mapping(r, at);
    checkKnown(raw, ['users', 'repositories', 'actions'], at);
    const users = stringList('user names (or anonymous)')(raw.users ?? fail(`${at}.users`, 'required'), `${at}.users`);
    const repositories = stringList('repository patterns')(raw.repositories ?? fail(`${at}.repositories`, 'required'), `${at}.repositories`);
    repositories.forEach((p, j) => {
      const problem = globProblem(p);
      if (problem) fail(`${at}.repositories[${j}]`, problem);
    });
    const actions = stringList('actions')(raw.actions ?? fail(`${at}.actions`, 'required'), `${at}.actions`);
    for (const a of actions) if (!(ACTIONS as readonly string[]).includes(a)) fail(`${at}.actions`, `unknown action ${JSON.stringify(a)}: use ${ACTIONS.join(', ')}`);
    return { users, repositories, actions: actions as AccessAction[] };
  });
}

export const auth = section<NonNullable<Config['auth']>>('auth', 'optional', {
  htpasswd: key(str, { required: true, apply: 'restart', doc: 'bcrypt htpasswd file (`htpasswd -B`): clients must log in' }),
  anonymousPull: key(bool, { default: false, apply: 'restart', doc: 'pulls need no login (only `/metrics` does)' }),
  protectMetrics: key(bool, { default: true, apply: 'restart', doc: '`/metrics` needs a login' }),
  publicStatus: key(bool, { default: false, apply: 'restart', doc: 'the admin status (`/api/v1/status`) and the page at `/ui/` need no login; everything else of the admin API still does ([api.md](api.md))' }),
  rules: key(rules, { default: [], apply: 'restart', doc: 'who may `push`, `delete` (and `pull` without `anonymousPull`) which repositories: a list of `{users: [name or anonymous], repositories: [glob], actions: [pull, push, delete, admin]}` ([hosted.md](hosted.md#permissions))' }),
});

export const catalog = section<Config['catalog']>('catalog', 'always', {
  anonymous: key(bool, { default: true, apply: 'restart', doc: '`/v2/_catalog` answers callers without credentials (listing only what they may pull); `false`: it needs a login' }),
});
