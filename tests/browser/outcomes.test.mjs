// End-to-end tests of rating scales in a browser: the outcome page with its charts, the
// clinician's item form, questionnaire links answered by the patient on a phone, safety alerts
// and the instrument catalogue, against one demo clinic.
//
// Run with `npm test` in tests/browser after `cargo build -p ketacare` (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  RESULTS_DIR,
  STEP_TIMEOUT_MS,
  clickAndWait,
  launchBrowser,
  login,
  openChart,
  pathname,
  rows,
  startServer,
  text,
  submit,
  withPage,
} from './harness.mjs';

const TEST_TIMEOUT_MS = 120_000;
/** A phone held upright (iPhone 12–15 class). */
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 3 };

const GAD7_CHOICES = ['Not at all', 'Several days', 'More than half the days', 'Nearly every day'];

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A test that gets a fresh, logged-out page. */
function uiTest(name, body, options = {}) {
  test(name, { timeout: TEST_TIMEOUT_MS }, () => withPage(browser, server, name, body, options));
}

/**
 * Runs `body(phone)` in a second, cookie-less browser context that looks like a phone: the
 * patient opening a questionnaire link. Server errors fail the test; a failure saves a screenshot.
 */
async function onPhone(name, body) {
  const context = await browser.newContext(PHONE);
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  const phone = await context.newPage();
  const serverErrors = [];
  phone.on('response', (r) => {
    if (r.status() >= 500) serverErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  try {
    await body(phone);
    assert.deepEqual(serverErrors, [], 'no request from the phone may end in a server error');
  } catch (e) {
    await mkdir(RESULTS_DIR, { recursive: true });
    const base = path.join(RESULTS_DIR, `${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 70)}-phone`);
    await phone.screenshot({ path: `${base}.png`, fullPage: true }).catch(() => {});
    await writeFile(`${base}.html`, `<!-- ${phone.url()} -->\n${await phone.content().catch(() => '')}`).catch(() => {});
    console.error(`phone failure screenshot: ${base}.png (page ${phone.url()})`);
    throw e;
  } finally {
    await context.close();
  }
}

/** Taps something that loads a new page (link or submit button) and waits for that page. */
async function tapAndWait(page, locator) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), locator.tap()]);
  return response;
}


/** Horizontal overflow of the page: `{ scrollWidth, innerWidth, wide }` (wide: offending elements). */
async function overflow(page) {
  return page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    wide: Array.from(document.querySelectorAll('body *'))
      .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
      .filter((el) => el.parentElement.getBoundingClientRect().right <= window.innerWidth + 1)
      .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.split(' ').join('.')}` : ''} (${Math.round(el.getBoundingClientRect().width)}px)`),
  }));
}

/** The fieldset of item `n` (1-based) of a rating-scale form, found by its legend. */
function item(page, n) {
  return page.getByRole('group', { name: new RegExp(`^${n}\\. `) });
}

/** Chooses answer `value` for item `n` on the clinician's form (click on the choice's label). */
async function choose(page, n, value) {
  const radio = item(page, n).getByRole('radio', { name: new RegExp(`^${value}\\b`) });
  await radio.check();
  assert.ok(await radio.isChecked(), `item ${n} = ${value} is checked`);
}

/** The value checked for item `n`, or null. */
async function checkedValue(page, n) {
  const radios = page.locator(`input[type=radio][name="item_${n}"]`);
  assert.ok((await radios.count()) > 0, `item ${n} has radio buttons`);
  return radios.evaluateAll((els) => els.find((e) => e.checked)?.value ?? null);
}

/** Opens a patient's chart through the patient list and returns `{ id, name, chartPath }`. */
async function findPatient(page, mrn) {
  await openChart(page, mrn);
  const chartPath = pathname(page);
  return { id: chartPath.split('/')[2], name: await text(page.getByRole('heading', { level: 1 })), chartPath };
}

/** From the chart, opens the outcome page with the chart's button. */
async function openOutcomes(page, chartPath) {
  await clickAndWait(page, page.getByRole('link', { name: 'Outcomes and rating scales' }));
  assert.equal(pathname(page), `${chartPath}/outcomes`);
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Outcomes');
}

