// camsync's status page: the grid of cameras × targets from GET /v1/cameras, kept live by
// GET /v1/events (read with fetch, so the API token travels in a header: EventSource cannot
// send one). Events only say which camera changed; the API stays the one source of truth.
'use strict';

(() => {
  const TOKEN_KEY = 'camsync.api-token';
  // Worst first: "problems first" sorts by this, and the counts follow it.
  const STATES = [
    'target-down', 'camera-offline', 'degraded', 'failed', 'recovering', 'failing',
    'unverified', 'pending', 'not-owned', 'healthy', 'synced', 'disabled', 'not-wanted',
  ];
  const WORDS = {
    'target-down': 'target down', 'camera-offline': 'camera offline', 'not-owned': 'not owned',
    'not-wanted': 'not on this target', synced: 'synced (unchecked)',
  };
  const TIMELINE_HOURS = 6;
  // More changed cameras than this at once: one read of everything instead of a read of each.
  const BATCH = 200;
  // The longest list of names in one read: percent-encoded, it stays within the 4 KiB the
  // API takes as a request target.
  const NAMES_PER_READ = 1200;

  const $ = (id) => document.getElementById(id);
  const word = (state) => WORDS[state] || state;

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let tokenEntered = null;
  let targets = [];
  const cameras = new Map();
  const rows = new Map();
  const expanded = new Set();
  const changed = new Set();
  let everythingChanged = false;
  let flushing = false;
  let countsShown = '';

  class Unauthorized extends Error {}

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else node.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function ago(iso) {
    if (!iso) return '';
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 60) return `${Math.round(seconds)} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  function time(iso) {
    return el('time', { datetime: iso, title: iso, text: new Date(iso).toLocaleTimeString() });
  }

  function notice(text, isError) {
    const node = $('notice');
    node.textContent = text;
    node.classList.toggle('error', Boolean(isError));
  }

  // --- the API, with the token --------------------------------------------------------------

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    if (token) headers.set('Authorization', `Bearer ${token}`);
    const response = await fetch(path, {
      ...options, headers, cache: 'no-store', credentials: 'omit',
    });
    if (response.status === 401) {
      askToken();
      throw new Unauthorized('this camsync needs its API token');
    }
    return response;
  }

  async function json(path, options) {
    const response = await api(path, options);
    const body = await response.json().catch(() => ({}));
    if (!response.ok && !(options && options.acceptFailure)) {
      throw new Error(body.error || `${path}: HTTP ${response.status}`);
    }
    return { status: response.status, body };
  }

  function askToken() {
    $('token-section').hidden = false;
    if (document.activeElement !== $('token')) $('token').focus();
    if (!tokenEntered) {
      tokenEntered = {};
      tokenEntered.promise = new Promise((resolve) => { tokenEntered.resolve = resolve; });
    }
  }

  function useToken(event) {
    event.preventDefault();
    token = $('token').value.trim();
    $('token').value = '';
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-section').hidden = true;
    notice('Token set for this tab.');
    if (tokenEntered) {
      tokenEntered.resolve();
      tokenEntered = null;
    }
    refreshAll().catch(report);
  }

  function report(error) {
    if (error instanceof Unauthorized) notice(`${error.message}: enter it above.`, true);
    else notice(String(error.message || error), true);
  }

  // --- the grid ------------------------------------------------------------------------------

  function cellState(pair) {
    if (!pair.wanted) return 'not-wanted';
    if (pair.degraded) return 'degraded';
    if (pair.health) return pair.health.state;
    if (!pair.owned) return 'not-owned';
    if (pair.last_sync && pair.last_sync.outcome === 'failed') return 'failed';
    return pair.confirmed ? 'synced' : 'pending';
  }

  function worst(camera) {
    let rank = STATES.length;
    for (const pair of camera.targets) rank = Math.min(rank, STATES.indexOf(cellState(pair)));
    return rank;
  }

  function cell(camera, pair, target) {
    const state = cellState(pair);
    const td = el('td', { 'data-target': pair.target, 'data-state': state });
    td.append(el('span', { class: `badge state-${state}`, text: word(state) }));
    if (pair.health && pair.health.attempt) {
      td.append(el('span', { class: 'line', text: `attempt ${pair.health.attempt}` }));
    }
    if (pair.last_transition) {
      const t = pair.last_transition;
      td.append(el('span', {
        class: 'line', title: t.at, text: `${word(t.from)} → ${word(t.to)} ${ago(t.at)}: ${t.reason}`,
      }));
    }
    if (pair.last_recovery) {
      const r = pair.last_recovery;
      td.append(el('span', {
        class: 'line', title: r.at, text: `recovered in ${r.seconds.toFixed(1)} s, ${ago(r.at)}`,
      }));
    }
    if (pair.last_sync) {
      const s = pair.last_sync;
      td.append(el('span', {
        class: 'line', title: s.detail || s.at, text: `last sync: ${s.action} ${s.outcome}, ${ago(s.at)}`,
      }));
    }
    if (pair.wanted) {
      td.append(el('span', {
        class: 'line',
        text: pair.owned ? (pair.confirmed ? 'owned, confirmed' : 'owned, not confirmed') : 'not owned by camsync',
      }));
      const actions = el('span', { class: 'cell-actions' });
      const button = el('button', {
        type: 'button', class: 'reconnect', 'data-camera': camera.name, 'data-target': pair.target,
        'aria-label': `Reconnect ${camera.name} on ${pair.target}`, text: 'Reconnect',
      });
      actions.append(button);
      if (target && target.player) {
        actions.append(el('a', {
          href: target.player + encodeURIComponent(camera.name), target: '_blank',
          rel: 'noopener noreferrer', text: 'Play',
          'aria-label': `Play ${camera.name} on ${pair.target}`,
        }));
      }
      td.append(actions);
    }
    return td;
  }

  function row(camera) {
    const tr = el('tr', { class: 'camera', 'data-camera': camera.name });
    const open = expanded.has(camera.name);
    const name = el('th', { scope: 'row' },
      el('button', {
        type: 'button', class: 'name-button', 'aria-expanded': String(open),
        'data-camera': camera.name, text: camera.name,
      }),
      el('span', {
        class: 'line profile',
        text: `${camera.enabled ? '' : 'disabled · '}${camera.profile} · ${camera.sources.length} source${camera.sources.length === 1 ? '' : 's'}${camera.resolved ? ` · stream ${camera.resolved.state || 'unknown'} (${camera.resolved.resolver})` : ''}`,
      }));
    tr.append(name);
    for (const target of targets) {
      const pair = camera.targets.find((p) => p.target === target.name);
      tr.append(pair ? cell(camera, pair, target) : el('td', { text: '—' }));
    }
    return tr;
  }

  function renderHead() {
    const head = $('grid-head');
    head.replaceChildren(el('th', { scope: 'col', text: 'Camera' }));
    for (const target of targets) {
      head.append(el('th', { scope: 'col', text: target.name === target.kind ? target.name : `${target.name} (${target.kind})` }));
    }
  }

  // Replaces a camera's row (and its open details) in place.
  function update(camera) {
    cameras.set(camera.name, camera);
    const fresh = row(camera);
    const old = rows.get(camera.name);
    if (old) {
      old.replaceWith(fresh);
      const details = fresh.nextElementSibling;
      if (details && details.classList.contains('details')) loadDetails(camera.name, details);
    } else {
      $('grid-body').append(fresh);
    }
    rows.set(camera.name, fresh);
    applyFilter(fresh);
  }

  function renderAll(view) {
    const sameTargets = JSON.stringify(view.targets) === JSON.stringify(targets);
    targets = view.targets;
    if (!sameTargets) renderHead();
    const body = $('grid-body');
    if (!sameTargets || rows.size === 0) {
      body.replaceChildren();
      rows.clear();
    }
    const seen = new Set();
    for (const camera of view.cameras) {
      seen.add(camera.name);
      update(camera);
    }
    for (const [name, tr] of rows) {
      if (seen.has(name)) continue;
      const details = tr.nextElementSibling;
      if (details && details.classList.contains('details')) details.remove();
      tr.remove();
      rows.delete(name);
      cameras.delete(name);
      expanded.delete(name);
    }
    if (view.cameras.length === 0) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: String(targets.length + 1), text: 'No cameras in the inventory.' })));
    }
    renderRejected(view.daemon.rejected);
    renderSummary(view);
    sortRows();
    renderCounts();
    // For the page-load benchmark: the first complete grid.
    if (performance.getEntriesByName('camsync-grid').length === 0) performance.mark('camsync-grid');
  }

  function renderRejected(rejected) {
    $('rejected-section').hidden = rejected.length === 0;
    $('rejected').replaceChildren(...rejected.map((r) => el('li', {},
      el('strong', { text: r.camera }), ` — ${r.location}: ${r.reason}`,
      r.kept ? ' (its last good version stays in force)' : '')));
  }

  function renderSummary(view) {
    const d = view.daemon;
    const queued = Object.entries(view.queues || {})
      .map(([name, q]) => `${name}: ${q.waiting.recover + q.waiting.change + q.waiting.resync} waiting`)
      .join(', ');
    $('summary').textContent = `${d.cameras} cameras · ${d.syncs} syncs, last ${d.last_sync_ok === false ? 'failed' : 'ok'} ${ago(d.last_sync_at)}`
      + (queued ? ` · ${queued}` : '')
      + (d.last_source_error ? ` · source error: ${d.last_source_error}` : '');
  }

  function renderCounts() {
    const counts = new Map();
    for (const camera of cameras.values()) {
      for (const pair of camera.targets) {
        const state = cellState(pair);
        if (state !== 'not-wanted') counts.set(state, (counts.get(state) || 0) + 1);
      }
    }
    const chosen = $('filter-state').value;
    // Redrawn only when a number changed: touching the nodes above the grid re-lays it out.
    const key = `${chosen}|${[...counts].join()}`;
    if (key === countsShown) return;
    countsShown = key;
    const buttons = STATES.filter((s) => counts.has(s)).map((state) => el('button', {
      type: 'button', class: `badge state-${state}`, 'data-state': state,
      'aria-pressed': String(chosen === state), text: `${word(state)}: ${counts.get(state)}`,
    }));
    $('counts').replaceChildren(...(buttons.length ? buttons : ['No streams yet.']));
    const select = $('filter-state');
    const options = [el('option', { value: '', text: 'any' })]
      .concat(STATES.filter((s) => counts.has(s) || s === chosen).map((s) => el('option', { value: s, text: word(s) })));
    select.replaceChildren(...options);
    select.value = chosen;
  }

  function applyFilter(tr) {
    const name = $('filter-name').value.trim().toLowerCase();
    const state = $('filter-state').value;
    const camera = cameras.get(tr.dataset.camera);
    const visible = camera
      && (!name || camera.name.toLowerCase().includes(name))
      && (!state || camera.targets.some((p) => cellState(p) === state));
    tr.hidden = !visible;
    const details = tr.nextElementSibling;
    if (details && details.classList.contains('details')) details.hidden = !visible;
  }

  function order(a, b) {
    if ($('sort').value === 'problems') {
      const d = worst(cameras.get(a)) - worst(cameras.get(b));
      if (d !== 0) return d;
    }
    return a.localeCompare(b);
  }

  function neighbour(tr, direction) {
    let node = tr[direction];
    while (node && !node.classList.contains('camera')) node = node[direction];
    return node;
  }

  // After some rows changed: sorts again only if one of them is now out of place (a state
  // change under "problems first"); moving every row costs a layout of the whole grid.
  function keepOrder(names) {
    const misplaced = names.some((name) => {
      const tr = rows.get(name);
      if (!tr) return false;
      const before = neighbour(tr, 'previousElementSibling');
      const after = neighbour(tr, 'nextElementSibling');
      return (before && order(before.dataset.camera, name) > 0)
        || (after && order(name, after.dataset.camera) > 0);
    });
    if (misplaced) sortRows();
  }

  function sortRows() {
    const names = [...rows.keys()].sort(order);
    const body = $('grid-body');
    const fragment = document.createDocumentFragment();
    for (const name of names) {
      const tr = rows.get(name);
      const details = tr.nextElementSibling;
      fragment.append(tr);
      if (details && details.classList.contains('details')) fragment.append(details);
    }
    body.append(fragment);
  }

  function filterAll() {
    for (const tr of rows.values()) applyFilter(tr);
    renderCounts();
  }

  // --- a camera's history --------------------------------------------------------------------

  function describe(e) {
    switch (e.type) {
      case 'health': return `${e.target}: ${word(e.from)} → ${word(e.to)} (${e.reason})`;
      case 'recovery': return `${e.target}: recovered in ${e.recovery_seconds.toFixed(1)} s`;
      case 'sync_action': return `${e.target}: ${e.action} ${e.outcome} (${e.reason})${e.detail ? ` — ${e.detail}` : ''}`;
      case 'reconnect': return `${e.target}: reconnect ${e.outcome}${e.detail ? ` — ${e.detail}` : ''}`;
      case 'degraded': return `${e.target}: ${e.degraded ? 'degraded' : 'no longer degraded'} — ${e.detail}`;
      case 'stream': return `${e.resolver}: stream ${e.state}, generation ${e.generation}${e.detail ? ` — ${e.detail}` : ''}`;
      case 'error': return `${e.target || ''} error: ${e.message}`;
      default: return e.type;
    }
  }

  // The health of one target over the last hours, as spans of state.
  function timeline(events, target, current) {
    const end = Date.now();
    const start = end - TIMELINE_HOURS * 3600 * 1000;
    const changes = events.filter((e) => e.type === 'health' && e.target === target)
      .map((e) => ({ at: Date.parse(e.time), from: e.from, to: e.to }));
    const bar = el('div', { class: 'timeline', role: 'img' });
    const spans = [];
    const before = changes.filter((c) => c.at <= start).pop();
    let state = before ? before.to : (changes.find((c) => c.at > start) || { from: current }).from;
    let from = start;
    for (const c of changes.filter((x) => x.at > start)) {
      spans.push({ state, from, to: c.at });
      state = c.to;
      from = c.at;
    }
    spans.push({ state, from, to: end });
    const words = [];
    for (const s of spans) {
      const share = ((s.to - s.from) / (end - start)) * 100;
      if (share <= 0) continue;
      const span = el('span', {
        class: `state-${s.state}`,
        title: `${word(s.state)} from ${new Date(s.from).toLocaleTimeString()} to ${new Date(s.to).toLocaleTimeString()}`,
      });
      span.style.width = `${share}%`;
      bar.append(span);
      words.push(`${word(s.state)} from ${new Date(s.from).toLocaleTimeString()}`);
    }
    bar.setAttribute('aria-label', `${target}, last ${TIMELINE_HOURS} hours: ${words.join(', ')}`);
    return bar;
  }

  async function loadDetails(name, details) {
    const camera = cameras.get(name);
    const cellNode = details.firstElementChild;
    try {
      const { body } = await json(`/v1/cameras/${encodeURIComponent(name)}/events`);
      const events = body.events || [];
      const parts = [];
      for (const pair of camera.targets.filter((p) => p.wanted)) {
        parts.push(el('span', { class: 'timeline-label', text: `${pair.target}: last ${TIMELINE_HOURS} hours` }));
        parts.push(timeline(events, pair.target, pair.health ? pair.health.state : cellState(pair)));
      }
      const list = el('ol', { class: 'events', reversed: true });
      for (const e of events.slice(-40).reverse()) list.append(el('li', {}, time(e.time), describe(e)));
      if (events.length === 0) list.append(el('li', { text: 'No events since camsync started.' }));
      cellNode.replaceChildren(...parts, el('h3', { class: 'timeline-label', text: 'Recent events' }), list);
    } catch (error) {
      cellNode.replaceChildren(`Cannot load the history: ${error.message}`);
    }
  }

  function toggle(name) {
    const tr = rows.get(name);
    if (!tr) return;
    const button = tr.querySelector('.name-button');
    const next = tr.nextElementSibling;
    if (expanded.has(name)) {
      expanded.delete(name);
      if (next && next.classList.contains('details')) next.remove();
      button.setAttribute('aria-expanded', 'false');
      return;
    }
    expanded.add(name);
    button.setAttribute('aria-expanded', 'true');
    const details = el('tr', { class: 'details', 'data-camera': name },
      el('td', { colspan: String(targets.length + 1), text: 'Loading the history…' }));
    tr.after(details);
    loadDetails(name, details);
  }

  // --- reading --------------------------------------------------------------------------------

  async function refreshAll() {
    const { body } = await json('/v1/cameras');
    renderAll(body);
  }

  // Reads the cameras `names` (several requests if the list is long) and redraws their rows.
  async function refreshCameras(names) {
    const lists = [];
    let list = '';
    for (const name of names) {
      if (list && list.length + name.length + 1 > NAMES_PER_READ) {
        lists.push(list);
        list = '';
      }
      list = list ? `${list},${name}` : name;
    }
    lists.push(list);
    const views = await Promise.all(lists.map((l) => json(`/v1/cameras?names=${encodeURIComponent(l)}`)));
    for (const { body } of views) {
      for (const camera of body.cameras) update(camera);
      renderSummary(body);
    }
  }

  async function flush() {
    if (flushing) return;
    flushing = true;
    try {
      while (everythingChanged || changed.size) {
        if (everythingChanged || changed.size > BATCH) {
          everythingChanged = false;
          changed.clear();
          await refreshAll();
        } else {
          const names = [...changed];
          changed.clear();
          await refreshCameras(names);
          keepOrder(names);
          renderCounts();
        }
      }
    } catch (error) {
      report(error);
    } finally {
      flushing = false;
    }
  }

  function handle(event) {
    if (event.camera) changed.add(event.camera);
    else if (['inventory_loaded', 'sync_finished', 'server_restarted', 'missed'].includes(event.type)) everythingChanged = true;
    else return;
    flush();
  }

  function connection(live, text) {
    const node = $('connection');
    node.textContent = text;
    node.classList.toggle('live', live);
    node.classList.toggle('down', !live);
  }

  // Follows the event stream for as long as the tab is open; reconnects after a daemon restart.
  async function follow() {
    let wait = 500;
    for (;;) {
      try {
        const response = await api('/v1/events', { headers: { Accept: 'text/event-stream' } });
        if (!response.ok || !response.body) throw new Error(`events: HTTP ${response.status}`);
        await refreshAll();
        connection(true, 'Live');
        notice('');
        wait = 500;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
            if (data) handle(JSON.parse(data));
          }
        }
        connection(false, 'Disconnected: camsync closed the event stream; reconnecting…');
      } catch (error) {
        if (error instanceof Unauthorized) {
          connection(false, 'Waiting for the API token');
          report(error);
          if (tokenEntered) await tokenEntered.promise;
          continue;
        }
        connection(false, `Disconnected (${error.message}); reconnecting in ${Math.round(wait / 1000)} s…`);
      }
      await new Promise((resolve) => { setTimeout(resolve, wait); });
      wait = Math.min(wait * 2, 8000);
    }
  }

  // --- actions --------------------------------------------------------------------------------

  async function busy(button, work) {
    button.disabled = true;
    try {
      await work();
    } catch (error) {
      report(error);
    } finally {
      button.disabled = false;
    }
  }

  async function syncNow() {
    const { body } = await json('/v1/sync', { method: 'POST' });
    notice(`Sync requested (#${body.id})…`);
    for (let i = 0; i < 600; i += 1) {
      const { body: result } = await json(`/v1/syncs/${body.id}`);
      if (result.state === 'done') {
        notice(`Sync #${body.id} ${result.result && result.result.ok === false ? 'finished with failures' : 'done'}.`);
        return;
      }
      await new Promise((resolve) => { setTimeout(resolve, 200); });
    }
    notice(`Sync #${body.id} is still running.`);
  }

  async function reconnect(name, target) {
    notice(`Reconnecting ${name} on ${target}…`);
    const { status, body } = await json(
      `/v1/cameras/${encodeURIComponent(name)}/reconnect?target=${encodeURIComponent(target)}`,
      { method: 'POST', acceptFailure: true },
    );
    if (!body.targets) throw new Error(body.error || `HTTP ${status}`);
    const lines = body.targets.map((t) => `${t.target}: ${t.outcome}${t.detail ? ` (${t.detail})` : ''}`);
    notice(`Reconnect ${name}: ${lines.join('; ')}`, status >= 400);
  }

  const SYMBOLS = {
    create: ['+', 'plan-add'], adopt: ['+', 'plan-add'], update: ['~', 'plan-change'],
    recover: ['↻', 'plan-change'], delete: ['−', 'plan-remove'], hold: ['=', 'plan-other'],
    forget: ['·', 'plan-other'],
  };

  async function showPlan() {
    const { body } = await json('/v1/plan');
    const parts = [];
    for (const t of body.targets) {
      const c = t.counts;
      const section = el('div', { class: 'plan-target' },
        el('h3', { text: `${t.target}: ${t.status}` }),
        el('p', { text: `${c.create} to create, ${c.update} to update, ${c.delete} to delete, ${c.unchanged} unchanged${t.error ? ` — ${t.error}` : ''}` }));
      const list = el('ul', { class: 'plan-steps' });
      for (const s of t.steps) {
        const [symbol, kind] = SYMBOLS[s.action] || ['·', 'plan-other'];
        list.append(el('li', { class: kind, text: `${symbol} ${s.stream}  (${s.action}: ${s.reason})${s.detail ? ` — ${s.detail}` : ''}` }));
      }
      if (t.steps.length === 0) list.append(el('li', { class: 'plan-other', text: 'nothing to do' }));
      section.append(list);
      if (t.diff) section.append(el('pre', { class: 'diff', text: t.diff }));
      parts.push(section);
    }
    if (body.rejected.length) parts.push(el('p', { text: `${body.rejected.length} rejected record(s) are left out (listed below).` }));
    $('plan').replaceChildren(...parts);
    $('plan-section').hidden = false;
  }

  // --- wiring ---------------------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    $('token-form').addEventListener('submit', useToken);
    $('sync-now').addEventListener('click', (e) => busy(e.currentTarget, syncNow));
    $('show-plan').addEventListener('click', (e) => busy(e.currentTarget, showPlan));
    $('close-plan').addEventListener('click', () => { $('plan-section').hidden = true; });
    $('filter-name').addEventListener('input', filterAll);
    $('filter-state').addEventListener('change', filterAll);
    $('sort').addEventListener('change', sortRows);
    $('counts').addEventListener('click', (e) => {
      const state = e.target.dataset && e.target.dataset.state;
      if (!state) return;
      $('filter-state').value = $('filter-state').value === state ? '' : state;
      filterAll();
    });
    $('grid-body').addEventListener('click', (e) => {
      const button = e.target.closest('button');
      if (!button) return;
      if (button.classList.contains('name-button')) toggle(button.dataset.camera);
      if (button.classList.contains('reconnect')) {
        busy(button, () => reconnect(button.dataset.camera, button.dataset.target));
      }
    });
    // Relative times ("5 min ago") age while the page is open: redrawn from what it holds.
    setInterval(() => { if (!flushing) for (const camera of [...cameras.values()]) update(camera); }, 60000);
    follow();
  });
})();
