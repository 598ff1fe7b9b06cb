// Metronome dashboard: one page, served by the daemon (embedded in the binary), live through the
// Server-Sent Events of GET /v1/events, polling the JSON API as the fallback. No framework; uPlot
// (global `uPlot`, loaded before this file) draws the charts. docs/api.md describes the API.
'use strict';

(() => {
  const HOUR_S = 3600;
  const VALUE_PAGES = 4;           // at most 4,000 values per feed are fetched for the chart
  const LATENESS_SLOTS = 1000;
  const POLL_MS = 2000;
  const SSE_RETRY_MS = 15000;      // after the stream failed for good (e.g. 503), try again
  const TOKEN_KEY = 'metronome-admin-token';
  const OUTCOMES = ['published', 'failed', 'missed', 'skipped', 'planned'];

  const $ = (id) => document.getElementById(id);
  const state = {
    feeds: [],            // GET /v1/feeds
    selected: null,       // feed id shown in the charts and the strip
    values: new Map(),    // feed id -> {t: [], v: []} (seconds, numbers), oldest first
    slots: [],            // last LATENESS_SLOTS slots of the selected feed with fired_at, newest first
    window: null,         // the current execution of the selected feed
    admin: false,         // the daemon has an admin token configured
    live: false,          // the event stream is open
    dirty: {values: false, lateness: false, strip: false},
    selectedSlot: null,   // slot_ms of the clicked strip slot
    zoomed: false,        // the user zoomed the values chart
    truncated: false,     // the last hour has more values than were fetched
  };
  let valuesChart = null;
  let latenessChart = null;
  let pollTimer = null;
  let executionsTimer = null;

  // ---- helpers ----
  async function api(path, options = {}) {
    const res = await fetch(path, options);
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!res.ok) {
      const detail = body && body.detail ? body.detail : `HTTP ${res.status}`;
      const err = new Error(detail);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  // "12345" with 2 decimals -> "123.45" (exact: string arithmetic, values can exceed 2^53).
  function formatValue(value, decimals) {
    if (!decimals) return value;
    const neg = value.startsWith('-');
    let digits = neg ? value.slice(1) : value;
    digits = digits.padStart(decimals + 1, '0');
    const out = digits.slice(0, digits.length - decimals) + '.' + digits.slice(-decimals);
    return (neg ? '-' : '') + out;
  }
  const toNumber = (value, decimals) => Number(value) / Math.pow(10, decimals || 0);
  const seconds = (slotMs) => Number(slotMs) / 1000;

  function formatAge(ms) {
    if (ms < 0) ms = 0;
    if (ms < 10000) return (ms / 1000).toFixed(1) + ' s';
    if (ms < 120000) return Math.round(ms / 1000) + ' s';
    if (ms < 7200000) return Math.round(ms / 60000) + ' min';
    return Math.round(ms / 3600000) + ' h';
  }

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) e.append(c);
    return e;
  }

  function percentile(sorted, p) {
    if (!sorted.length) return null;
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
    return sorted[i];
  }

  function chartWidth(id) {
    return Math.max(240, $(id).clientWidth || 600);
  }

  // ---- connection status ----
  function setConn(kind, text) {
    const c = $('conn');
    c.className = 'conn ' + kind;
    c.textContent = text;
  }

  // ---- feeds ----
  function feed(id) { return state.feeds.find((f) => f.id === id); }

  function renderFeeds() {
    const box = $('feeds');
    const select = $('feed-select');
    if (box.dataset.ids !== state.feeds.map((f) => f.id).join(',')) {
      box.replaceChildren();
      select.replaceChildren();
      for (const f of state.feeds) {
        box.append(el('div', {class: 'card', 'data-feed': f.id},
          el('div', {class: 'name', text: f.id}),
          el('div', {class: 'value', 'data-role': 'value', text: '—'}),
          el('div', {class: 'meta', 'data-role': 'age'}),
          el('div', {class: 'signer', 'data-role': 'signer'}),
          el('div', {class: 'meta', 'data-role': 'schedule'}),
          el('div', {class: 'meta', 'data-role': 'last'})));
        select.append(el('option', {value: f.id, text: f.id}));
      }
      box.dataset.ids = state.feeds.map((f) => f.id).join(',');
      if (state.selected) select.value = state.selected;
    }
    for (const f of state.feeds) renderFeed(f);
  }

  function renderFeed(f) {
    const card = document.querySelector(`.card[data-feed="${CSS.escape(f.id)}"]`);
    if (!card) return;
    const q = (role) => card.querySelector(`[data-role="${role}"]`);
    const latest = f.latest;
    q('value').textContent = latest ? formatValue(latest.value, latest.decimals) : '—';
    q('value').title = latest ? `round ${latest.round}, slot ${latest.slot}` : 'no value yet';
    q('signer').textContent = latest && latest.signer ? 'signer ' + latest.signer : 'unsigned';
    q('schedule').textContent = `${f.schedule}, window ${f.window}, source ${f.source}`;
    const last = f.last_slot;
    q('last').textContent = last
      ? `last slot ${last.slot}: ${last.outcome}${last.reason ? ' — ' + last.reason : ''}`
      : 'no slot since start';
    renderAge(f, card);
  }

  function renderAge(f, card) {
    const age = card.querySelector('[data-role="age"]');
    if (!f.latest) { age.textContent = 'no value yet'; return; }
    const ms = Date.now() - Date.parse(f.latest.published_at);
    age.textContent = `published ${formatAge(ms)} ago (slot ${f.latest.slot})`;
  }

  function tickAges() {
    for (const f of state.feeds) {
      const card = document.querySelector(`.card[data-feed="${CSS.escape(f.id)}"]`);
      if (card) renderAge(f, card);
    }
  }

  async function refreshFeeds() {
    const body = await api('v1/feeds');
    state.feeds = body.feeds;
    if (!state.selected || !feed(state.selected)) {
      state.selected = state.feeds.length ? state.feeds[0].id : null;
    }
    renderFeeds();
    // Polling: latest values join the chart as events would.
    for (const f of state.feeds) if (f.latest) addValue(f.latest);
  }

  // ---- values chart ----
  function addValue(r) {
    let series = state.values.get(r.feed);
    if (!series) { series = {t: [], v: []}; state.values.set(r.feed, series); }
    const t = seconds(r.slot_ms);
    const n = series.t.length;
    if (n && t <= series.t[n - 1]) {
      if (series.t.includes(t)) return;       // already there
      let i = series.t.findIndex((x) => x > t); // a redriven older value
      series.t.splice(i, 0, t);
      series.v.splice(i, 0, toNumber(r.value, r.decimals));
    } else {
      series.t.push(t);
      series.v.push(toNumber(r.value, r.decimals));
    }
    const cutoff = Date.now() / 1000 - HOUR_S;
    while (series.t.length && series.t[0] < cutoff) { series.t.shift(); series.v.shift(); }
    if (r.feed === state.selected) state.dirty.values = true;
  }

  async function loadValues(id) {
    const from = Date.now() - HOUR_S * 1000;
    const records = [];
    let cursor = null;
    let pages = 0;
    do {
      const q = `from=${from}&limit=1000` + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : '');
      const body = await api(`v1/feeds/${encodeURIComponent(id)}/values?${q}`);
      records.push(...body.values);
      cursor = body.next_cursor;
      pages++;
    } while (cursor && pages < VALUE_PAGES);
    const series = {t: [], v: []};
    for (const r of records.reverse()) {
      series.t.push(seconds(r.slot_ms));
      series.v.push(toNumber(r.value, r.decimals));
    }
    state.values.set(id, series);
    state.truncated = !!cursor;
    state.dirty.values = true;
  }

  function drawValues() {
    const series = state.values.get(state.selected) || {t: [], v: []};
    const data = [series.t, series.v];
    if (!valuesChart) {
      valuesChart = new uPlot({
        width: chartWidth('values-chart'),
        height: 240,
        cursor: {drag: {x: true, y: false}},
        scales: {x: {time: true}},
        series: [{}, {label: state.selected || 'value', stroke: '#0072b2', width: 1.5,
          points: {show: false}}],
        axes: [{}, {size: 80}],
        legend: {show: true},
        hooks: {setSelect: [(u) => { if (u.select.width > 0) state.zoomed = true; }]},
      }, data, $('values-chart'));
      // uPlot resets the zoom on double-click.
      valuesChart.over.addEventListener('dblclick', () => { state.zoomed = false; });
    } else {
      // Keeps the user's zoom while new points arrive.
      valuesChart.setData(data, !state.zoomed);
    }
    $('values-chart').dataset.points = String(series.t.length);
    $('values-note').textContent = state.truncated
      ? `${series.t.length} values: the newest of the last hour (older ones are not fetched).`
      : `${series.t.length} values in the last hour.`;
  }

  // ---- executions: strip of the current window and lateness ----
  async function refreshExecutions() {
    if (!state.selected) return;
    const id = state.selected;
    const slots = [];
    let current = null;
    let cursor = null;
    let pages = 0;
    const now = Date.now();
    do {
      const q = `feed=${encodeURIComponent(id)}&limit=100` +
        (cursor ? `&cursor=${encodeURIComponent(cursor)}` : '');
      const body = await api(`v1/executions?${q}`);
      for (const e of body.executions) {
        if (!current && Date.parse(e.window_start) <= now) current = e;
        for (const s of e.slots) if (s.lateness_us !== null) slots.push(s);
      }
      cursor = body.next_cursor;
      pages++;
    } while (cursor && slots.length < LATENESS_SLOTS && pages < 10);
    if (id !== state.selected) return;
    slots.sort((a, b) => Number(b.slot_ms) - Number(a.slot_ms));
    state.slots = slots.slice(0, LATENESS_SLOTS);
    state.window = current;
    state.dirty.strip = state.dirty.lateness = true;
  }

  // At most one executions fetch a second (a 200 ms feed has many windows).
  function scheduleExecutions() {
    if (executionsTimer) return;
    executionsTimer = setTimeout(() => {
      executionsTimer = null;
      refreshExecutions().catch(showError);
    }, 1000);
  }

  function onSlot(s) {
    if (s.feed !== state.selected) return;
    const w = state.window;
    const slotMs = Number(s.slot_ms);
    const cell = w && w.slots.find((x) => x.slot_ms === s.slot_ms);
    if (cell) {
      Object.assign(cell, s);
      state.dirty.strip = true;
    }
    if (!w || slotMs >= Date.parse(w.window_end)) scheduleExecutions();
    if (s.lateness_us !== null && !state.slots.some((x) => x.slot_ms === s.slot_ms)) {
      state.slots.unshift(s);
      if (state.slots.length > LATENESS_SLOTS) state.slots.pop();
      state.dirty.lateness = true;
    }
    const f = feed(s.feed);
    if (f) {
      f.last_slot = s;
      renderFeed(f);
    }
  }

  function drawStrip() {
    const w = state.window;
    const strip = $('strip');
    strip.replaceChildren();
    if (!w) {
      $('window-label').textContent = 'No execution yet.';
      return;
    }
    const counts = {};
    for (const s of w.slots) counts[s.outcome] = (counts[s.outcome] || 0) + 1;
    $('window-label').textContent = `${w.id}: ${w.window_start} – ${w.window_end}, ` +
      OUTCOMES.filter((o) => counts[o]).map((o) => `${counts[o]} ${o}`).join(', ');
    for (const s of w.slots) {
      const b = el('button', {
        type: 'button',
        class: 'o-' + s.outcome + (s.slot_ms === state.selectedSlot ? ' selected' : ''),
        title: `${s.slot}: ${s.outcome}${s.error ? ' — ' + s.error : ''}`,
        'data-outcome': s.outcome,
        'data-slot': s.slot_ms,
      });
      b.setAttribute('aria-label', b.title);
      b.addEventListener('click', () => showSlot(s, w));
      strip.append(b);
    }
  }

  function showSlot(s, w) {
    state.selectedSlot = s.slot_ms;
    const series = state.values.get(w.feed);
    let value = null;
    if (series) {
      const i = series.t.indexOf(seconds(s.slot_ms));
      if (i >= 0) value = series.v[i];
    }
    const details = {
      execution: w.id,
      slot: s.slot,
      outcome: s.outcome,
      fired_at: s.fired_at,
      lateness_us: s.lateness_us,
      attempts: s.attempts,
      error: s.error || undefined,
      value: value === null ? undefined : value,
    };
    const pre = $('slot-details');
    pre.textContent = JSON.stringify(details, null, 2);
    pre.hidden = false;
    state.dirty.strip = true;
  }

  function drawLateness() {
    const pts = state.slots.slice().sort((a, b) => Number(a.slot_ms) - Number(b.slot_ms));
    const t = pts.map((s) => seconds(s.slot_ms));
    const y = pts.map((s) => s.lateness_us);
    const sorted = y.slice().sort((a, b) => a - b);
    const p50 = percentile(sorted, 0.5);
    const p99 = percentile(sorted, 0.99);
    const line = (v) => t.map(() => v);
    const data = [t, y, line(p50), line(p99)];
    $('lateness-stats').textContent = pts.length
      ? `${pts.length} slots: p50 ${p50} µs, p99 ${p99} µs, max ${sorted[sorted.length - 1]} µs`
      : 'No slot has fired yet.';
    if (!latenessChart) {
      latenessChart = new uPlot({
        width: chartWidth('lateness-chart'),
        height: 220,
        scales: {x: {time: true}},
        series: [
          {},
          {label: 'lateness (µs)', stroke: '#0072b2', fill: '#0072b2',
            paths: () => null, points: {show: true, space: 0, size: 4}},
          {label: 'p50', stroke: '#1a7f37', width: 1.5, dash: [6, 4], points: {show: false}},
          {label: 'p99', stroke: '#d55e00', width: 1.5, dash: [2, 3], points: {show: false}},
        ],
        axes: [{}, {size: 90, label: 'µs'}],
      }, data, $('lateness-chart'));
    } else {
      latenessChart.setData(data);
    }
    $('lateness-chart').dataset.points = String(pts.length);
  }

  // ---- DLQ ----
  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function askToken() {
    const t = window.prompt('Admin token (sent as a bearer token; kept for this browser tab):');
    if (t) sessionStorage.setItem(TOKEN_KEY, t.trim());
    renderTokenButton();
    return t ? t.trim() : null;
  }

  function renderTokenButton() {
    const b = $('token-button');
    b.textContent = token() ? 'Forget admin token' : 'Set admin token';
    b.disabled = !state.admin;
    b.title = state.admin ? '' : disabledWhy();
  }

  function disabledWhy() {
    return 'Disabled: the daemon has no admin token ([service] admin_token_secret is not set), ' +
      'so it refuses redrive and purge.';
  }

  async function dlqAction(kind, id) {
    const t = token() || askToken();
    if (!t) return;
    const path = kind === 'redrive' ? `v1/dlq/${id}/redrive` : `v1/dlq/${id}`;
    try {
      await api(path, {method: kind === 'redrive' ? 'POST' : 'DELETE',
        headers: {Authorization: 'Bearer ' + t}});
      $('dlq-message').textContent = `Message ${id} ${kind === 'redrive' ? 'redriven' : 'purged'}.`;
    } catch (e) {
      if (e.status === 401) sessionStorage.removeItem(TOKEN_KEY);
      $('dlq-message').textContent = `${kind} of message ${id} failed: ${e.message}` +
        (e.status === 401 ? ' (the token was forgotten; enter it again)' : '');
      renderTokenButton();
    }
    await refreshDlq();
  }

  async function refreshDlq() {
    const body = await api('v1/dlq?limit=100');
    const depth = $('dlq-depth');
    depth.textContent = String(body.depth);
    depth.classList.toggle('nonzero', body.depth > 0);
    $('dlq-admin').textContent = state.admin ? '' : disabledWhy();
    const tbody = $('dlq').querySelector('tbody');
    tbody.replaceChildren();
    for (const m of body.messages) {
      const redrive = el('button', {type: 'button', text: 'Redrive', 'data-action': 'redrive'});
      const purge = el('button', {type: 'button', text: 'Purge', 'data-action': 'purge'});
      for (const b of [redrive, purge]) {
        b.disabled = !state.admin;
        b.title = state.admin ? (b === redrive
          ? 'Store the message\'s record and remove the message'
          : 'Remove the message without storing it') : disabledWhy();
      }
      if (!m.record) {
        redrive.disabled = true;
        redrive.title = 'This message has no record to store; purge it instead.';
      }
      redrive.addEventListener('click', () => dlqAction('redrive', m.id));
      purge.addEventListener('click', () => dlqAction('purge', m.id));
      tbody.append(el('tr', {'data-id': String(m.id)},
        el('td', {text: String(m.id)}), el('td', {text: m.feed}), el('td', {text: m.slot || ''}),
        el('td', {text: m.stage}), el('td', {class: 'reason', text: m.error}),
        el('td', {text: String(m.attempts)}), el('td', {text: m.last_failure}),
        el('td', {}, redrive, purge)));
    }
    $('dlq-empty').hidden = body.messages.length > 0;
  }

  // ---- alarms ----
  async function refreshAlarms() {
    const body = await api('v1/alarms');
    const tbody = $('alarms').querySelector('tbody');
    tbody.replaceChildren();
    for (const a of body.alarms) {
      tbody.append(el('tr', {'data-alarm': a.alarm},
        el('td', {text: a.alarm}), el('td', {class: 'state-' + a.state, text: a.state}),
        el('td', {text: a.since}), el('td', {text: a.previous}),
        el('td', {class: 'reason', text: a.reason})));
    }
    $('alarms-empty').hidden = body.alarms.length > 0;
  }

  // ---- errors ----
  function showError(e) {
    setConn('error', 'API error: ' + e.message);
  }

  // ---- live updates ----
  async function refreshAll() {
    await refreshFeeds();
    await Promise.all([refreshDlq(), refreshAlarms(), refreshExecutions()]);
  }

  function startPolling() {
    if (pollTimer) return;
    pollTimer = setInterval(() => {
      if (state.live) return;
      refreshAll().then(() => {
        if (!state.live) setConn('polling', 'polling every 2 s');
      }).catch(showError);
    }, POLL_MS);
  }

  function connect() {
    if (!window.EventSource) {
      setConn('polling', 'polling every 2 s');
      return;
    }
    const es = new EventSource('v1/events');
    es.addEventListener('hello', () => {
      state.live = true;
      setConn('live', 'live');
      refreshAll().catch(showError);  // whatever happened while not connected
    });
    es.addEventListener('resync', () => refreshAll().catch(showError));
    es.addEventListener('record', (e) => {
      const r = JSON.parse(e.data);
      const f = feed(r.feed);
      if (f && (!f.latest || Number(r.slot_ms) >= Number(f.latest.slot_ms))) {
        f.latest = r;
        renderFeed(f);
      }
      addValue(r);
    });
    es.addEventListener('slot', (e) => onSlot(JSON.parse(e.data)));
    es.addEventListener('dlq', () => refreshDlq().catch(showError));
    es.addEventListener('alarm', () => refreshAlarms().catch(showError));
    es.onerror = () => {
      state.live = false;
      if (es.readyState === EventSource.CLOSED) {
        // Refused (e.g. 503: too many streams): poll, and try the stream again later.
        setConn('polling', 'polling every 2 s (event stream unavailable)');
        setTimeout(connect, SSE_RETRY_MS);
      } else {
        setConn('polling', 'reconnecting…');
      }
    };
  }

  function frame() {
    if (state.dirty.values) { state.dirty.values = false; drawValues(); }
    if (state.dirty.lateness) { state.dirty.lateness = false; drawLateness(); }
    if (state.dirty.strip) { state.dirty.strip = false; drawStrip(); }
  }

  async function main() {
    $('feed-select').addEventListener('change', (e) => {
      state.selected = e.target.value;
      state.selectedSlot = null;
      $('slot-details').hidden = true;
      if (valuesChart) {
        valuesChart.destroy();
        valuesChart = null;
        state.zoomed = false;
      }
      Promise.all([loadValues(state.selected), refreshExecutions()]).catch(showError);
    });
    $('token-button').addEventListener('click', () => {
      if (token()) {
        sessionStorage.removeItem(TOKEN_KEY);
        renderTokenButton();
      } else {
        askToken();
      }
    });
    window.addEventListener('resize', () => {
      if (valuesChart) valuesChart.setSize({width: chartWidth('values-chart'), height: 240});
      if (latenessChart) latenessChart.setSize({width: chartWidth('lateness-chart'), height: 220});
    });
    try {
      const health = await api('healthz');
      state.admin = !!health.admin;
      $('version').textContent = 'v' + health.version;
      renderTokenButton();
      await refreshFeeds();
      if (state.selected) await loadValues(state.selected);
      await Promise.all([refreshDlq(), refreshAlarms(), refreshExecutions()]);
    } catch (e) {
      showError(e);
    }
    state.dirty.values = state.dirty.lateness = state.dirty.strip = true;
    setInterval(frame, 250);
    setInterval(tickAges, 500);
    startPolling();
    connect();
  }

  main();
})();