/** Creates a questionnaire link on the outcome page and returns the full URL shown once. */
async function sendLink(page, instrumentLabel, { session, timepoint: timepointLabel } = {}) {
  // By field name, not by label: the label "Questionnaire" points at the schedule form's
  // select (both selects have id="f-instrument"); the test "every field … labelled" covers it.
  const form = page.locator('section#requests form').filter({ has: page.getByRole('button', { name: 'Create link' }) });
  await form.locator('select[name="instrument"]').selectOption({ label: instrumentLabel });
  if (session) {
    const select = form.locator('select[name="session"]');
    const options = await select.locator('option').allInnerTexts();
    const label = options.find((o) => o.includes(session));
    assert.ok(label, `a session "${session}" is offered: ${JSON.stringify(options)}`);
    await select.selectOption({ label });
  }
  if (timepointLabel) await form.locator('select[name="timepoint"]').selectOption({ label: timepointLabel });
  const res = await submit(page, form.getByRole('button', { name: 'Create link' }));
  assert.equal(res.status(), 201, 'creating the link answers 201 Created');
  const status = page.getByRole('status').filter({ hasText: 'Questionnaire link created' });
  assert.match(await text(status), new RegExp(`Questionnaire link created \\(${instrumentLabel.split(' — ')[0]}\\)`));
  const link = await text(page.locator('code#sent-link'));
  assert.match(link, /^http:\/\/[^/\s]+\/q\/[A-Za-z0-9_-]{20,}$/, `a full URL with a long token: ${link}`);
  assert.equal(new URL(link).host, new URL(server.baseURL).host, 'the link points at this server');
  return link;
}

/** The request rows of the outcome page as `[questionnaire, sent, by, expires, state, action]`. */
function requestRows(page) {
  return rows(page.locator('section#requests table'));
}

/** Records a rating scale through the clinician's form; returns the record page's response. */
async function recordScale(page, patientId, key, answers, { takenAt } = {}) {
  await page.goto(`/patients/${patientId}/assessments/new?instrument=${key}`);
  for (const [i, v] of answers.entries()) if (v !== null) await choose(page, i + 1, v);
  if (takenAt) await page.getByLabel('Taken at (UTC; empty = now)').fill(takenAt);
  return submit(page, page.getByRole('button', { name: 'Save and score' }));
}

