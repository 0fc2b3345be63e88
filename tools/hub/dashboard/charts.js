// SPDX-License-Identifier: Apache-2.0
// The dashboard's charts, drawn as plain SVG: bars (stacked, over time or by category),
// horizontal bars and a step line. No library: the dashboard is served by the hub itself on
// closed networks, and three chart shapes do not need one. Colours come from app.css (classes
// s0..s9), never from inline styles (the Content-Security-Policy allows none). Every mark carries
// data-key and data-value, and a <title> for the pointer.
'use strict';

const Charts = (() => {
  const NS = 'http://www.w3.org/2000/svg';

  function svg(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      e.setAttribute(k, String(v));
    }
    if (text !== undefined) {
      e.textContent = text;
    }
    return e;
  }

  // A round upper bound for an axis, and its tick step (whole numbers from 1 up).
  function niceMax(max) {
    if (max <= 0) {
      return { top: 1, step: 1 };
    }
    const raw = max / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = [1, 2, 5, 10].map(m => m * p).find(s => s >= raw);
    if (max >= 1 && step < 1) {
      step = 1;
    }
    return { top: Math.ceil(max / step - 1e-9) * step, step };
  }

  // The host's width in pixels, so that the chart is drawn at its own scale (text stays text
  // sized); 600 when the host is not laid out.
  function width(host) {
    return Math.max(320, Math.floor(host.clientWidth || 600));
  }

  function compact(n) {
    if (n >= 1e9) return (n / 1e9).toFixed(1).replace(/\.0$/, '') + 'G';
    if (n >= 1e6) return (n / 1e6).toFixed(1).replace(/\.0$/, '') + 'M';
    if (n >= 1e3) return (n / 1e3).toFixed(1).replace(/\.0$/, '') + 'k';
    return String(Math.round(n * 100) / 100);
  }

  function cls(s, i) {
    return s.cls || 's' + (i % 10);
  }

  function legend(series) {
    const ul = document.createElement('ul');
    ul.className = 'legend';
    series.forEach((s, i) => {
      const li = document.createElement('li');
      const sw = document.createElement('span');
      sw.className = 'swatch ' + cls(s, i);
      li.append(sw, document.createTextNode(s.key));
      ul.append(li);
    });
    return ul;
  }

  function empty(host, text) {
    const p = document.createElement('p');
    p.className = 'chart-empty';
    p.textContent = text || 'nothing to show yet';
    host.replaceChildren(p);
  }

  // Vertical bars, one per label; series stacked. opts: {labels, series: [{key, values}],
  // height, every (label every N bars), title}.
  function bars(host, opts) {
    const labels = opts.labels || [];
    const series = opts.series || [];
    const n = labels.length;
    if (n === 0 || series.length === 0) {
      empty(host, opts.emptyText);
      return;
    }
    const totals = labels.map((_, i) => series.reduce((a, s) => a + (s.values[i] || 0), 0));
    const { top, step } = niceMax(Math.max(...totals));
    const W = width(host), H = opts.height || 240;
    const L = 48, R = 8, T = 10, B = 42;
    const bw = (W - L - R) / n, barw = Math.max(1, Math.min(56, bw * 0.76));
    const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
                              'aria-label': opts.title || 'chart' });
    const y = v => T + (H - T - B) * (1 - v / top);
    for (let v = 0; v <= top + 1e-9; v += step) {
      root.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      root.append(svg('text', { class: 'tick', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' },
                      compact(v)));
    }
    const every = opts.every || Math.max(1, Math.ceil(n / 12));
    labels.forEach((lab, i) => {
      let base = 0;
      series.forEach((s, k) => {
        const v = s.values[i] || 0;
        if (v > 0) {
          const r = svg('rect', {
            class: 'bar ' + cls(s, k), x: L + i * bw + (bw - barw) / 2, width: barw,
            y: y(base + v), height: Math.max(0.5, y(base) - y(base + v)),
            'data-key': s.key, 'data-label': lab, 'data-value': v,
          });
          r.append(svg('title', {}, `${s.key}, ${lab}: ${v}`));
          root.append(r);
        }
        base += v;
      });
      if (i % every === 0) {
        root.append(svg('text', { class: 'tick', x: L + i * bw + bw / 2, y: H - B + 16,
                                  'text-anchor': 'middle' }, opts.short ? opts.short(lab) : lab));
      }
    });
    root.append(svg('line', { class: 'axis', x1: L, x2: W - R, y1: y(0), y2: y(0) }));
    host.replaceChildren(root);
    if (series.length > 1 || opts.legend) {
      host.append(legend(series));
    }
  }

  // Horizontal bars: items [{label, value, cls, href}].
  function hbars(host, items, opts) {
    opts = opts || {};
    if (!items.length) {
      empty(host, opts.emptyText);
      return;
    }
    const max = Math.max(1, ...items.map(i => i.value));
    const W = width(host), row = 26, L = 150, R = 50, H = items.length * row + 8;
    const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
                              'aria-label': opts.title || 'chart' });
    items.forEach((it, i) => {
      const yy = 4 + i * row;
      root.append(svg('text', { class: 'tick', x: L - 8, y: yy + 16, 'text-anchor': 'end' },
                       it.label));
      const w = Math.max(it.value > 0 ? 2 : 0, (W - L - R) * it.value / max);
      const r = svg('rect', { class: 'bar ' + (it.cls || 's0'), x: L, y: yy + 3, width: w,
                              height: row - 8, 'data-key': it.label, 'data-value': it.value });
      r.append(svg('title', {}, `${it.label}: ${it.value}`));
      root.append(r);
      root.append(svg('text', { class: 'tick', x: L + w + 6, y: yy + 16 }, compact(it.value)));
    });
    host.replaceChildren(root);
  }

  // A step line over time: points [{t (seconds), v}], oldest first.
  function steps(host, points, opts) {
    opts = opts || {};
    if (points.length === 0) {
      empty(host, opts.emptyText);
      return;
    }
    const W = width(host), H = opts.height || 160, L = 48, R = 12, T = 10, B = 30;
    const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1);
    const vmin = Math.min(...points.map(p => p.v)), vmax = Math.max(...points.map(p => p.v));
    const lo = opts.zero ? 0 : vmin - (vmax === vmin ? 1 : 0), hi = vmax + (vmax === lo ? 1 : 0);
    const x = t => L + (W - L - R) * (t - t0) / (t1 - t0);
    const y = v => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
    const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
                              'aria-label': opts.title || 'chart' });
    for (const v of [lo, hi]) {
      root.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      root.append(svg('text', { class: 'tick', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' },
                       compact(v)));
    }
    let d = '';
    points.forEach((p, i) => {
      d += i === 0 ? `M${x(p.t)},${y(p.v)}` : `H${x(p.t)}V${y(p.v)}`;
    });
    d += `H${W - R}`;
    root.append(svg('path', { class: 'line ' + (opts.cls || 's0'), d, 'data-points': points.length }));
    points.forEach(p => {
      const c = svg('circle', { class: 'dot ' + (opts.cls || 's0'), cx: x(p.t), cy: y(p.v), r: 2.5,
                                'data-value': p.v });
      c.append(svg('title', {}, `${new Date(p.t * 1000).toISOString()}: ${p.v}`));
      root.append(c);
    });
    for (const t of [t0, t1]) {
      root.append(svg('text', { class: 'tick', x: x(t), y: H - 8,
                                'text-anchor': t === t0 ? 'start' : 'end' },
                       new Date(t * 1000).toISOString().slice(0, 16).replace('T', ' ')));
    }
    host.replaceChildren(root);
  }

  return { bars, hbars, steps, compact };
})();
