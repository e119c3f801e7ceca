// Drives the inspector page in headless Chromium (Debian's, through playwright-core) against a
// running hookhouse, the way a new user would: it loads with no console errors, shows a request
// posted after it opened, filters it, opens it, copies it as curl (and the copied command
// really sends it), replays a failure, and is usable on a phone. A screenshot of each state goes
// to SCREENSHOTS. Run by tests/inspector_browser.rs, which sets:
//   ADMIN_URL, WEBHOOK_URL, SCREENSHOTS, FAILED_SEQ (a request whose failure a replay fixes),
//   HOSTILE_SEQ (a request whose values are HTML and script, which must show as text),
//   OLDER_VERSION_REASON (the reason FAILED_SEQ's failure gives),
//   TOKEN (optional: then the page must ask for it), NODE_PATH (playwright-core),
//   HOOKHOUSE (the binary, whose `simulate` sends traffic while the page watches).
// Exits non-zero, saying why, on the first thing that is not as expected.
'use strict';

const { chromium } = require('playwright-core');
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const ADMIN_URL = process.env.ADMIN_URL;
const WEBHOOK_URL = process.env.WEBHOOK_URL;
const SCREENSHOTS = process.env.SCREENSHOTS;
const FAILED_SEQ = process.env.FAILED_SEQ;
const HOSTILE_SEQ = process.env.HOSTILE_SEQ;
const TOKEN = process.env.TOKEN;
const TIMEOUT = 15000;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// Console errors and uncaught exceptions of a page; `allowed` matches messages that are the
// point of the test (the 401 a page without its token gets).
function watch(page, problems, allowed = null) {
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (allowed && allowed.test(message.text())) return;
    problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: false });
}

// Waits until the detail pane shows request `seq` with its event: the pane of the request
// open before stays until the new one is fetched, and has an event row too.
async function detailOf(page, seq) {
  await page.waitForFunction((s) => {
    const title = document.querySelector('#detail header h2');
    return title && title.textContent === `Request #${s}` && document.querySelector('#detail .event-row');
  }, seq);
}

async function rowTexts(page) {
  return page.$$eval('#requests tbody tr', (rows) => rows.map((row) => row.textContent));
}