// 1. The required story: a link sent by the prescriber is answered on the patient's phone and
//    shows up in the outcome table and chart.
uiTest('prescriber sends a GAD-7 link, the patient answers it on a phone, and the result appears on the outcome page', async (page) => {
  await login(page, 'prescriber');
  const patient = await findPatient(page, 'KC-000002');
  const [family, given] = patient.name.split(', ');
  await openOutcomes(page, patient.chartPath);
  assert.equal(await page.locator('section#instrument-gad7').count(), 0, 'no GAD-7 series before the link is answered');
  assert.match(await text(page.locator('section#requests')), /None sent\./);

  const link = await sendLink(page, 'GAD-7 — Generalized Anxiety Disorder 7-item scale', {
  });
  const sentRows = await requestRows(page);
  assert.equal(sentRows.length, 1, `one request listed: ${JSON.stringify(sentRows)}`);
  assert.equal(sentRows[0][0], 'GAD-7');
  assert.equal(sentRows[0][2], 'prescriber');
  assert.equal(sentRows[0][4], 'open');

  // The patient's phone: no login, no staff session.
  const answers = [1, 2, 1, 3, 0, 2, 1];
  const total = answers.reduce((a, b) => a + b, 0); // 10: moderate (Spitzer 2006)
  await onPhone('gad7 link answered on a phone', async (phone) => {
    const res = await phone.goto(link);
    assert.equal(res.status(), 200);
    assert.equal(await text(phone.getByRole('heading', { level: 1 })), 'GAD-7');
    const { scrollWidth, innerWidth, wide } = await overflow(phone);
    assert.equal(innerWidth, 390, 'the page uses the phone width (meta viewport)');
    assert.ok(scrollWidth <= innerWidth, `the questionnaire is ${scrollWidth}px wide on a ${innerWidth}px phone; too wide: ${wide.join(', ')}`);
    const body = await text(phone.locator('body'));
    for (const part of [family, given, patient.name, 'KC-000002']) {
      assert.ok(!body.includes(part), `the patient page must not show "${part}"`);
    }
    assert.ok(!(await phone.content()).includes('KC-000002'), 'the MRN is not in the HTML either');
    assert.equal(await phone.getByRole('navigation').count(), 0, 'no staff navigation');
    assert.equal(await phone.getByRole('button', { name: 'Log out' }).count(), 0);

    for (const [i, v] of answers.entries()) {
      const choice = item(phone, i + 1).locator('label.choice').filter({ hasText: GAD7_CHOICES[v] });
      assert.equal(await choice.count(), 1, `item ${i + 1} has one choice "${GAD7_CHOICES[v]}"`);
      const box = await choice.boundingBox();
      assert.ok(box.height >= 44 && box.width >= 300, `item ${i + 1}: the choice is a large touch target (${Math.round(box.width)}x${Math.round(box.height)})`);
      await choice.tap();
      assert.equal(await checkedValue(phone, i + 1), String(v), `tapping "${GAD7_CHOICES[v]}" checks item ${i + 1}`);
    }
    const sent = await tapAndWait(phone, phone.getByRole('button', { name: 'Send' }));
    assert.equal(sent.status(), 200);
    assert.equal(await text(phone.getByRole('heading', { level: 1 })), 'Thank you');
    assert.match(await text(phone.locator('main')), /Your answers have been sent to your clinic/);

    // The same link again (for example from the browser history): answered already.
    const again = await phone.goto(link);
    assert.equal(again.status(), 410, 'a used link answers 410 Gone');
    assert.match(await text(phone.locator('main')), /already been answered/);
    assert.equal(await phone.getByRole('button', { name: 'Send' }).count(), 0, 'no form to answer twice');
  });

  // Back at the clinic.
  await page.goto(`${patient.chartPath}/outcomes`);
  const series = page.locator('section#instrument-gad7');
  assert.equal(await series.count(), 1, 'a GAD-7 series appears');
  assert.match(await text(series.getByRole('heading', { level: 2 })), /^GAD-7 Generalized Anxiety Disorder 7-item scale$/);
  const table = await rows(series.locator('table.series-table'));
  assert.equal(table.length, 1, `one administration: ${JSON.stringify(table)}`);
  assert.match(table[0][1], /^baseline/, 'the first administration is the baseline');
  assert.equal(table[0][2], String(total), 'the table shows the total of the answers');
  assert.equal(table[0][3], 'Moderate');
  const svg = series.locator('figure.outcome-chart svg');
  assert.equal(await svg.count(), 1, 'the chart is drawn');
  assert.equal(await svg.getAttribute('role'), 'img');
  const label = await svg.getAttribute('aria-label');
  assert.match(label, /^GAD-7 total over time: 1 administrations?\b/, `the chart is described: ${label}`);
  assert.match(label, new RegExp(`baseline ${total}, latest ${total}`));
  assert.equal(await svg.locator('circle').count(), 1, 'one point is plotted');

  const done = await requestRows(page);
  assert.equal(done.length, 1);
  assert.equal(done[0][4], 'completed', 'the request is completed');
  const answersLink = page.locator('section#requests').getByRole('link', { name: 'See answers' });
  await clickAndWait(page, answersLink);
  assert.match(pathname(page), /^\/records\/[0-9a-f-]{36}$/);
  assert.match(await text(page.locator('dd.total')), new RegExp(`^${total} / 21 · Moderate$`));
  assert.match(await text(page.locator('main')), /filled in by the patient/);
});

