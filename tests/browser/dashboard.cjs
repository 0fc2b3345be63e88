// SPDX-License-Identifier: Apache-2.0
// The fleet dashboard in a real browser (run by tests/browser/dashboard.sh, which seeds the
// collector and starts posgate-hub): Debian's chromium, headless, driven by playwright-core.
// Signs in with the admin token, then checks that each device of the fixture shows in its
// state, that the device table sorts and filters, that the charts drew marks with data, that a
// device's page, the feed versions and the decisions (with a listing's decisions) show, that the
// transparency report of the fixture's month shows its figures (those of GET /v1/fleet/report,
// and the fixture's own counts), that a page of another origin cannot read the fleet's data,
// and that logging out ends the session.
// Any console error, page error, failed request, refused answer or request to another host
// fails the test. Saves a screenshot of the overview.
// Usage: node dashboard.cjs  (environment: HUB_URL, TOKEN, CURRENT, STALE, BROKEN, LISTING,
//        STALE_LIST, MONTH, LOOKED_UP, SHOT, CHROMIUM)
'use strict';

const http = require('http');
const { chromium } = require('playwright-core');

const env = name => {
  const v = process.env[name];
  if (!v) {
    throw new Error(`dashboard.cjs: ${name} is not set`);
  }
  return v;
};
const HUB = env('HUB_URL'), TOKEN = env('TOKEN');
const CURRENT = env('CURRENT'), STALE = env('STALE'), BROKEN = env('BROKEN');
const LISTING = env('LISTING'), STALE_LIST = env('STALE_LIST'), SHOT = env('SHOT');
const MONTH = env('MONTH'), LOOKED_UP = env('LOOKED_UP');

