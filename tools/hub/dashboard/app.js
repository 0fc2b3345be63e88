// SPDX-License-Identifier: Apache-2.0
// The fleet dashboard (docs/collector.md, "Fleet dashboard"): signs in with the hub's admin
// token (once; the hub keeps the session in an HttpOnly cookie that this script never sees), then
// draws the answers of GET /v1/fleet/... as views chosen by the URL's fragment:
//   #overview  #devices?state=&version=&q=&sort=&dir=  #device/ID  #versions
//   #decisions?by=&bucket=&days=&listing=  #report?month=YYYY-MM
// Text from the collector is only ever set as text (textContent), never parsed as HTML.
'use strict';

(() => {
  const STATES = ['current', 'behind', 'stale', 'expired', 'list_key_mismatch', 'chain_broken',
                  'gaps', 'silent'];
  const STATE_LABEL = {
    current: 'current', behind: 'behind', stale: 'stale lists', expired: 'metadata expired',
    list_key_mismatch: 'list key mismatch', chain_broken: 'chain broken', gaps: 'gaps',
    silent: 'silent',
  };
  const DECISION_CLS = { allow: 's3', deny: 's1', refer: 's2', error: 's8' };
  const $ = id => document.getElementById(id);
  const view = $('view');
  let silentMinutes = null; // null: the hub's default (--silent-minutes)
  let devicesCache = null;

  // ---- small helpers ----

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) {
        continue;
      }
      if (k === 'text') {
        e.textContent = String(v);
      } else if (k === 'class') {
        e.className = v;
      } else if (k.startsWith('on')) {
        e.addEventListener(k.slice(2), v);
      } else {
        e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const k of kids.flat(Infinity)) {
      if (k !== undefined && k !== null && k !== false) {
        e.append(k instanceof Node ? k : document.createTextNode(String(k)));
      }
    }
    return e;
  }

  function fmtTime(s) {
    if (s === null || s === undefined) {
      return '—';
    }
    return new Date(s * 1000).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  }

  function dur(s) {
    if (s === null || s === undefined) {
      return '—';
    }
    if (s < 120) return `${Math.round(s)} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  }

  function ago(s, now) {
    return s === null || s === undefined ? 'never' : `${dur(Math.max(0, now - s))} ago`;
  }

  function val(v) {
    return v === null || v === undefined || v === '' ? '—' : String(v);
  }

  function stateBadges(states) {
    return el('span', { class: 'states' },
      (states || []).map(s => el('span', { class: 'state st-' + s, 'data-state': s,
                                            text: STATE_LABEL[s] || s })));
  }

  function deviceLink(id) {
    return el('a', { href: '#device/' + id, class: 'mono', text: id });
  }

  function panel(title, ...kids) {
    return el('div', { class: 'panel' }, title ? el('h2', { text: title }) : null, ...kids);
  }

  function table(id, head, rows) {
    return el('div', { class: 'table-wrap' },
      el('table', { id },
        el('thead', {}, el('tr', {}, head.map(h => el('th', { class: h.num ? 'num' : '',
                                                               text: h.label || h })))),
        el('tbody', {}, rows)));
  }

  // Replaces the view with kids (a null kid is a part that does not apply).
  function show(...kids) {
    view.replaceChildren(...kids.flat(Infinity).filter(k => k !== null && k !== undefined && k !== false));
  }

  function setStatus(text) {
    $('status').textContent = text;
  }

  class SignedOut extends Error {}

  async function api(path, params) {
    const u = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== '') {
        u.searchParams.set(k, v);
      }
    }
    if (silentMinutes !== null && !u.searchParams.has('silent_minutes')) {
      u.searchParams.set('silent_minutes', silentMinutes);
    }
    const r = await fetch(u, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (r.status === 401) {
      showLogin();
      throw new SignedOut('signed out');
    }
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      throw new Error(body.error || `HTTP ${r.status}`);
    }
    return body;
  }

  // ---- overview ----

  async function overview() {
    const [o, d, dec] = await Promise.all([
      api('/v1/fleet/overview'), api('/v1/fleet/devices'),
      api('/v1/fleet/decisions', { by: 'decision', days: 30 }),
    ]);
    devicesCache = d;
    if (silentMinutes === null) {
      $('silent').value = o.silent_minutes;
    }
    const newest = o.newest_feed_version === null ? 'none known'
      : `${o.newest_feed_version} (${o.newest_from === 'served' ? 'the served feed' : 'the highest reported'})`;
    const cards = el('div', { class: 'cards', id: 'cards' }, STATES.map(s =>
      el('a', { class: `card st-${s}${o.states[s] ? '' : ' zero'}`, href: '#devices?state=' + s,
                'data-state': s, 'data-count': o.states[s] },
        el('div', { class: 'n', text: o.states[s] }), el('div', { class: 'l', text: STATE_LABEL[s] }))));
    const versions = el('div', { id: 'chart-versions' });
    const decisions = el('div', { id: 'chart-decisions-overview' });
    const attention = d.devices.filter(x => !x.states.includes('current'));
    show(
      el('h1', { text: 'Fleet overview' }),
      el('p', { class: 'muted' },
        `${o.devices_enrolled} devices enrolled, ${o.devices_reported} reporting; newest feed version ${newest}; ` +
        `silent after ${o.silent_minutes} min.`),
      cards,
      el('div', { class: 'grid2' },
        panel('Feed versions across the fleet (devices)', versions),
        panel('Decisions per day, last 30 days', decisions)),
      panel(`Devices that need attention (${attention.length})`,
        attention.length === 0 ? el('p', { class: 'muted', text: 'none: every device is current' })
          : table('attention-table', ['Device', 'States', 'Feed version', 'Last report'],
            attention.map(x => el('tr', { 'data-device': x.device_id },
              el('td', {}, deviceLink(x.device_id)), el('td', {}, stateBadges(x.states)),
              el('td', { class: 'num', text: val(x.feed_version) }),
              el('td', { text: ago(x.last_report, o.now) })))))
    );
    Charts.hbars(versions, o.feed_versions.map(v => ({
      label: 'version ' + v.feed_version, value: v.devices,
      cls: v.feed_version === o.newest_feed_version ? 'ok' : 'warn',
    })), { title: 'devices by feed version', emptyText: 'no device has reported yet' });
    decisionChart(decisions, dec, 8);
  }

  // The series of a decisions answer, the largest `keep` and the rest as one.
  function decisionSeries(dec, keep) {
    const series = dec.series.slice(0, keep).map(s => ({
      key: s.key, values: s.counts, cls: dec.by === 'decision' ? DECISION_CLS[s.key] : undefined,
    }));
    if (dec.series.length > keep) {
      const rest = dec.buckets.map((_, i) => dec.series.slice(keep).reduce((a, s) => a + s.counts[i], 0));
      series.push({ key: 'all others', values: rest, cls: 's8' });
    }
    return series;
  }

  function decisionChart(host, dec, keep) {
    const hourly = dec.bucket === 'hour';
    Charts.bars(host, {
      labels: dec.buckets, series: decisionSeries(dec, keep), legend: true,
      title: `decisions by ${dec.by} per ${dec.bucket}`,
      short: l => (hourly ? l.slice(8, 13).replace('T', ' ') + 'h' : l.slice(5, 10)),
      emptyText: 'no decision in this window',
    });
  }

  // ---- devices ----

  const COLUMNS = [
    { key: 'device_id', label: 'Device', cell: x => deviceLink(x.device_id) },
    { key: 'states', label: 'States', cell: x => stateBadges(x.states),
      sortval: x => (x.states.includes('current') ? 'z' : String(x.states.length)) + x.states.join(',') },
    { key: 'feed_version', label: 'Feed version', num: true },
    { key: 'last_report', label: 'Last report', num: true, cell: (x, now) => ago(x.last_report, now) },
    { key: 'software_version', label: 'Software' },
    { key: 'list_key', label: 'List key' },
    { key: 'unsent', label: 'Unsent', num: true },
    { key: 'events', label: 'Events', num: true },
    { key: 'gaps', label: 'Gaps', num: true },
  ];

  function hashParams() {
    const h = location.hash.slice(1);
    const i = h.indexOf('?');
    return new URLSearchParams(i < 0 ? '' : h.slice(i + 1));
  }

  function setHashParams(path, p) {
    const q = p.toString();
    history.replaceState(null, '', '#' + path + (q ? '?' + q : ''));
  }

  async function devices() {
    const d = await api('/v1/fleet/devices');
    devicesCache = d;
    const p = hashParams();
    const versions = [...new Set(d.devices.map(x => x.feed_version).filter(v => v !== null))].sort((a, b) => b - a);
    const fState = el('select', { id: 'filter-state', 'aria-label': 'state' },
      el('option', { value: '', text: 'every state' }),
      STATES.map(s => el('option', { value: s, text: STATE_LABEL[s], selected: p.get('state') === s })));
    const fVersion = el('select', { id: 'filter-version', 'aria-label': 'feed version' },
      el('option', { value: '', text: 'every feed version' }),
      versions.map(v => el('option', { value: String(v), text: 'version ' + v,
                                       selected: p.get('version') === String(v) })));
    const fText = el('input', { id: 'filter-text', type: 'search', placeholder: 'device id',
                                value: p.get('q') || '' });
    const count = el('span', { class: 'muted', id: 'devices-count' });
    const tbody = el('tbody');
    const heads = COLUMNS.map(c => el('th', {
      class: 'sortable' + (c.num ? ' num' : ''), 'data-sort': c.key, scope: 'col', tabindex: 0,
      text: c.label,
    }));
    const onChange = () => {
      const q = hashParams();
      for (const [k, e] of [['state', fState], ['version', fVersion], ['q', fText]]) {
        if (e.value) q.set(k, e.value); else q.delete(k);
      }
      setHashParams('devices', q);
      renderDevices(d, tbody, heads, count);
    };
    fState.addEventListener('change', onChange);
    fVersion.addEventListener('change', onChange);
    fText.addEventListener('input', onChange);
    heads.forEach(h => {
      const sort = () => {
        const q = hashParams();
        const key = h.getAttribute('data-sort');
        const now = q.get('sort') || 'device_id'; // the order shown, default included
        q.set('dir', now === key && q.get('dir') !== 'desc' ? 'desc' : 'asc');
        q.set('sort', key);
        setHashParams('devices', q);
        renderDevices(d, tbody, heads, count);
      };
      h.addEventListener('click', sort);
      h.addEventListener('keydown', e => { if (e.key === 'Enter') sort(); });
    });
    show(
      el('h1', { text: 'Devices' }),
      panel(null,
        el('div', { class: 'filters' }, fState, fVersion, fText, count),
        el('div', { class: 'table-wrap' },
          el('table', { id: 'devices-table' }, el('thead', {}, el('tr', {}, heads)), tbody))));
    renderDevices(d, tbody, heads, count);
  }

  function renderDevices(d, tbody, heads, count) {
    const p = hashParams();
    const state = p.get('state'), version = p.get('version'), q = (p.get('q') || '').toLowerCase();
    const sort = p.get('sort') || 'device_id', dir = p.get('dir') === 'desc' ? -1 : 1;
    const col = COLUMNS.find(c => c.key === sort) || COLUMNS[0];
    const key = col.sortval || (x => x[col.key]);
    const rows = d.devices.filter(x => (!state || x.states.includes(state)) &&
                                       (!version || String(x.feed_version) === version) &&
                                       (!q || x.device_id.includes(q)));
    rows.sort((a, b) => {
      const va = key(a), vb = key(b);
      if (va === vb) return a.device_id < b.device_id ? -1 : 1;
      if (va === null || va === undefined) return 1; // no value: last either way
      if (vb === null || vb === undefined) return -1;
      return (va < vb ? -1 : 1) * dir;
    });
    heads.forEach(h => {
      if (h.getAttribute('data-sort') === col.key) {
        h.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
      } else {
        h.removeAttribute('aria-sort');
      }
    });
    tbody.replaceChildren(...rows.map(x => el('tr', { 'data-device': x.device_id },
      COLUMNS.map(c => el('td', { class: c.num ? 'num' : '', 'data-col': c.key },
                          c.cell ? c.cell(x, d.now) : val(x[c.key]))))));
    count.textContent = `${rows.length} of ${d.devices.length} devices`;
  }

  // ---- one device ----

  async function device(id) {
    const x = await api('/v1/fleet/devices/' + encodeURIComponent(id), { limit: 500, days: 90 });
    const dv = x.device, st = (x.report && x.report.status) || {};
    const lists = st.lists || [];
    const hist = x.history.slice().reverse(); // oldest first
    const fvChart = el('div', { id: 'chart-device-feed' });
    const unsentChart = el('div', { id: 'chart-device-unsent' });
    const facts = [
      ['States', stateBadges(dv.states)],
      ['Enrolled', fmtTime(dv.enrolled_at)],
      ['Last report', `${fmtTime(dv.last_report)} (${ago(dv.last_report, x.now)})`],
      ['Software', val(dv.software_version)],
      ['Feed version', `${val(dv.feed_version)}, issued ${val(dv.issued_at)}, installed ${val(dv.installed_at)}`],
      ['Metadata expired', val(dv.metadata_expired)],
      ['List key', val(dv.list_key)],
      ['Stale lists', dv.stale_lists.length ? dv.stale_lists.join(', ') : 'none'],
      ['Audit queue', `${val(dv.unsent)} unsent, oldest ${dur(dv.oldest_unsent_age_s)}`],
      ['At the collector', `${dv.events} events, contiguous to seq ${dv.last_seq}, held to ${dv.held_seq}`],
      ['Chain', dv.chain_ok ? 'ok' : `broken at seq ${dv.broken_at}`],
      ['Gaps', x.gap_ranges.length ? x.gap_ranges.map(g => `${g[0]}–${g[1]}`).join(', ') : 'none'],
      ['Clock offset', dv.clock_offset_s === null ? '—' : `${dv.clock_offset_s} s`],
      ['Last sync', dv.sync_result === null ? '—' : `${dv.sync_result} (${dv.sync_source}) at ${fmtTime(dv.sync_at)}`],
    ];
    show(
      el('h1', {}, 'Device ', el('span', { class: 'mono', id: 'device-id', text: dv.device_id })),
      el('div', { class: 'grid2' },
        panel('Latest status', el('dl', { class: 'facts' }, facts.map(([k, v]) => [el('dt', { text: k }), el('dd', {}, v)]))),
        panel('Lists', lists.length === 0 ? el('p', { class: 'muted', text: 'no list installed' })
          : table('lists-table', ['List', { label: 'Seq', num: true }, { label: 'Entries', num: true },
                                  'Issued', { label: 'Data age', num: true }, 'Stale after', 'Stale'],
            lists.map(l => el('tr', { 'data-list': l.id },
              el('td', { class: 'mono', text: l.id }), el('td', { class: 'num', text: val(l.seq) }),
              el('td', { class: 'num', text: val(l.entries) }), el('td', { text: val(l.issued_at) }),
              el('td', { class: 'num', text: dur(l.data_age_s) }), el('td', { text: val(l.stale_after) }),
              el('td', {}, l.stale ? el('span', { class: 'state st-stale', text: 'stale' }) : 'no')))))),
      x.chain_breaks.length === 0 ? null : panel('Chain breaks recorded',
        table('breaks-table', [{ label: 'Seq', num: true }, 'Kind', { label: 'Times', num: true }],
          x.chain_breaks.map(b => el('tr', {}, el('td', { class: 'num', text: b.seq }),
                                     el('td', { text: b.kind }), el('td', { class: 'num', text: b.times }))))),
      el('div', { class: 'grid2' },
        panel('Feed version over time', fvChart),
        panel('Audit events not yet at the collector', unsentChart)),
      panel(`Status reports, newest first (${x.history.length})`,
        table('history-table', ['Received', 'Reported (kiosk clock)', { label: 'Feed version', num: true },
                                'List key', 'Expired', 'Stale lists', { label: 'Unsent', num: true }, 'Sync'],
          x.history.map(h => el('tr', {},
            el('td', { text: fmtTime(h.received_at) }),
            el('td', { text: fmtTime(Math.floor(h.reported_at_us / 1e6)) }),
            el('td', { class: 'num', text: val(h.feed_version) }), el('td', { text: val(h.list_key) }),
            el('td', { text: val(h.metadata_expired) }),
            el('td', { text: h.stale_lists.length ? h.stale_lists.join(', ') : '—' }),
            el('td', { class: 'num', text: val(h.unsent) }),
            el('td', { text: h.sync_result === null ? '—' : `${h.sync_result} (${h.sync_source})` }))))));
    Charts.steps(fvChart, hist.filter(h => h.feed_version !== null)
      .map(h => ({ t: h.received_at, v: h.feed_version })), { title: 'feed version', cls: 's0' });
    Charts.steps(unsentChart, hist.filter(h => h.unsent !== null)
      .map(h => ({ t: h.received_at, v: h.unsent })), { title: 'unsent events', cls: 's2', zero: true });
  }

  // ---- feed versions ----

  async function versions() {
    const v = await api('/v1/fleet/versions', { days: 90 });
    const chart = el('div', { id: 'chart-propagation' });
    const s = x => (x === undefined || x === null ? '—' : dur(x));
    show(
      el('h1', { text: 'Feed versions' }),
      el('p', { class: 'muted' },
        'Propagation: from the signed issue time of a version to its install on each device that has it ' +
        `(versions issued since ${v.since}). "Behind" lists the devices whose latest report shows an older version.`),
      panel('Devices on each version, and still behind it', chart),
      panel(null, table('versions-table',
        [{ label: 'Version', num: true }, 'Issued', { label: 'On it', num: true },
         { label: 'Have it', num: true }, { label: 'p50', num: true }, { label: 'p95', num: true },
         { label: 'max', num: true }, 'Still behind'],
        v.versions.map(x => el('tr', { 'data-version': x.feed_version },
          el('td', { class: 'num', text: x.feed_version }), el('td', { text: val(x.issued_at) }),
          el('td', { class: 'num', text: x.devices_on }),
          el('td', { class: 'num', text: x.devices_installed }),
          el('td', { class: 'num', text: s(x.propagation && x.propagation.p50_s) }),
          el('td', { class: 'num', text: s(x.propagation && x.propagation.p95_s) }),
          el('td', { class: 'num', text: s(x.propagation && x.propagation.max_s) }),
          el('td', {}, x.behind.length === 0 ? 'none'
            : x.behind.map((id, i) => [i ? ' ' : '', deviceLink(id)])))))));
    const vs = v.versions.slice().reverse();
    Charts.bars(chart, {
      labels: vs.map(x => 'v' + x.feed_version),
      series: [{ key: 'on it', values: vs.map(x => x.devices_on), cls: 's3' },
               { key: 'newer', values: vs.map(x => x.devices_installed - x.devices_on), cls: 's0' },
               { key: 'behind', values: vs.map(x => x.behind.length), cls: 's2' }],
      legend: true, title: 'devices per feed version', emptyText: 'no version reported yet',
    });
  }

  // ---- decisions ----

  async function decisions() {
    const p = hashParams();
    const by = p.get('by') || 'decision', bucket = p.get('bucket') || 'day';
    const days = p.get('days') || (bucket === 'hour' ? '7' : '30');
    const [dec, listings] = await Promise.all([
      api('/v1/fleet/decisions', { by, bucket, days }),
      api('/v1/fleet/decisions', { by: 'listing', days }),
    ]);
    const select = (id, label, name, value, options) => {
      const s = el('select', { id, 'aria-label': label },
        options.map(([v, t]) => el('option', { value: v, text: t, selected: v === value })));
      s.addEventListener('change', () => {
        const q = hashParams();
        q.set(name, s.value);
        if (name === 'bucket') q.delete('days');
        location.hash = 'decisions?' + q.toString();
      });
      return s;
    };
    const chart = el('div', { id: 'chart-decisions' });
    const found = el('div', { id: 'listing-decisions' });
    const input = el('input', { id: 'listing-input', placeholder: 'LIST/LISTING_ID', size: 36,
                                value: p.get('listing') || '' });
    const form = el('form', { class: 'filters', id: 'listing-form' }, input,
                    el('button', { type: 'submit', text: 'Find the decisions' }));
    form.addEventListener('submit', e => {
      e.preventDefault();
      showListing(input.value.trim(), found);
    });
    show(
      el('h1', { text: 'Decisions over time' }),
      panel(null,
        el('div', { class: 'filters' },
          select('dec-by', 'by', 'by', by, [['decision', 'by decision'], ['list', 'by list'],
                                            ['service', 'by service'], ['listing', 'by listing']]),
          select('dec-bucket', 'bucket', 'bucket', bucket, [['day', 'per day'], ['hour', 'per hour']]),
          select('dec-days', 'window', 'days', days,
                 (bucket === 'hour' ? [['1', '1 day'], ['7', '7 days'], ['31', '31 days']]
                   : [['7', '7 days'], ['30', '30 days'], ['90', '90 days'], ['366', '1 year']])),
          el('span', { class: 'muted', text: `${dec.decisions} decisions from ${dec.from} (kiosk clocks)` +
                                              (dec.outside_window ? `, ${dec.outside_window} outside` : '') })),
        chart,
        table('decisions-table', ['Key', { label: 'Total', num: true }],
          dec.series.map(s => el('tr', { 'data-key': s.key }, el('td', { class: 'mono', text: s.key }),
                                 el('td', { class: 'num', text: s.total }))))),
      panel('Listings cited by DENY and REFER decisions',
        el('p', { class: 'muted', text: 'An authority repairing a wrong listing reaches the people it stopped ' +
                                         'through these decisions (posgate-hub decisions --listing).' }),
        listings.series.length === 0 ? el('p', { class: 'muted', text: 'no listing cited in this window' })
          : table('listings-table', ['Listing', { label: 'Decisions', num: true }, ''],
            listings.series.map(s => el('tr', { 'data-listing': s.key },
              el('td', { class: 'mono', text: s.key }), el('td', { class: 'num', text: s.total }),
              el('td', {},
                el('a', { href: '#decisions?' + new URLSearchParams({ by, bucket, days, listing: s.key }),
                          class: 'show-listing', text: 'show' }), ' · ',
                el('a', { href: '/v1/fleet/decisions?listing=' + encodeURIComponent(s.key),
                          class: 'listing-json', text: 'JSON' }))))),
        form, found));
    decisionChart(chart, dec, 9);
    if (p.get('listing')) {
      await showListing(p.get('listing'), found);
    }
  }

  async function showListing(listing, host) {
    if (!/^[^/]+\/.+$/.test(listing)) {
      host.replaceChildren(el('p', { class: 'error', text: 'expected LIST/LISTING_ID' }));
      return;
    }
    const rows = await api('/v1/fleet/decisions', { listing });
    host.replaceChildren(
      el('h2', {}, `Decisions citing `, el('span', { class: 'mono', text: listing }), ` (${rows.length})`),
      rows.length === 0 ? el('p', { class: 'muted', text: 'none held' })
        : table('listing-table', ['Decision id', 'Time', 'Decision', 'Device', 'Service', 'Operator'],
          rows.map(r => el('tr', { 'data-decision': r.decision_id },
            el('td', { class: 'mono', text: r.decision_id }), el('td', { text: r.time }),
            el('td', {}, el('span', { class: 'state ' + (r.decision === 'deny' ? 'st-chain_broken' : 'st-behind'),
                                      text: r.decision })),
            el('td', {}, deviceLink(r.device_id)), el('td', { text: r.service }),
            el('td', { text: val(r.operator) })))));
  }

  // ---- the transparency report ----

  const REPORT_FIGS = [
    ['checks', 'Checks'], ['allow', 'ALLOW'], ['deny', 'DENY'], ['refer', 'REFER'], ['error', 'Error'],
    ['overrides', 'Overrides'], ['overrides_refused', 'Refused'], ['lookups', 'Looked up'],
  ];
  const LIST_FIGS = ['deny', 'refer', 'overrides', 'overrides_refused', 'lookups'];

  // The month's aggregates, as `posgate-hub report --month M --json` prints them: no device,
  // operator, decision or listing is ever in the answer.
  async function report() {
    const asked = hashParams().get('month') || '';
    const month = /^\d{4}-\d{2}$/.test(asked) ? asked : new Date().toISOString().slice(0, 7);
    const r = await api('/v1/fleet/report', { month });
    const t = r.totals, prop = r.propagation;
    const pick = el('input', { id: 'report-month', type: 'month', value: r.month, 'aria-label': 'month' });
    pick.addEventListener('change', () => {
      if (/^\d{4}-\d{2}$/.test(pick.value)) {
        location.hash = 'report?month=' + pick.value;
      }
    });
    const figCell = (x, k) => el('td', { class: 'num', 'data-fig': k, text: x[k] });
    const card = (k, label, n) => el('div', { class: 'card', 'data-fig': k, 'data-count': n },
                                      el('div', { class: 'n', text: n }), el('div', { class: 'l', text: label }));
    show(
      el('h1', { text: `Transparency report, ${r.month}` }),
      panel(null,
        el('div', { class: 'filters' }, pick,
          el('span', { class: 'muted', text: `${r.from} to ${r.until}: decisions by their own time ` +
                                              "(the kiosk's clock), contests looked up by the collector's" })),
        el('div', { class: 'cards', id: 'report-cards' },
          card('checks', 'checks', t.checks), card('deny', 'DENY', t.deny), card('refer', 'REFER', t.refer),
          card('overrides', 'overrides granted', t.overrides),
          card('lookups', 'contests looked up', t.lookups),
          card('median_s', 'median delisting propagation', prop.median_s === null ? '—' : dur(prop.median_s)))),
      panel('By service', r.services.length === 0 ? el('p', { class: 'muted', text: 'no check this month' })
        : table('report-services', ['Service', ...REPORT_FIGS.map(([, l]) => ({ label: l, num: true }))],
          r.services.map(x => el('tr', { 'data-service': x.service },
            el('td', { class: 'mono', text: x.service }), REPORT_FIGS.map(([k]) => figCell(x, k)))))),
      panel('By list and service',
        el('p', { class: 'muted', text: 'A DENY, REFER, override or lookup counts once under every list its ' +
                                         'decision cites. A list with one DENY still shows that someone was denied.' }),
        r.lists.length === 0 ? el('p', { class: 'muted', text: 'no list cited this month' })
          : table('report-lists', ['List', 'Service', ...LIST_FIGS.map(k => ({
              label: REPORT_FIGS.find(f => f[0] === k)[1], num: true }))],
            r.lists.map(x => el('tr', { 'data-list': x.list, 'data-service': x.service },
              el('td', { class: 'mono', text: x.list }), el('td', { class: 'mono', text: x.service }),
              LIST_FIGS.map(k => figCell(x, k)))))),
      panel('Delisting propagation',
        el('p', { class: 'muted', text: prop.installs === 0 ? 'No feed version was first installed this month.'
          : `Median ${dur(prop.median_s)} over ${prop.installs} installs of the feed versions first installed ` +
            'this month, from each version\'s signed issue time.' }),
        prop.versions.length === 0 ? null
          : table('report-versions', [{ label: 'Version', num: true }, 'Issued', 'First installed',
                                      { label: 'Devices', num: true }, { label: 'p50', num: true },
                                      { label: 'p95', num: true }, { label: 'max', num: true }],
            prop.versions.map(v => el('tr', { 'data-version': v.feed_version },
              el('td', { class: 'num', text: v.feed_version }), el('td', { text: v.issued_at }),
              el('td', { text: v.first_installed_at }), el('td', { class: 'num', text: v.devices }),
              el('td', { class: 'num', text: dur(v.p50_s) }), el('td', { class: 'num', text: dur(v.p95_s) }),
              el('td', { class: 'num', text: dur(v.max_s) }))))));
  }

  // ---- routing, sign in and out ----

  const VIEWS = { overview, devices, versions, decisions, report };

  async function route() {
    const h = location.hash.slice(1) || 'overview';
    const path = h.split('?')[0];
    const name = path.startsWith('device/') ? 'devices' : path;
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('active', a.getAttribute('data-view') === name);
    }
    setStatus('reading the collector…');
    try {
      if (path.startsWith('device/')) {
        await device(decodeURIComponent(path.slice(7)));
      } else if (VIEWS[path]) {
        await VIEWS[path]();
      } else {
        location.hash = 'overview';
        return;
      }
      document.body.setAttribute('data-ready', path);
      setStatus(`read at ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC`);
    } catch (e) {
      if (e instanceof SignedOut) {
        return;
      }
      view.replaceChildren(panel('Cannot show this', el('p', { class: 'error', text: e.message })));
      setStatus('');
    }
  }

  function showApp() {
    $('login').hidden = true;
    $('no-admin').hidden = true;
    $('nav').hidden = false;
    $('session').hidden = false;
  }

  function showLogin() {
    $('nav').hidden = true;
    $('session').hidden = true;
    view.replaceChildren();
    $('login').hidden = false;
    $('token').focus();
  }

  async function login(e) {
    e.preventDefault();
    const token = $('token').value;
    const err = $('login-error');
    const r = await fetch('/dashboard/login', {
      method: 'POST', credentials: 'same-origin', headers: { Authorization: 'Bearer ' + token },
    });
    $('token').value = '';
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      err.textContent = body.error || `HTTP ${r.status}`;
      err.hidden = false;
      return;
    }
    err.hidden = true;
    showApp();
    await route();
  }

  async function logout() {
    await fetch('/dashboard/logout', { method: 'POST', credentials: 'same-origin' });
    showLogin();
  }

  async function start() {
    $('login-form').addEventListener('submit', e => { login(e).catch(x => setStatus(x.message)); });
    $('logout').addEventListener('click', () => { logout().catch(x => setStatus(x.message)); });
    $('refresh').addEventListener('click', () => { route(); });
    $('silent').addEventListener('change', () => {
      const v = parseInt($('silent').value, 10);
      silentMinutes = Number.isFinite(v) && v >= 0 ? v : null;
      route();
    });
    window.addEventListener('hashchange', () => { route(); });
    const s = await (await fetch('/dashboard/session', { credentials: 'same-origin' })).json();
    if (s.admin) {
      showApp();
      await route();
    } else if (s.token_login) {
      showLogin();
    } else {
      $('no-admin').hidden = false;
    }
  }

  start().catch(e => setStatus(e.message));
})();