// 2. A blank answer on the patient's form is named and nothing is stored.
uiTest('a questionnaire sent with an item left blank names that item, keeps the other answers and stores nothing', async (page) => {
  await login(page, 'prescriber');
  const patient = await findPatient(page, 'KC-000005');
  await openOutcomes(page, patient.chartPath);
  const link = await sendLink(page, 'PHQ-9 — Patient Health Questionnaire, 9-item depression scale');

  // Item 3 is left blank; item 10 (difficulty) is optional and also left blank.
  const answers = [1, 0, null, 2, 1, 0, 1, 0, 0];
  await onPhone('phq9 with a blank item', async (phone) => {
    await phone.goto(link);
    for (const [i, v] of answers.entries()) {
      if (v === null) continue;
      await item(phone, i + 1).getByRole('radio', { name: new RegExp(`^${v}\\b`) }).tap();
    }
    const res = await tapAndWait(phone, phone.getByRole('button', { name: 'Send' }));
    assert.equal(res.status(), 422, 'the incomplete form is refused');
    assert.notEqual(await text(phone.getByRole('heading', { level: 1 })), 'Thank you');
    const summary = phone.getByRole('alert').filter({ hasText: 'Nothing was sent yet' });
    assert.equal(await summary.count(), 1, 'a summary says nothing was sent');
    const listed = await summary.locator('li').allInnerTexts();
    assert.deepEqual(listed.length, 1, `exactly one problem: ${JSON.stringify(listed)}`);
    assert.match(listed[0], /item 3 \(Trouble falling or staying asleep, or sleeping too much\) is missing/);
    assert.equal(await summary.getByRole('link').getAttribute('href'), '#f-item_3', 'the summary links to the item');
    const fs3 = phone.locator('fieldset#f-item_3');
    assert.match(await fs3.getAttribute('class'), /\binvalid\b/, 'item 3 is marked');
    assert.match(await text(fs3.locator('p.error')), /item 3 .* is missing/);
    assert.equal(await phone.locator('fieldset.item.invalid').count(), 1, 'only item 3 is marked');
    for (const [i, v] of answers.entries()) {
      assert.equal(await checkedValue(phone, i + 1), v === null ? null : String(v), `item ${i + 1} keeps its answer`);
    }
    const { scrollWidth, innerWidth } = await overflow(phone);
    assert.ok(scrollWidth <= innerWidth, `the error page fits the phone (${scrollWidth}px in ${innerWidth}px)`);

    // Nothing stored: the clinic still sees an open request and no PHQ-9.
    await page.goto(`${patient.chartPath}/outcomes`);
    assert.equal((await requestRows(page))[0][4], 'open', 'the request is still open');
    assert.equal(await page.locator('section#instrument-phq9').count(), 0, 'no PHQ-9 was stored');

    // The patient adds the missing answer and sends the kept answers.
    await item(phone, 3).getByRole('radio', { name: /^2\b/ }).tap();
    const ok = await tapAndWait(phone, phone.getByRole('button', { name: 'Send' }));
    assert.equal(ok.status(), 200);
    assert.equal(await text(phone.getByRole('heading', { level: 1 })), 'Thank you');
  });
  await page.goto(`${patient.chartPath}/outcomes`);
  const table = await rows(page.locator('section#instrument-phq9 table.series-table'));
  assert.equal(table.length, 1);
  assert.equal(table[0][2], '7', 'the total counts the kept answers plus item 3 (1+0+2+2+1+0+1+0+0)');
  assert.equal((await requestRows(page))[0][4], 'completed');
});

