/**
 * The page's script (an ES module, no library): reads /api/v1/, keeps the overview live
 * from the event stream (`status` snapshots every 2 s and events), and drives refresh,
 * forget, sync-now and cancel. Every value goes into the page as text (textContent),
 * never as markup, so nothing an upstream or a job names can inject HTML. State-changing
 * calls send X-Regcache-Request (docs/api.md, cross-site protection).
 */
export const PAGE_JS = String.raw`const $ = (id) => document.getElementById(id);
const API = '/api/v1/';

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) { const td = document.createElement('td'); if (c instanceof Node) td.append(c); else td.textContent = c == null ? '' : String(c); tr.append(td); }
  return tr;
}
function bytes(n) {
  if (n == null) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0; while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
}
function pct(r) { return r == null ? '–' : (r * 100).toFixed(1) + ' %'; }
function when(iso) { return iso ? new Date(iso).toLocaleString() : '–'; }
async function call(path, method) {
  const init = method ? { method, headers: { 'X-Regcache-Request': '1' } } : {};
  const r = await fetch(API + path, init);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.errors && body.errors[0] && body.errors[0].message) || ('HTTP ' + r.status));
  return body;
}
function say(text) { $('live').textContent = text; }
function button(label, onClick, name) {
  const b = el('button', label, { type: 'button' });
  if (name) b.setAttribute('aria-label', name);
  b.addEventListener('click', onClick);
  return b;
}

function renderStatus(s) {
  const cards = [
    ['Blob hit ratio', pct(s.hitRatio.blob)], ['Manifest hit ratio', pct(s.hitRatio.manifest)],
    ['Bytes saved', bytes(s.bytesServed.cache)], ['From upstreams', bytes(s.bytesServed.upstream)],
    ['Store', bytes(s.store.bytes) + (s.store.maxSize ? ' of ' + bytes(s.store.maxSize) : '')],
    ['Store fill', s.store.fill == null ? 'no maxSize' : pct(s.store.fill)],
    ['Fills in flight', s.fills.length], ['Version', s.version],
  ];
  $('summary').replaceChildren(...cards.map(([k, v]) => { const d = el('div'); d.append(el('dt', k), el('dd', v)); return d; }));
  $('upstreams').tBodies[0].replaceChildren(...s.upstreams.map((u) => {
    const state = el('span', u.state, { class: u.state, 'data-upstream': u.host });
    return row([u.host, state, when(u.since), u.requests.total + ' (' + u.requests.failed + ')', u.lastError ? u.lastError.cause : '', u.rateLimitRemaining ? u.rateLimitRemaining.value : '']);
  }));
  $('fills').replaceChildren(...(s.fills.length ? s.fills.map((f) => {
    const li = el('li', f.upstream + '/' + f.repo + ' ' + f.digest.slice(0, 19) + ' ' + bytes(f.received) + (f.size ? ' of ' + bytes(f.size) : ''));
    if (f.size) li.append(' ', el('progress', null, { max: String(f.size), value: String(f.received), 'aria-label': 'fill progress' }));
    return li;
  }) : [el('li', 'none')]));
}

let reposNext;
async function loadRepos(more) {
  const q = $('q').value.trim();
  const qs = new URLSearchParams({ n: '50' });
  if (q) qs.set('q', q);
  if (more && reposNext) qs.set('last', reposNext);
  const page = await call('repositories?' + qs);
  const rows = page.repositories.map((r) => row([button(r.name, () => openRepo(r.upstream, r.repo), 'Show ' + r.name), r.tags, bytes(r.bytes), when(r.lastPull), when(r.lastPush)]));
  rows.forEach((tr) => tr.firstChild.firstChild.classList.add('link'));
  if (more) $('repos').tBodies[0].append(...rows); else $('repos').tBodies[0].replaceChildren(...rows);
  reposNext = page.next;
  $('repos-more').hidden = !page.next;
}
async function openRepo(upstream, repo) {
  const d = await call('repositories/' + upstream + '/' + repo);
  $('repo-detail').hidden = false;
  $('repo-title').textContent = d.name + (d.hosted ? ' (hosted)' : '');
  const base = 'repositories/' + upstream + '/' + repo + '/-/tags/';
  $('tags').tBodies[0].replaceChildren(...d.tags.map((t) => {
    const actions = el('span');
    if (!d.hosted) {
      actions.append(
        button('Refresh', async () => { try { const r = await call(base + t.tag + '/refresh', 'POST'); say(d.name + ':' + t.tag + (r.changed ? ' moved to ' + r.digest : ' is current')); openRepo(upstream, repo); } catch (e) { say('refresh failed: ' + e.message); } }, 'Refresh ' + t.tag),
        button('Forget', async () => { if (!confirm('Forget ' + d.name + ':' + t.tag + '? Its content stays until retention.')) return; try { await call(base + t.tag, 'DELETE'); say(d.name + ':' + t.tag + ' forgotten'); openRepo(upstream, repo); } catch (e) { say('forget failed: ' + e.message); } }, 'Forget ' + t.tag),
      );
    }
    return row([t.tag, el('code', t.digest), t.platforms.join(', '), bytes(t.bytes), when(t.lastPull), d.hosted ? when(null) : when(t.validatedAt), when(t.lastPush), t.pinned ? 'pinned by a job' : 'no', actions]);
  }));
  $('repo-title').focus();
}

async function loadJobs() {
  const { jobs } = await call('jobs');
  $('jobs-table').tBodies[0].replaceChildren(...(jobs.length ? jobs.map((j) => {
    const actions = el('span');
    actions.append(
      button('Sync now', async () => { try { await call('jobs/' + j.name + '/run', 'POST'); say(j.name + ': sync started'); loadJobs(); } catch (e) { say('sync failed to start: ' + e.message); } }, 'Sync ' + j.name + ' now'),
      button('Cancel', async () => { try { await call('jobs/' + j.name + '/cancel', 'POST'); say(j.name + ': cancelled'); loadJobs(); } catch (e) { say('cancel: ' + e.message); } }, 'Cancel ' + j.name),
      button('History', () => openJob(j.name), 'History of ' + j.name),
    );
    const status = el('span', j.state, { class: j.state, 'data-job': j.name });
    return row([j.name, j.kind, status, when(j.nextRun), j.lastRun ? when(j.lastRun.startedAt) + ' ' + (j.lastRun.result || '') : '–', actions]);
  }) : [row(['no jobs configured', '', '', '', '', ''])]));
}
async function openJob(name) {
  const j = await call('jobs/' + name);
  $('job-detail').hidden = false;
  $('job-title').textContent = j.name + ': ' + j.state;
  $('job-history').replaceChildren(...j.history.map((r) => {
    const li = el('li', when(r.startedAt) + ' ' + r.trigger + ' ' + (r.result || 'running') + ': ' + r.counts.synced + ' synced, ' + r.counts.unchanged + ' unchanged, ' + r.counts.failed + ' failed' + (r.error ? ' (' + r.error + ')' : ''));
    if (r.tags && r.tags.length) {
      const ul = el('ul');
      ul.append(...r.tags.map((t) => el('li', t.ref + ': ' + t.outcome + (t.reason ? ' (' + t.reason + ')' : ''))));
      li.append(ul);
    }
    return li;
  }));
  $('job-title').focus();
}

const seenEvents = new Set();
function addEvent(e) {
  if (seenEvents.has(e.id)) return;
  seenEvents.add(e.id);
  const text = when(e.time) + ' ' + e.type + (e.subject ? ' ' + e.subject : '') + (e.data && e.data.cause ? ': ' + e.data.cause : '');
  $('events-list').prepend(el('li', text));
  while ($('events-list').children.length > 200) $('events-list').lastChild.remove();
}

async function start() {
  $('repo-search').addEventListener('submit', (ev) => { ev.preventDefault(); loadRepos(false).catch((e) => say(e.message)); });
  $('repos-more').addEventListener('click', () => loadRepos(true).catch((e) => say(e.message)));
  renderStatus(await call('status'));
  const { events } = await call('events?n=100');
  events.forEach(addEvent);
  await Promise.all([loadRepos(false), loadJobs()]).catch((e) => say(e.message));
  // From the last event fetched on (0: every one since): none emitted meanwhile is missed.
  const after = events.reduce((m, e) => Math.max(m, Number(e.id)), 0);
  const stream = new EventSource(API + 'events/stream?status=1&after=' + after);
  stream.addEventListener('open', () => say('live'));
  stream.addEventListener('error', () => say('reconnecting…'));
  stream.addEventListener('status', (m) => renderStatus(JSON.parse(m.data)));
  for (const t of ['upstream.down', 'upstream.up', 'retention.evicted', 'digest.mismatch', 'sync.started', 'sync.succeeded', 'sync.failed', 'sync.cancelled', 'copy.started', 'copy.succeeded', 'copy.failed', 'copy.cancelled']) {
    stream.addEventListener(t, (m) => {
      addEvent(JSON.parse(m.data));
      if (t.startsWith('sync.') || t.startsWith('copy.')) loadJobs().catch(() => undefined);
    });
  }
  // Job states between events (SYNC_NOW -> SYNCING) come from a light poll.
  setInterval(() => loadJobs().catch(() => undefined), 2000);
}
start().catch((e) => say('cannot load: ' + e.message));
`;