const problems = [];
function check(cond, what) {
  if (!cond) {
    throw new Error('FAIL: ' + what);
  }
}
function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// A page on another origin (another port of 127.0.0.1: the same site, so SameSite cookies go
// along) that tries to read the fleet's data.
function otherOrigin() {
  return new Promise(resolve => {
    const srv = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<!DOCTYPE html><title>another site</title><p>another site</p>');
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

async function rows(page) {
  return page.$$eval('#devices-table tbody tr', trs => trs.map(t => t.getAttribute('data-device')));
}

async function states(page, id) {
  return page.$$eval(`#devices-table tr[data-device="${id}"] .state`,
                     s => s.map(e => e.getAttribute('data-state')));
}

async function ready(page, view) {
  await page.waitForSelector(`body[data-ready="${view}"]`, { timeout: 15000 });
}

// Marks of a chart with a value above zero.
async function marks(page, sel) {
  return page.$$eval(`${sel} svg [data-value]`,
                     m => m.filter(e => Number(e.getAttribute('data-value')) > 0).length);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
    args: ['--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  const origin = new URL(HUB).origin;
  page.on('console', m => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('pageerror', e => problems.push('page error: ' + e.message));
  page.on('requestfailed', r => problems.push(`request failed: ${r.url()} ${r.failure().errorText}`));
  page.on('request', r => {
    if (!r.url().startsWith(origin + '/')) {
      problems.push('a request to another host: ' + r.url());
    }
  });
  page.on('response', r => {
    if (r.status() >= 400) {
      problems.push(`HTTP ${r.status()}: ${r.url()}`);
    }
  });

  // ---- sign in
  await page.goto(HUB + '/dashboard');
  await page.waitForSelector('#login-form', { state: 'visible' });
  await page.fill('#token', TOKEN);
  await page.click('#login-form button[type=submit]');
  await ready(page, 'overview');
  check(await page.inputValue('#token') === '', 'the token stays in the form after the login');
  const cookies = await context.cookies();
  const session = cookies.find(c => c.name === 'posgate_hub_session');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'session cookie: ' + JSON.stringify(cookies));
  check(await page.evaluate(() => document.cookie) === '', 'the page script can read the session cookie');

  // ---- overview: the state cards and the charts
  const counts = await page.$$eval('#cards .card', cs => Object.fromEntries(
    cs.map(c => [c.getAttribute('data-state'), Number(c.getAttribute('data-count'))])));
  check(same(counts, { current: 1, behind: 1, stale: 1, expired: 0, list_key_mismatch: 0,
                       chain_broken: 1, gaps: 0, silent: 0 }), 'overview cards: ' + JSON.stringify(counts));
  check(await marks(page, '#chart-versions') === 2, 'the feed versions chart has no bar per version');
  check(await marks(page, '#chart-decisions-overview') >= 3, 'the decisions chart has no bars');
  const attention = await page.$$eval('#attention-table tbody tr', t => t.map(r => r.getAttribute('data-device')));
  check(same(attention.sort(), [BROKEN, STALE].sort()), 'attention table: ' + attention);
  await page.screenshot({ path: SHOT, fullPage: true });

  // ---- devices: each in its state, sorting, filters
  await page.click('#nav a[data-view=devices]');
  await ready(page, 'devices');
  check(same(await states(page, CURRENT), ['current']), 'current device: ' + await states(page, CURRENT));
  check(same(await states(page, STALE), ['stale']), 'stale device: ' + await states(page, STALE));
  check(same(await states(page, BROKEN), ['behind', 'chain_broken']), 'broken device: ' + await states(page, BROKEN));
  const ids = [CURRENT, STALE, BROKEN].sort();
  check(same(await rows(page), ids), 'default order (device id): ' + await rows(page));
  await page.click('th[data-sort=device_id]');
  check(same(await rows(page), ids.slice().reverse()), 'device id descending: ' + await rows(page));
  await page.click('th[data-sort=feed_version]');
  check(await page.getAttribute('th[data-sort=feed_version]', 'aria-sort') === 'ascending', 'aria-sort');
  const v3 = [CURRENT, STALE].sort();
  check(same(await rows(page), [BROKEN, ...v3]), 'feed version ascending: ' + await rows(page));
  await page.click('th[data-sort=feed_version]');
  check(same(await rows(page), [...v3, BROKEN]), 'feed version descending: ' + await rows(page));
  await page.selectOption('#filter-state', 'stale');
  check(same(await rows(page), [STALE]), 'filter stale: ' + await rows(page));
  await page.selectOption('#filter-state', 'chain_broken');
  check(same(await rows(page), [BROKEN]), 'filter chain_broken: ' + await rows(page));
  await page.selectOption('#filter-state', 'expired');
  check(same(await rows(page), []), 'filter expired: ' + await rows(page));
  await page.selectOption('#filter-state', '');
  await page.selectOption('#filter-version', '3');
  check(same(await rows(page), v3), 'filter version 3: ' + await rows(page));
  await page.selectOption('#filter-version', '');
  await page.fill('#filter-text', CURRENT.slice(0, 10));
  check(same(await rows(page), [CURRENT]), 'filter by id: ' + await rows(page));
  check((await page.textContent('#devices-count')).startsWith('1 of 3'), 'devices count');
  await page.fill('#filter-text', '');

  // ---- a device's page
  await page.click(`#devices-table tr[data-device="${STALE}"] a`);
  await ready(page, 'device/' + STALE);
  check(await page.textContent('#device-id') === STALE, 'device page id');
  check(await page.$(`#lists-table tr[data-list="${STALE_LIST}"] .st-stale`) !== null, 'stale list on the device page');
  check(await marks(page, '#chart-device-feed') >= 2, 'the feed version chart of the device');
  check((await page.$$('#history-table tbody tr')).length >= 2, 'the device history');

  // ---- feed versions
  await page.click('#nav a[data-view=versions]');
  await ready(page, 'versions');
  check(await marks(page, '#chart-propagation') >= 2, 'the versions chart');
  const behind = await page.$$eval('#versions-table tr[data-version="3"] a', a => a.map(x => x.textContent));
  check(same(behind, [BROKEN]), 'behind version 3: ' + behind);

  // ---- decisions, and one listing's decisions
  await page.click('#nav a[data-view=decisions]');
  await ready(page, 'decisions');
  check(await marks(page, '#chart-decisions') >= 3, 'the decisions chart');
  const keys = await page.$$eval('#chart-decisions rect.bar', r => [...new Set(r.map(x => x.getAttribute('data-key')))].sort());
  check(same(keys, ['allow', 'deny', 'refer']), 'decisions by decision: ' + keys);
  await page.selectOption('#dec-by', 'list');
  await page.waitForFunction(() => location.hash.includes('by=list'));
  await ready(page, 'decisions');
  await page.waitForSelector('#chart-decisions rect[data-key="spc-enforcement"]');
  await page.click(`#listings-table tr[data-listing="${LISTING}"] a.show-listing`);
  await page.waitForSelector('#listing-table tbody tr');
  const cited = await page.$$eval('#listing-table tbody tr', t => t.length);
  check(cited === 3, `decisions citing ${LISTING}: ${cited}`);
  const json = await page.getAttribute(`#listings-table tr[data-listing="${LISTING}"] a.listing-json`, 'href');
  const viaLink = await context.request.get(HUB + json);
  check(viaLink.status() === 200 && (await viaLink.json()).length === 3, 'the listing JSON link');

  // ---- the transparency report of the fixture's month
  await page.click('#nav a[data-view=report]');
  await ready(page, 'report');
  const reportOf = async m => {
    await page.fill('#report-month', m);
    await page.waitForFunction(x => location.hash === '#report?month=' + x &&
                               document.querySelector('#view h1').textContent === 'Transparency report, ' + x, m);
  };
  await reportOf('2001-01'); // a month with nothing
  const empty = await page.$$eval('#report-cards .card', cs => cs.map(c => c.getAttribute('data-count')));
  check(same(empty, ['0', '0', '0', '0', '0', '—']) && await page.$('#report-services') === null,
        'the report of 2001-01: ' + empty);
  await reportOf(MONTH);
  const rep = await (await context.request.get(`${HUB}/v1/fleet/report?month=${MONTH}`)).json();
  const cards = await page.$$eval('#report-cards .card', cs => Object.fromEntries(
    cs.map(c => [c.getAttribute('data-fig'), c.getAttribute('data-count')])));
  // the fixture's checks on air: DENY 6 (spc-enforcement 5, caac-safety 2: one cites both),
  // REFER 1 (caac-safety), ALLOW 4; one contest looked up, a DENY citing LOOKED_UP
  check(same([cards.checks, cards.deny, cards.refer, cards.overrides, cards.lookups], ['11', '6', '1', '0', '1']),
        'report cards: ' + JSON.stringify(cards));
  check(rep.totals.checks === 11 && rep.totals.lookups === 1, 'report totals: ' + JSON.stringify(rep.totals));
  const cellsOf = sel => page.$$eval(sel, tds => Object.fromEntries(
    tds.map(td => [td.getAttribute('data-fig'), Number(td.textContent)])));
  const air = await cellsOf('#report-services tr[data-service="air"] td[data-fig]');
  const { service: _s, ...airJson } = rep.services.find(x => x.service === 'air');
  check(same(air, airJson) && air.allow === 4 && air.deny === 6 && air.refer === 1,
        'report, service air: ' + JSON.stringify(air));
  for (const [list, deny, refer, lookups] of [['spc-enforcement', 5, 0, LOOKED_UP === 'spc-enforcement' ? 1 : 0],
                                                ['caac-safety', 2, 1, LOOKED_UP === 'caac-safety' ? 1 : 0]]) {
    const got = await cellsOf(`#report-lists tr[data-list="${list}"][data-service="air"] td[data-fig]`);
    const { list: _l, service: _v, ...want } = rep.lists.find(x => x.list === list && x.service === 'air');
    check(same(got, want) && got.deny === deny && got.refer === refer && got.lookups === lookups,
          `report, list ${list}: ${JSON.stringify(got)}`);
  }
  const versionsShown = await page.$$eval('#report-versions tbody tr', t => t.map(r => Number(r.getAttribute('data-version'))));
  check(same(versionsShown, rep.propagation.versions.map(v => v.feed_version)) && versionsShown.includes(3),
        'report, feed versions: ' + versionsShown);
  const text = await page.textContent('#view');
  for (const id of [CURRENT, STALE, BROKEN, 'SPC-HARD-1', 'CAAC-', 'clerk-']) {
    check(!text.includes(id), 'the report view names ' + id);
  }

  // ---- another origin, while signed in: its page cannot read the data
  const srv = await otherOrigin();
  const other = await context.newPage();
  await other.goto(`http://127.0.0.1:${srv.address().port}/`);
  const stolen = await other.evaluate(async url => {
    const out = [];
    for (const init of [{ credentials: 'include' },
                        { credentials: 'include', headers: { Authorization: 'Bearer x' } }]) {
      try {
        const r = await fetch(url, init);
        out.push('read ' + r.status + ' ' + (await r.text()).slice(0, 40));
      } catch (e) {
        out.push('blocked');
      }
    }
    return out;
  }, HUB + '/v1/fleet/devices');
  check(same(stolen, ['blocked', 'blocked']), 'another origin read the fleet: ' + stolen);
  await other.close();
  srv.close();

  // ---- log out: the session is gone
  await page.click('#logout');
  await page.waitForSelector('#login-form', { state: 'visible' });
  const after = await context.request.get(HUB + '/v1/fleet/overview');
  check(after.status() === 401, 'after logging out: HTTP ' + after.status());

  await browser.close();
  check(problems.length === 0, 'the browser reported:\n  ' + problems.join('\n  '));
}

main().then(() => {
  console.log('browser/dashboard: ok (sign in, states, sorting, filters, charts, device, versions, ' +
              'decisions, listing, another origin refused, log out)');
}, e => {
  console.error(e.message);
  if (problems.length) {
    console.error('the browser also reported:\n  ' + problems.join('\n  '));
  }
  process.exit(1);
});