// 3. An urgent PHQ-9 item 9 raises a safety alert that must be acknowledged with what was done.
uiTest('nurse records a PHQ-9 with item 9 above 0; the urgent alert is shown, announced and acknowledged with a note', async (page) => {
  await login(page, 'nurse');
  const before = page.locator('#open-alerts');
  const openBefore = (await before.count()) ? Number((await text(before)).match(/^(\d+) open safety alert/)[1]) : 0;

  const patient = await findPatient(page, 'KC-000007');
  await openOutcomes(page, patient.chartPath);
  await clickAndWait(page, page.getByRole('link', { name: 'Record a rating scale' }));
  await page.getByLabel('Instrument').selectOption({ label: 'PHQ-9 — Patient Health Questionnaire, 9-item depression scale' });
  await clickAndWait(page, page.getByRole('button', { name: 'Open the form' }));
  assert.equal(pathname(page), `${patient.chartPath}/assessments/new`);
  assert.equal(new URL(page.url()).searchParams.get('instrument'), 'phq9');
  assert.match(await text(page.getByRole('heading', { level: 2 })), /^PHQ-9 · Patient Health Questionnaire/);
  assert.equal(await page.locator('fieldset.item').count(), 10, 'PHQ-9 shows 9 scored items and the difficulty item');

  const answers = [1, 1, 0, 1, 0, 0, 1, 0, 1];
  for (const [i, v] of answers.entries()) await choose(page, i + 1, v);
  await clickAndWait(page, page.getByRole('button', { name: 'Save and score' }));
  assert.match(pathname(page), /^\/records\/[0-9a-f-]{36}$/, 'saving shows the record');
  assert.equal(await text(page.locator('dd.total')), '5 / 27 · Mild');
  const urgent = page.getByRole('alert').filter({ hasText: 'Urgent' });
  assert.equal(await urgent.count(), 1, 'an urgent flag is shown as an alert');
  assert.match(await text(urgent), /^Urgent: Thoughts of being better off dead or of self-harm \(item 9 above 0\): assess suicide risk now$/);

  // The patient list announces it.
  await page.goto('/patients');
  const banner = page.locator('#open-alerts');
  assert.equal(await banner.count(), 1, 'the patient list shows the open-alerts banner');
  assert.match(await text(banner), new RegExp(`^${openBefore + 1} open safety alerts? need acknowledging\\.`));

  // The outcome page too.
  await page.goto(`${patient.chartPath}/outcomes`);
  assert.match(await text(page.getByRole('alert').filter({ hasText: 'Urgent safety alert' })), /Thoughts of being better off dead/);
  assert.equal(await text(page.locator('section#instrument-phq9 td span.flag.urgent')), 'phq9_item9');

  await clickAndWait(page, page.getByRole('link', { name: 'Acknowledge on the alerts page' }));
  assert.equal(pathname(page), '/alerts');
  const card = () => page.locator('article.alert-card').filter({ has: page.locator(`a[href="/patients/${patient.id}/outcomes"]`) });
  assert.equal(await card().count(), 1, "the patient's alert is open");
  assert.match(await card().getAttribute('class'), /\bopen\b/);

  // Acknowledging without saying what was done is refused.
  const res = await submit(page, card().getByRole('button', { name: 'Acknowledge' }));
  assert.equal(res.status(), 422);
  const err = card().locator('p.error');
  assert.equal(await err.count(), 1, 'the error is shown on this alert');
  assert.match(await text(err), /^What was done .*say what was done/);
  assert.equal(await card().getByLabel('What was done').getAttribute('aria-invalid'), 'true');

  const note = 'Called the patient, safety plan reviewed, no current intent';
  await card().getByLabel('What was done').fill(note);
  await clickAndWait(page, card().getByRole('button', { name: 'Acknowledge' }));
  assert.equal(pathname(page), '/alerts');
  assert.equal(await card().count(), 0, 'the alert left the open list');

  await clickAndWait(page, page.getByRole('link', { name: 'Show acknowledged alerts too' }));
  assert.equal(new URL(page.url()).search, '?all=1');
  assert.equal(await card().count(), 1, 'the acknowledged alert is listed with ?all=1');
  assert.doesNotMatch((await card().getAttribute('class')) ?? '', /\bopen\b/);
  const ack = await text(card());
  assert.match(ack, new RegExp(`Acknowledged by nurse at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC: ${note}`), ack);
  assert.equal(await card().getByRole('button', { name: 'Acknowledge' }).count(), 0);

  await page.goto('/patients');
  const after = page.locator('#open-alerts');
  const openAfter = (await after.count()) ? Number((await text(after)).match(/^(\d+)/)[1]) : 0;
  assert.equal(openAfter, openBefore, 'the banner count went back down');
});

