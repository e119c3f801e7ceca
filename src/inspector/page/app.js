// The hookhouse inspector: plain DOM, no framework, nothing loaded from elsewhere. Every value
// from a request is put in the page as text (never as HTML): webhook bodies come from outside.
'use strict';

const POLL_MS = 2000;
const SINKS_MS = 5000;
const CHART_MS = 10000;
const PAGE = 50;
// Pages examined in a row when a filter matches nothing in one (each is a bounded scan).
const AUTO_PAGES = 5;
const FAMILY_COLOURS = {
  email: '#3457d5', push: '#c2410c', sms: '#1c7c4a', in_app: '#7c3aed', web_push: '#0e7490',
  embedded: '#a16207', whatsapp: '#15803d', subscription: '#be185d', journey: '#4338ca',
  other: '#6b7280', failed: '#b3261e',
};

const state = {
  meta: null,
  filters: {},
  rows: new Map(), // seq -> summary, newest first in the table
  newest: 0,
  nextBefore: null,
  selected: null,
  tab: 'requests',
  sinks: [],
  // Bumped when the list is loaded anew: answers to requests made before are dropped.
  generation: 0,
};

const $ = (selector) => document.querySelector(selector);

// Builds an element; strings among the children become text nodes.
function el(tag, attributes = {}, ...children) {
  const node = tag === 'svg' || tag === 'rect' || tag === 'title' || tag === 'line'
    ? document.createElementNS('http://www.w3.org/2000/svg', tag)
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.setAttribute('class', value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function toast(message) {
  const box = $('#toast');
  box.textContent = message;
  box.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.remove('show'), 3500);
}

class ApiError extends Error {}

// Calls the API with the tab's token; a 401 asks for the token and retries once it is given.
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const token = sessionStorage.getItem('hookhouse-token');
  if (token) headers.Authorization = `Bearer ${token}`;
  // Relative to the page, so the inspector also works behind a proxy under a sub-path.
  const response = await fetch(path.replace(/^\//, ''), { ...options, headers });
  if (response.status === 401) {
    await askForToken(Boolean(token));
    return api(path, options);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(body.error || `${response.status} ${response.statusText}`);
  return body;
}

let tokenWanted = null;
function askForToken(refused) {
  if (!tokenWanted) {
    tokenWanted = new Promise((resolve) => {
      const dialog = $('#token-dialog');
      $('#token-error').hidden = !refused;
      $('#token').value = '';
      $('#token-form').addEventListener('submit', () => {
        sessionStorage.setItem('hookhouse-token', $('#token').value.trim());
        tokenWanted = null;
        resolve();
      }, { once: true });
      dialog.showModal();
    });
  }
  return tokenWanted;
}

function localTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

function shortTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

// The filters as query parameters; the datetime inputs are local times, sent as UTC.
function filterParams() {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(state.filters)) {
    if (!value) continue;
    if (name === 'since' || name === 'until') params.set(name, new Date(value).toISOString());
    else params.set(name, value);
  }
  return params;
}

// ---- the list ----

function outcomeBadge(outcome) {
  const words = {
    events: 'events', failed: 'failed', partial: 'partly failed', journey: 'journey call',
    duplicate: 'duplicate', pending: 'pending',
  };
  return el('span', { class: `badge ${outcome}` }, words[outcome] || outcome);
}

function eventsText(summary) {
  if (summary.events.length) {
    return summary.events.map((e) => (e.count > 1 ? `${e.name} ×${e.count}` : e.name)).join(', ');
  }
  if (summary.kind === 'journey') return `journey ${summary.journey || ''}`.trim();
  return '—';
}

function requestRow(summary, fresh) {
  return el('tr', {
    'data-seq': summary.seq,
    class: [fresh ? 'new' : '', state.selected === summary.seq ? 'selected' : ''].join(' ').trim() || null,
    onclick: () => openDetail(summary.seq),
  },
  el('td', { class: 'mono' }, summary.seq),
  el('td', { class: 'time', title: summary.received_at }, shortTime(summary.received_at)),
  el('td', { class: 'wide' }, summary.source),
  el('td', {}, eventsText(summary)),
  el('td', { class: 'who', title: summary.who || '' }, summary.who || ''),
  el('td', {}, outcomeBadge(summary.outcome)));
}

function shownText() {
  const n = state.rows.size;
  return `${n} request${n === 1 ? '' : 's'} shown`;
}

function renderStatus(text) {
  $('#list-status').textContent = text;
}

async function loadList() {
  state.generation += 1;
  state.rows.clear();
  state.nextBefore = null;
  $('#requests tbody').replaceChildren();
  renderStatus('Loading…');
  try {
    await loadOlder(true);
  } catch (error) {
    renderStatus(error.message);
  }
}

// Appends the next page; a page a bounded scan ended empty leads on, a few times.
async function loadOlder(first = false) {
  let pages = 0;
  let added = 0;
  do {
    const params = filterParams();
    params.set('limit', PAGE);
    if (state.nextBefore !== null) params.set('before', state.nextBefore);
    const page = await api(`/api/requests?${params}`);
    if (first && pages === 0) state.newest = Math.max(state.newest, page.last_seq);
    const body = $('#requests tbody');
    for (const summary of page.requests) {
      if (state.rows.has(summary.seq)) continue;
      state.rows.set(summary.seq, summary);
      body.append(requestRow(summary, false));
      added += 1;
    }
    state.nextBefore = page.next_before;
    pages += 1;
  } while (added === 0 && state.nextBefore !== null && pages < AUTO_PAGES);
  $('#older').hidden = state.nextBefore === null;
  if (state.rows.size === 0) {
    renderStatus(state.nextBefore === null
      ? (Object.values(state.filters).some(Boolean) ? 'No request matches these filters.' : 'No requests yet. Point Iterable at the webhook URL, or run `hookhouse simulate`.')
      : `Nothing matched down to request #${state.nextBefore}; look further with “Older requests”.`);
  } else {
    renderStatus(`${shownText()}${state.nextBefore === null ? ', back to the first' : ''}.`);
  }
}

// New requests since the newest shown, on top.
async function pollNew() {
  if (!$('#live').checked || state.tab !== 'requests') return;
  const generation = state.generation;
  const params = filterParams();
  params.set('after', state.newest);
  params.set('limit', 200);
  const page = await api(`/api/requests?${params}`);
  if (generation !== state.generation) return; // the filters changed meanwhile
  if (page.next_before !== null) {
    // More arrived than one page holds: start again from the newest rather than leave a gap.
    toast('Many requests arrived: the list starts again from the newest');
    await loadList();
    return;
  }
  state.newest = Math.max(state.newest, page.last_seq);
  const body = $('#requests tbody');
  const fresh = page.requests.filter((summary) => !state.rows.has(summary.seq));
  for (const summary of fresh.reverse()) {
    state.rows.set(summary.seq, summary);
    body.prepend(requestRow(summary, true));
  }
  if (fresh.length) renderStatus(`${shownText()}.`);
  // Rows pending a moment ago have their outcome by now: one call for the range they span.
  const pending = [...state.rows.keys()].filter((seq) => state.rows.get(seq).outcome === 'pending');
  if (!pending.length) return;
  const low = Math.min(...pending);
  const high = Math.max(...pending);
  const range = new URLSearchParams({ after: low - 1, before: high + 1, limit: 200 });
  const fresher = await api(`/api/requests?${range}`);
  if (generation !== state.generation) return;
  for (const summary of fresher.requests) {
    if (!state.rows.has(summary.seq) || summary.outcome === 'pending') continue;
    state.rows.set(summary.seq, summary);
    const row = body.querySelector(`tr[data-seq="${summary.seq}"]`);
    if (row) row.replaceWith(requestRow(summary, false));
  }
}

// ---- the detail ----

function prettyBody(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

// The columns people look for first, in this order; the rest follow alphabetically.
const FIRST_COLUMNS = ['event_name', 'email', 'user_id', 'created_at', 'campaign_id', 'campaign_name', 'template_id', 'message_id', 'journey', 'method'];

function fieldList(object, skip = []) {
  const rank = (name) => (FIRST_COLUMNS.includes(name) ? FIRST_COLUMNS.indexOf(name) : FIRST_COLUMNS.length);
  const entries = Object.entries(object)
    .filter(([name, value]) => value !== null && !skip.includes(name))
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
  return el('dl', {}, entries.map(([name, value]) => [
    el('dt', {}, name),
    el('dd', { class: typeof value === 'object' ? 'mono' : null },
      typeof value === 'object' ? JSON.stringify(value) : String(value)),
  ]));
}

// A shell command that sends the request again to the webhook port. Credentials are never
// stored, so the source's are left for the user to fill in.
function curlCommand(detail) {
  const request = detail.request;
  const quote = (text) => `'${String(text).replace(/'/g, "'\\''")}'`;
  const url = state.meta.webhook_base + request.path + (request.query ? `?${request.query}` : '');
  const parts = [`curl -X ${request.method} ${quote(url)}`];
  // The body is stored decoded, so its encoding headers would be wrong.
  const skip = ['content-length', 'content-encoding', 'transfer-encoding', 'host', 'x-forwarded-for', 'x-forwarded-proto', 'x-real-ip'];
  for (const [name, value] of Object.entries(request.headers || {})) {
    if (skip.includes(name.toLowerCase())) continue;
    for (const one of Array.isArray(value) ? value : [value]) parts.push(`-H ${quote(`${name}: ${one}`)}`);
  }
  const source = (state.meta.sources || []).find((s) => s.name === request.source);
  if (source && source.auth !== 'none') parts.push(`-H ${quote('Authorization: <the source\'s credentials>')}`);
  // The body goes through a pipe: printf is a shell builtin, so a large body does not meet
  // the limit on one argument of a program.
  if (request.body_base64) {
    return `printf %s ${quote(request.body_base64)} | base64 -d | ${parts.join(' ')} --data-binary @-`;
  }
  if (!request.body) return parts.join(' \\\n  ');
  return `printf %s ${quote(request.body)} | ${parts.join(' \\\n  ')} \\\n  --data-binary @-`;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Without the clipboard API (a plain-HTTP page on another name): select it for the user.
    const area = el('textarea', { readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
}

// Asks first when other sinks would load again from `from`, since that may be much of history.
function replayConfirmed(from, what) {
  const others = state.sinks.filter((sink) => sink.sink !== 'sqlite');
  if (!others.length) return true;
  const names = others.map((sink) => sink.sink).join(', ');
  return window.confirm(`Replay ${what}? ${names} will load again every request from ${from} on.`);
}

async function replay(body, what) {
  try {
    const report = await api('/api/replay', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const rewound = report.rewound_to ? `; other sinks reload from #${report.rewound_to}` : '';
    toast(`Replayed ${what}: ${report.events} events, failures ${report.failures_before} → ${report.failures_after}${rewound}`);
    return report;
  } catch (error) {
    toast(`Replay failed: ${error.message}`);
    return null;
  }
}

function renderDetail(detail) {
  const { summary, request } = detail;
  const pane = $('#detail');
  // Refusals by a sink are the sink's to retry; a replay reads what the normaliser failed.
  const canReplay = detail.failures.some((failure) => failure.sink === null) && !summary.body_dropped;
  const header = el('header', {},
    el('h2', {}, `Request #${summary.seq}`),
    outcomeBadge(summary.outcome),
    el('button', { type: 'button', class: 'quiet', id: 'copy-curl', onclick: async () => {
      await copyText(curlCommand(detail));
      toast(request.path.startsWith('/hooks/')
        ? 'Copied as curl: put the secret URL back in place of the stored path'
        : 'Copied as curl');
    } }, 'Copy as curl'),
    canReplay ? el('button', { type: 'button', id: 'replay-one', onclick: async () => {
      if (!replayConfirmed(`#${summary.seq}`, `request #${summary.seq}`)) return;
      if (await replay({ seq: summary.seq }, `request #${summary.seq}`)) {
        await openDetail(summary.seq);
        refreshRow(summary.seq);
        loadFailures();
      }
    } }, 'Replay') : null,
    el('button', { type: 'button', class: 'quiet', id: 'close-detail', onclick: closeDetail, 'aria-label': 'Close' }, '✕'));

  const facts = el('dl', {},
    el('dt', {}, 'received'), el('dd', {}, localTime(summary.received_at)),
    el('dt', {}, 'source'), el('dd', {}, summary.source),
    el('dt', {}, 'request'), el('dd', { class: 'mono' }, `${request.method} ${request.path}${request.query ? `?${request.query}` : ''}`),
    el('dt', {}, 'from'), el('dd', {}, request.remote_addr || '—'),
    el('dt', {}, 'body'), el('dd', {}, `${summary.body_bytes} bytes, ${request.content_type || 'no content type'}${summary.body_dropped ? ' (dropped once loaded: drop_raw_bodies)' : ''}`),
    el('dt', {}, 'loaded by'), el('dd', {}, detail.loaded_by.map((s) => `${s.sink} ${s.loaded ? '✓' : '…'}`).join(', ') || '—'));

  const sections = [header, facts];
  if (detail.failures.length) {
    sections.push(el('h3', {}, 'Failures'));
    for (const failure of detail.failures) {
      sections.push(el('div', { class: 'row-card' },
        el('div', { class: 'reason' }, failure.reason),
        el('div', { class: 'status' }, `stage ${failure.stage}${failure.sink ? `, refused by ${failure.sink}` : ''}`)));
    }
  }
  if (detail.events.length) {
    sections.push(el('h3', {}, `Events (${detail.events.length})`));
    for (const event of detail.events) sections.push(el('div', { class: 'row-card event-row' }, fieldList(event, ['raw_seq', 'data'])));
  }
  if (detail.carried_earlier.length) {
    sections.push(el('h3', {}, 'Already stored from an earlier request'));
    sections.push(el('ul', {}, detail.carried_earlier.map((c) => el('li', {},
      el('a', { href: `#/requests/${c.first_seq}` }, `request #${c.first_seq}`), ` (event ${c.event_id.slice(0, 12)}…)`))));
  }
  for (const call of detail.journey_calls) {
    sections.push(el('h3', {}, 'Journey call'));
    sections.push(el('div', { class: 'row-card' }, fieldList(call)));
  }
  sections.push(el('h3', {}, 'Body'));
  sections.push(el('pre', { id: 'detail-body' }, request.body_base64
    ? `(not UTF-8; base64) ${request.body_base64}`
    : prettyBody(request.body || '')));
  sections.push(el('h3', {}, 'Headers'));
  sections.push(el('pre', {}, JSON.stringify(request.headers || {}, null, 2)));
  pane.replaceChildren(...sections);
  pane.hidden = false;
  $('.split').classList.add('open');
}

async function openDetail(seq) {
  state.selected = seq;
  if (location.hash !== `#/requests/${seq}`) history.replaceState(null, '', `#/requests/${seq}`);
  for (const row of document.querySelectorAll('#requests tbody tr')) {
    row.classList.toggle('selected', Number(row.dataset.seq) === seq);
  }
  try {
    const detail = await api(`/api/requests/${seq}`);
    if (state.selected === seq) renderDetail(detail);
  } catch (error) {
    toast(error.message);
  }
}

function closeDetail() {
  state.selected = null;
  $('#detail').hidden = true;
  $('.split').classList.remove('open');
  history.replaceState(null, '', location.pathname);
  for (const row of document.querySelectorAll('#requests tbody tr.selected')) row.classList.remove('selected');
}

async function refreshRow(seq) {
  const detail = await api(`/api/requests/${seq}`).catch(() => null);
  const row = document.querySelector(`#requests tbody tr[data-seq="${seq}"]`);
  if (detail && row) {
    state.rows.set(seq, detail.summary);
    row.replaceWith(requestRow(detail.summary, false));
  }
}

// ---- failures ----

async function loadFailures() {
  try {
    const page = await api('/api/failed?limit=100');
    $('#failure-count').textContent = page.failures.length ? (page.next_before ? '100+' : page.failures.length) : '';
    const body = $('#failures tbody');
    body.replaceChildren(...page.failures.map((failure) => el('tr', { 'data-seq': failure.raw_seq },
      el('td', { class: 'mono' }, el('a', { href: `#/requests/${failure.raw_seq}` }, failure.raw_seq)),
      el('td', { title: failure.received_at }, shortTime(failure.received_at)),
      el('td', { class: 'wide' }, failure.sink ? `${failure.stage} (${failure.sink})` : failure.stage),
      el('td', {}, el('div', { class: 'reason' }, failure.reason), el('pre', {}, failure.body_preview)),
      el('td', {}, failure.sink ? null : el('button', { type: 'button', class: 'replay', onclick: async (event) => {
        event.stopPropagation();
        if (!replayConfirmed(`#${failure.raw_seq}`, `request #${failure.raw_seq}`)) return;
        if (await replay({ seq: failure.raw_seq }, `request #${failure.raw_seq}`)) {
          await loadFailures();
          refreshRow(failure.raw_seq);
        }
      } }, 'Replay')))));
    $('#failures-status').textContent = page.failures.length ? '' : 'No failures: every request became rows.';
  } catch (error) {
    $('#failures-status').textContent = error.message;
  }
}

// ---- sinks and the chart ----

async function loadSinks() {
  const report = await api('/api/sinks');
  state.sinks = report.sinks;
  $('#sinks').replaceChildren(...report.sinks.map((sink) => {
    const failing = Boolean(sink.last_error);
    const behind = sink.lag_requests > 0;
    const text = failing ? `${sink.sink}: failing` : behind ? `${sink.sink}: ${sink.lag_requests} behind (${sink.lag_seconds.toFixed(1)} s)` : `${sink.sink}: up to date`;
    return el('li', { class: failing ? 'failing' : behind ? 'behind' : null, title: sink.last_error || `at seq ${sink.position}` }, text);
  }));
}

async function loadChart() {
  const stats = await api('/api/stats?window=1h&bucket=minute');
  // A busy store's first hour is counted over a few calls, newest minutes first.
  if (stats.counted_from) setTimeout(() => loadChart().catch(() => {}), 300);
  const svg = $('#chart');
  const width = 600;
  const height = 120;
  const minutes = 60;
  const start = Math.floor(new Date(stats.to).getTime() / 60000) - (minutes - 1);
  const buckets = Array.from({ length: minutes }, () => ({}));
  const families = new Set();
  for (const count of stats.counts) {
    const index = Math.floor(new Date(count.at).getTime() / 60000) - start;
    if (index < 0 || index >= minutes) continue;
    buckets[index][count.family] = (buckets[index][count.family] || 0) + count.count;
    families.add(count.family);
  }
  const totals = buckets.map((bucket) => Object.values(bucket).reduce((a, b) => a + b, 0));
  const peak = Math.max(1, ...totals);
  const slot = width / minutes;
  const bars = [];
  buckets.forEach((bucket, index) => {
    let y = height;
    const at = new Date((start + index) * 60000);
    for (const family of Object.keys(FAMILY_COLOURS)) {
      const n = bucket[family];
      if (!n) continue;
      const h = Math.max(1, (n / peak) * (height - 14));
      y -= h;
      bars.push(el('rect', {
        x: (index * slot + 1).toFixed(1), y: y.toFixed(1), width: (slot - 2).toFixed(1), height: h.toFixed(1),
        fill: FAMILY_COLOURS[family], 'data-family': family,
      }, el('title', {}, `${at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}: ${n} ${family}`)));
    }
  });
  svg.replaceChildren(el('line', { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, stroke: '#e3e3e0' }), ...bars);
  const total = totals.reduce((a, b) => a + b, 0);
  $('#chart-note').textContent = `${total} in the hour, at most ${totals.length ? Math.max(...totals) : 0} a minute`;
  $('#legend').replaceChildren(...[...families].sort().map((family) => {
    const swatch = el('i');
    swatch.style.background = FAMILY_COLOURS[family] || FAMILY_COLOURS.other;
    return el('li', {}, swatch, family);
  }));
}

// ---- wiring ----

function showTab(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll('.tabs button')) button.classList.toggle('active', button.dataset.tab === tab);
  $('#requests-view').hidden = tab !== 'requests';
  $('#failures-view').hidden = tab !== 'failures';
  if (tab === 'failures') loadFailures();
}

function routeFromHash() {
  const match = location.hash.match(/^#\/requests\/(\d+)$/);
  if (match) {
    showTab('requests');
    openDetail(Number(match[1]));
  }
}

// Runs `work` now and every `ms` while the tab is visible, and at once when it shows again.
function every(ms, work) {
  const run = () => {
    if (document.hidden) return;
    work().catch((error) => {
      if (!(error instanceof ApiError)) console.warn(error);
    });
  };
  run();
  setInterval(run, ms);
  document.addEventListener('visibilitychange', run);
}

async function start() {
  state.meta = await api('/api/meta');
  const sources = $('#filters select[name=source]');
  for (const source of state.meta.sources) sources.append(el('option', { value: source.name }, source.name));
  $('#event-names').replaceChildren(...state.meta.event_names.map((name) => el('option', { value: name })));

  $('#filters').addEventListener('submit', (event) => {
    event.preventDefault();
    state.filters = Object.fromEntries(new FormData(event.target));
    loadList();
  });
  $('#filters').addEventListener('reset', () => {
    state.filters = {};
    setTimeout(loadList);
  });
  $('#older').addEventListener('click', () => loadOlder().catch((error) => renderStatus(error.message)));
  for (const button of document.querySelectorAll('.tabs button')) button.addEventListener('click', () => showTab(button.dataset.tab));
  $('#token-dialog').addEventListener('cancel', (event) => event.preventDefault());
  $('#replay-all').addEventListener('click', async () => {
    if (!replayConfirmed('the oldest failure', 'every failure')) return;
    if (await replay({ failed: true }, 'every failure')) {
      await loadFailures();
      loadList();
    }
  });
  window.addEventListener('hashchange', routeFromHash);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && state.selected !== null) closeDetail();
  });

  await loadList();
  routeFromHash();
  every(POLL_MS, pollNew);
  every(SINKS_MS, loadSinks);
  every(CHART_MS, loadChart);
  every(CHART_MS, loadFailures);
}

start().catch((error) => renderStatus(`The inspector could not start: ${error.message}`));