async function postEvent(email, campaignId) {
  const body = JSON.stringify({
    email,
    eventName: 'emailOpen',
    dataFields: {
      email, campaignId, templateId: 4242, messageId: `m-${Date.now()}`,
      createdAt: '2026-12-02 08:00:00 +00:00', userAgent: 'Mozilla/5.0 (browser test)',
    },
  });
  const response = await fetch(WEBHOOK_URL, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  check(response.status === 200, `posting an event answered ${response.status}`);
  return (await response.json()).seq;
}

async function inspectorFlow(browser) {
  const problems = [];
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(ADMIN_URL).origin });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  watch(page, problems);

  // 1. It loads, with what is already in the store.
  await page.goto(ADMIN_URL);
  await page.waitForSelector('#requests tbody tr');
  await page.waitForSelector('#chart rect');
  await page.waitForSelector('#sinks li');
  const before = await rowTexts(page);
  check(before.length > 0, 'the list is empty');
  await shot(page, '01-loaded');

  // 2. A request posted after the page opened appears without a reload.
  const email = `new.arrival.${Date.now()}@example.com`;
  const seq = await postEvent(email, 777001);
  await page.waitForSelector(`#requests tbody tr[data-seq="${seq}"]`);
  const first = await page.$eval('#requests tbody tr', (row) => row.dataset.seq);
  check(Number(first) === seq, `the new request #${seq} is not on top (found #${first})`);
  await page.waitForFunction((s) => {
    const row = document.querySelector(`#requests tbody tr[data-seq="${s}"]`);
    return row && row.textContent.includes('emailOpen') && row.textContent.includes('events');
  }, seq);
  await shot(page, '02-new-request');

  // `hookhouse simulate`, as the README suggests: its requests arrive in the open page.
  const shown = (await rowTexts(page)).length;
  execFileSync(process.env.HOOKHOUSE, ['simulate', '--url', WEBHOOK_URL, '--count', '25'], { stdio: 'ignore' });
  await page.waitForFunction((n) => document.querySelectorAll('#requests tbody tr').length >= n, shown + 25);
  await page.waitForFunction(() => !document.querySelector('#requests tbody .badge.pending'));

  // 3. Filtering by its email leaves it alone.
  await page.fill('#filters input[name=email]', email);
  await page.click('#filters button[type=submit]');
  await page.waitForFunction((s) => {
    const rows = document.querySelectorAll('#requests tbody tr');
    return rows.length === 1 && rows[0].dataset.seq === String(s);
  }, seq);
  await shot(page, '03-filtered');

  // 4. Its detail: the body, the event's columns.
  await page.click(`#requests tbody tr[data-seq="${seq}"]`);
  await page.waitForSelector('#detail-body');
  const bodyText = await page.textContent('#detail-body');
  check(bodyText.includes(email) && bodyText.includes('"campaignId": 777001'), 'the detail does not show the pretty body');
  const eventText = await page.textContent('.event-row');
  for (const expected of ['event_name', 'emailOpen', 'campaign_id', '777001', email]) {
    check(eventText.includes(expected), `the event row does not show ${expected}`);
  }
  check(page.url().endsWith(`#/requests/${seq}`), `the URL does not name the request: ${page.url()}`);
  await shot(page, '04-detail');

  // 5. Copy as curl, and the copied command sends the same request again: a duplicate.
  await page.click('#copy-curl');
  await page.waitForSelector('#toast.show');
  const curl = await page.evaluate(() => navigator.clipboard.readText());
  check(curl.includes('curl -X POST ') && curl.includes(WEBHOOK_URL) && curl.includes(email), `the copied command is not right:\n${curl}`);
  const answer = execFileSync('bash', ['-c', curl.replace(/\\\n/g, ' ') + ' -s'], { encoding: 'utf8' });
  check(answer.includes('"stored"'), `the copied command was not stored: ${answer}`);
  const resent = JSON.parse(answer).seq;
  // A resend's events are the first request's rows, so the email filter (which finds the
  // requests whose rows carry it) does not list it: it shows without filters.
  await page.click('#filters button[type=reset]');
  await page.waitForFunction((s) => {
    const row = document.querySelector(`#requests tbody tr[data-seq="${s}"]`);
    return row && row.textContent.includes('duplicate');
  }, resent);

  // 6. A request whose values are markup shows them as text and runs none of it (the CSP
  // would also refuse, and say so on the console, which fails this test).
  await page.goto(`${ADMIN_URL}#/requests/${HOSTILE_SEQ}`);
  await detailOf(page, HOSTILE_SEQ);
  const hostile = await page.textContent('#detail');
  check(hostile.includes('<img src=x onerror=') && hostile.includes('</pre><script>'), 'the markup is not shown as text');
  check(await page.evaluate(() => window.__xss === undefined), 'a value of the request ran as script');
  check(await page.$('#detail img, #detail script:not([src])') === null, 'a value of the request became an element');

  // 7. The failure, replayed now that this hookhouse reads it.
  await page.click('.tabs button[data-tab=failures]');
  const failedRow = `#failures tbody tr[data-seq="${FAILED_SEQ}"]`;
  await page.waitForSelector(failedRow);
  check((await page.textContent(failedRow)).includes(process.env.OLDER_VERSION_REASON), 'the failure shows no reason');
  await shot(page, '05-failures');
  await page.click(`${failedRow} button.replay`);
  await page.waitForFunction(() => document.querySelector('#toast').textContent.includes('Replayed request'));
  const toastText = await page.textContent('#toast');
  check(toastText.includes('1 events') && toastText.includes('1 → 0'), `the replay says: ${toastText}`);
  await page.waitForSelector(failedRow, { state: 'detached' });
  await shot(page, '06-replayed');
  await page.goto(`${ADMIN_URL}#/requests/${FAILED_SEQ}`);
  await detailOf(page, FAILED_SEQ);
  check((await page.textContent('#detail header')).includes('events'), 'the replayed request is not shown with its event');

  await context.close();
  return problems;
}

async function phoneFlow(browser) {
  const problems = [];
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  watch(page, problems);
  await page.goto(ADMIN_URL);
  await page.waitForSelector('#requests tbody tr');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 400, `the page is ${width} px wide on a 390 px phone`);
  await shot(page, '07-phone-list');
  await page.tap('#requests tbody tr');
  await page.waitForSelector('#detail-body');
  const box = await page.$eval('#detail', (pane) => pane.getBoundingClientRect().width);
  check(box >= 380, `the detail is ${box} px wide on a phone`);
  await shot(page, '08-phone-detail');
  await page.tap('#close-detail');
  await page.waitForSelector('#detail', { state: 'hidden' });
  await context.close();
  return problems;
}

// With `admin.token`: the page asks for it, refuses a wrong one, then works.
async function tokenFlow(browser) {
  const problems = [];
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  watch(page, problems, /status of 401/);
  await page.goto(ADMIN_URL);
  await page.waitForSelector('#token-dialog[open]');
  await shot(page, '09-token-asked');
  check(await page.isHidden('#token-error'), 'the first ask says a token was refused');
  await page.fill('#token', 'not-the-token-at-all');
  const refused = page.waitForResponse((response) => response.url().includes('/api/') && response.status() === 401);
  await page.click('#token-form button[type=submit]');
  await refused;
  await page.waitForSelector('#token-error', { state: 'visible' });
  await page.waitForSelector('#token-dialog[open]');
  await page.fill('#token', TOKEN);
  await page.click('#token-form button[type=submit]');
  await page.waitForSelector('#requests tbody tr');
  await shot(page, '10-token-accepted');
  await context.close();
  return problems;
}

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const problems = TOKEN ? await tokenFlow(browser) : [...await inspectorFlow(browser), ...await phoneFlow(browser)];
    check(problems.length === 0, `the page had problems:\n  ${problems.join('\n  ')}`);
    console.log(`inspector browser test passed; screenshots in ${SCREENSHOTS}`);
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(`inspector browser test failed: ${error.stack || error}`);
  process.exit(1);
});