// 4. The clinician's form names missing items and keeps the answers.
uiTest('an incomplete HAM-A is refused with errors naming the items and the answers kept', async (page, context) => {
  await login(page, 'prescriber');
  const patient = await findPatient(page, 'KC-000004');
  // Items 3 and 12 are left blank.
  const answers = [2, 3, null, 1, 1, 2, 0, 1, 0, 0, 1, null, 2, 1];
  const res = await recordScale(page, patient.id, 'hama', answers);
  assert.equal(res.status(), 422, 'the server answers 422');
  assert.equal(pathname(page), `${patient.chartPath}/assessments`);
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Record a rating scale');
  const summary = page.getByRole('alert').filter({ hasText: 'Nothing was saved' });
  const listed = await summary.locator('li').allInnerTexts();
  assert.equal(listed.length, 2, `two problems: ${JSON.stringify(listed)}`);
  assert.match(listed[0], /HAM-A item 3 \(Fears\) is missing/);
  assert.match(listed[1], /HAM-A item 12 \(Genitourinary symptoms\) is missing/);
  const invalid = await page.locator('fieldset.item.invalid').evaluateAll((fs) => fs.map((f) => f.id));
  assert.deepEqual(invalid, ['f-item_3', 'f-item_12'], 'exactly items 3 and 12 are marked');
  assert.match(await text(item(page, 3).locator('p.error')), /item 3 \(Fears\) is missing; enter a whole number from 0 to 4/);
  for (const [i, v] of answers.entries()) {
    assert.equal(await checkedValue(page, i + 1), v === null ? null : String(v), `item ${i + 1} keeps its answer`);
  }

  // Completing the two items saves it; nothing was stored before.
  const other = await context.newPage();
  await other.goto(`${patient.chartPath}/outcomes`);
  assert.equal(await other.locator('section#instrument-hama').count(), 0, 'no HAM-A was stored by the refused form');
  assert.match(await text(other.locator('main')), /No rating scales recorded yet\./);
  await other.close();
  await choose(page, 3, 2);
  await choose(page, 12, 0);
  const ok = await submit(page, page.getByRole('button', { name: 'Save and score' }));
  assert.equal(ok.status(), 200);
  assert.match(pathname(page), /^\/records\/[0-9a-f-]{36}$/);
  assert.equal(await text(page.locator('dd.total')), '16 / 56 · Moderate', '2+3+2+1+1+2+0+1+0+0+1+0+2+1 = 16, Matza moderate');
});

// 5. The catalogue shows every definition with its sources and conflicts.
uiTest('instrument catalogue lists 12 scales; LSAS and HAM-A show their rules, caveats and band sets', async (page) => {
  await login(page, 'nurse');
  await page.goto('/instruments');
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Rating scales');
  const list = await rows(page.locator('main table'));
  assert.equal(list.length, 12, `12 instruments: ${JSON.stringify(list.map((r) => r[0]))}`);
  const names = list.map((r) => r[0].split(' ')[0]);
  for (const n of ['GAD-7', 'PHQ-9', 'HAM-A', 'LSAS']) assert.ok(names.includes(n), `${n} is listed`);
  const gad7 = list.find((r) => r[0].startsWith('GAD-7'));
  assert.deepEqual(gad7.slice(1, 4), ['patient', '7', '0–21']);

  await clickAndWait(page, page.getByRole('link', { name: 'LSAS', exact: true }));
  assert.equal(pathname(page), '/instruments/lsas');
  assert.match(await text(page.getByRole('heading', { level: 1 })), /^LSAS Liebowitz Social Anxiety Scale$/);
  const main = await text(page.locator('main'));
  assert.match(main, /Response: more than 35 % improvement from baseline\./);
  assert.match(main, /exactly 35 % is not a response/, 'the source of the response rule is shown');
  const caveats = await page.locator('p.caveat').allInnerTexts();
  assert.equal(caveats.length, 5, `five caveats: ${JSON.stringify(caveats)}`);
  assert.ok(caveats.some((c) => /severity bands conflict/.test(c)));
  assert.ok(caveats.some((c) => /No remission rule is set/.test(c)));
  assert.equal((await rows(page.locator('main table').first())).length, 48, 'LSAS has 48 ratings');

  await page.goto('/instruments/hama');
  const bandHeadings = await page.getByRole('heading', { level: 2, name: /^Severity bands/ }).allInnerTexts();
  assert.deepEqual(bandHeadings.map((h) => h.trim()), [
    'Severity bands: Matza 2010 severity bands (empirically derived) (default)',
    'Severity bands: Training-material bands',
    'Severity bands: Alternative bands 8/14/18',
  ]);
  const matza = await rows(page.locator('h2:has-text("Matza 2010") + table'));
  assert.deepEqual(matza, [['0–7', 'None or minimal'], ['8–14', 'Mild'], ['15–23', 'Moderate'], ['24–56', 'Severe']]);
  assert.match(await text(page.locator('main')), /Source: Matza LS et al\. 2010/);
  assert.match(await text(page.locator('main')), /Conflicts with Matza 2010/);

  const missing = await page.goto('/instruments/no-such-scale');
  assert.equal(missing.status(), 404);
});

// 6. Links that do not exist and roles that may not look.
uiTest('a made-up questionnaire link shows a plain 404; a researcher may not open the outcome page', async (page, context) => {
  const res = await page.goto('/q/this-is-not-a-real-token-0123456789');
  assert.equal(res.status(), 404);
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Questionnaire');
  assert.match(await text(page.locator('main')), /^Questionnaire This link is not valid\. Please check you opened the whole link, or ask the clinic for a new one\.$/);
  assert.equal(await page.getByRole('navigation').count(), 0, 'no staff navigation on the patient page');
  assert.equal(pathname(page), '/q/this-is-not-a-real-token-0123456789', 'no redirect to the staff login');

  await login(page, 'prescriber');
  const patient = await findPatient(page, 'KC-000011');
  await context.clearCookies();

  await login(page, 'researcher');
  const forbidden = await page.goto(`/patients/${patient.id}/outcomes`);
  assert.equal(forbidden.status(), 403, 'the outcome page is forbidden for researchers');
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Forbidden');
  const html = await page.content();
  assert.ok(!html.includes(patient.name) && !html.includes('KC-000011'), 'no identified data on the forbidden page');
  for (const url of [`/patients/${patient.id}/assessments/new?instrument=phq9`, '/alerts']) {
    const r = await page.goto(url);
    assert.equal(r.status(), 403, `${url} is forbidden for researchers`);
  }
});

// 7. The outcome page on a tablet and on paper.
uiTest('outcome page fits a 768px tablet and prints the charts without navigation or forms', async (page) => {
  await login(page, 'prescriber');
  const patient = await findPatient(page, 'KC-000006');
  const daysAgo = (d) => new Date(Date.now() - d * 86_400_000).toISOString().slice(0, 16);
  for (const [answers, takenAt] of [
    [[3, 3, 2, 2, 2, 3, 2], daysAgo(21)],
    [[2, 2, 1, 1, 1, 2, 1], daysAgo(14)],
    [[1, 1, 0, 1, 0, 1, 0], daysAgo(7)],
  ]) {
    const r = await recordScale(page, patient.id, 'gad7', answers, { takenAt });
    assert.match(pathname(page), /^\/records\//, `recorded (${r.status()})`);
  }
  await openChart(page, 'KC-000006');
  await openOutcomes(page, patient.chartPath);
  await sendLink(page, 'PHQ-9 — Patient Health Questionnaire, 9-item depression scale');
  await page.goto(`${patient.chartPath}/outcomes`);

  const table = await rows(page.locator('section#instrument-gad7 table.series-table'));
  assert.deepEqual(table.map((r) => r[2]), ['17', '10', '4'], 'three totals in order');
  assert.equal(table[2][5], 'yes', 'a reduction of more than 50 % is a response');
  assert.equal(table[2][6], 'yes', 'a total of 4 is remission');
  const svg = page.locator('section#instrument-gad7 figure.outcome-chart svg');
  assert.match(await svg.getAttribute('aria-label'), /^GAD-7 total over time: 3 administrations .* baseline 17, latest 4/);

  // Tablet, upright.
  await page.setViewportSize({ width: 768, height: 1024 });
  const { scrollWidth, innerWidth, wide } = await overflow(page);
  assert.equal(innerWidth, 768);
  assert.ok(scrollWidth <= innerWidth, `the outcome page is ${scrollWidth}px wide in a 768px viewport; too wide: ${wide.join(', ')}`);
  const chartBox = await svg.boundingBox();
  assert.ok(chartBox.x >= 0 && chartBox.x + chartBox.width <= 768, `the chart fits the screen: ${JSON.stringify(chartBox)}`);
  assert.ok(chartBox.width >= 300, 'the chart is still readable');

  // Print.
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.locator('header.top').isVisible(), false, 'the navigation is not printed');
  assert.equal(await page.getByRole('button', { name: 'Log out' }).isVisible(), false);
  const visibleForms = await page.locator('main form').evaluateAll((fs) => fs.filter((f) => f.getClientRects().length > 0).length);
  assert.equal(visibleForms, 0, 'no form is printed');
  assert.equal(await page.getByRole('button', { name: 'Create link' }).isVisible(), false);
  assert.equal(await page.getByRole('link', { name: 'Record a rating scale' }).isVisible(), false, 'action buttons are not printed');
  assert.equal(await svg.isVisible(), true, 'the chart is printed');
  assert.equal(await page.locator('section#instrument-gad7 table.series-table').isVisible(), true, 'the table is printed');
  assert.equal(await page.locator('section#requests table').isVisible(), true, 'the list of sent questionnaires is printed');
  const printed = await text(page.locator('main'));
  assert.ok(printed.includes(patient.name), 'the printout names the patient');
  const pdf = await page.pdf({ format: 'A4' });
  assert.ok(pdf.length > 1000, 'the page prints to PDF');
  await page.emulateMedia({ media: 'screen' });
  assert.equal(await page.getByRole('button', { name: 'Create link' }).isVisible(), true, 'the form is back on screen');
});

// 8. Every field of the outcome page's forms is labelled: a label's `for` must reach the field
//    in its own form, so clicking the label (or a screen reader) finds the right control.
test('every field on the outcome page has a unique id and its own label', {
  timeout: TEST_TIMEOUT_MS,
}, () =>
  withPage(browser, server, 'outcome page labels', async (page) => {
    await login(page, 'prescriber');
    const patient = await findPatient(page, 'KC-000015');
    await openOutcomes(page, patient.chartPath);
    const ids = await page.locator('main [id]').evaluateAll((els) => els.map((e) => e.id));
    const dupes = [...new Set(ids.filter((id, i) => ids.indexOf(id) !== i))];
    assert.deepEqual(dupes, [], `duplicate ids on the outcome page: ${dupes.join(', ')}`);
    const requests = page.locator('section#requests');
    for (const [label, name] of [['Questionnaire', 'instrument'], ['Treatment session', 'session'], ['Time point', 'timepoint']]) {
      assert.equal(await requests.getByLabel(label, { exact: true }).getAttribute('name'), name, `the label "${label}" names the ${name} field of the link form`);
    }
    const unlabelled = await page.locator('main select, main input:not([type=hidden]), main textarea').evaluateAll((els) =>
      els.filter((e) => !e.labels || e.labels.length === 0).map((e) => e.name),
    );
    assert.deepEqual(unlabelled, [], 'every field has a label');
  }));

// 9. A refused acknowledgement keeps what the clinician typed.
test('a refused alert acknowledgement keeps the text typed into "What was done"', {
  timeout: TEST_TIMEOUT_MS,
}, () =>
  withPage(browser, server, 'alert acknowledgement keeps text', async (page) => {
    await login(page, 'nurse');
    const patient = await findPatient(page, 'KC-000017');
    await recordScale(page, patient.id, 'phq9', [0, 0, 0, 0, 0, 0, 0, 0, 2]);
    await page.goto('/alerts');
    const card = page.locator('article.alert-card').filter({ has: page.locator(`a[href="/patients/${patient.id}/outcomes"]`) });
    await card.getByLabel('What was done').fill('ok');
    const res = await submit(page, card.getByRole('button', { name: 'Acknowledge' }));
    assert.equal(res.status(), 422);
    assert.match(await text(card.locator('p.error')), /at least 3 characters/);
    assert.equal(await card.getByLabel('What was done').inputValue(), 'ok', 'the typed text is kept for correction');
  }));

// 10. A link form that cannot be sent is explained on the outcome page, beside the form.
test('a questionnaire link with a time point but no session is refused on the outcome page itself', {
  timeout: TEST_TIMEOUT_MS,
}, () =>
  withPage(browser, server, 'link form error in place', async (page) => {
    await login(page, 'prescriber');
    const patient = await findPatient(page, 'KC-000019');
    await openOutcomes(page, patient.chartPath);
    const form = page.locator('section#requests form').filter({ has: page.getByRole('button', { name: 'Create link' }) });
    await form.locator('select[name="timepoint"]').selectOption({ label: '+24 h' });
    const res = await submit(page, form.getByRole('button', { name: 'Create link' }));
    assert.equal(res.status(), 422);
    assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Outcomes', 'the outcome page is shown again');
    assert.match(await text(page.locator('section#requests')), /time point needs the treatment session/);
    assert.equal(await page.getByRole('button', { name: 'Create link' }).count(), 1, 'the form is there to correct');
    assert.equal(await page.locator('section#requests select[name="timepoint"]').inputValue(), '24h', 'the choice is kept');
  }));
