// End-to-end tests of long-term safety in a browser: the clinic safety board, a patient's safety
// page (the evidence behind each signal: liver tests as multiples of the laboratory's upper limit,
// the bladder questionnaire, the referral prompt), a signed benefit-risk review that the care plan
// then shows, a lab result refused field by field, a nurse who may not sign, and the care plan
// the patient takes home.
//
// The demo clinic's first maintenance patient with a safety story has a rising ALT above 3 x ULN
// and new bladder symptoms; the tests find that patient on the board by those two signals.
//
// Run with `npm test` in tests/browser after `cargo build -p ketacare` (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { clickAndWait, launchBrowser, login, pathname, rows, startServer, submit, text, withPage } from './harness.mjs';

const TEST_TIMEOUT_MS = 120_000;
const REASONS =
  'ALT above 3 x ULN and still rising, and new bladder symptoms: hold the next dose, repeat the liver panel within 14 days, urine test and urology referral.';
let server;
let browser;

before(async () => {
  server = await startServer({ monitors: false });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

function uiTest(name, body) {
  test(name, { timeout: TEST_TIMEOUT_MS }, () => withPage(browser, server, name, body));
}

/** The board rows of patients with both a liver and a urinary signal. */
function flaggedRows(page) {
  return page
    .locator('#safety-board tbody tr')
    .filter({ has: page.locator('li[data-signal="liver_tests"]') })
    .filter({ has: page.locator('li[data-signal="urinary_symptoms"]') });
}

/** Opens the safety board from the menu and then the safety page of the patient with rising ALT and urinary symptoms; returns `{ mrn, base }`. */
async function openFlaggedPatient(page) {
  await clickAndWait(page, page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Safety board' }));
  assert.equal(pathname(page), '/safety');
  const row = flaggedRows(page).first();
  assert.ok((await flaggedRows(page).count()) >= 1, 'a patient on the board has both a liver and a urinary signal');
  const mrn = await row.getAttribute('data-mrn');
  await clickAndWait(page, row.getByRole('link').first());
  assert.match(pathname(page), /^\/patients\/[0-9a-f-]{36}\/safety$/);
  assert.match(await text(page.locator('main')), new RegExp(`MRN ${mrn}\\b`));
  return { mrn, base: pathname(page).replace(/\/safety$/, '') };
}

/** The "x ULN" multiples of one test in the lab table, oldest first. */
async function multiples(page, test) {
  const cells = page.locator(`#labs tbody tr[data-test="${test}"] td[data-multiple]`);
  const values = await cells.evaluateAll((tds) => tds.map((td) => Number(td.getAttribute('data-multiple'))));
  return values.reverse();
}

uiTest('a prescriber finds the patient with rising ALT and bladder symptoms on the board, reads the evidence and signs a review that the care plan shows', async (page) => {
  await login(page, 'prescriber');
  await clickAndWait(page, page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Safety board' }));
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Safety board');
  const count = await text(page.locator('#board-count'));
  const listed = await page.locator('#safety-board tbody tr').count();
  assert.match(count, new RegExp(`^${listed} patients? needs? attention`), `the count line matches the rows: ${count}`);

  // The flagged patient's row: both signals at review level, with their titles.
  const row = flaggedRows(page).first();
  assert.equal(await row.locator('li[data-signal="liver_tests"]').getAttribute('data-level'), 'review');
  assert.equal(await row.locator('li[data-signal="urinary_symptoms"]').getAttribute('data-level'), 'review');
  assert.match(await text(row.locator('li[data-signal="liver_tests"]')), /^Review Liver tests above the review threshold/);
  assert.match(await text(row.locator('li[data-signal="urinary_symptoms"]')), /lower urinary tract symptoms/);

  const { mrn, base } = await openFlaggedPatient(page);
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Long-term safety');

  // The liver signal rests on its data: ALT above 3 x ULN and rising, with the action and source.
  const liver = page.locator('#signals li.signal[data-signal="liver_tests"]');
  assert.equal(await liver.getAttribute('data-level'), 'review');
  const liverText = await text(liver);
  assert.match(liverText, /ALT \d+ U\/L = (\d+(\.\d+)?) x ULN \(review above 3 x\)/, liverText);
  assert.match(liverText, /ALT rising: \d+(\.\d+)? x ULN on \d{4}-\d\d-\d\d after \d+(\.\d+)? x ULN on \d{4}-\d\d-\d\d/, liverText);
  assert.match(liverText, /Action: Hold ketamine and review; repeat the liver panel/);
  assert.match(liverText, /Source: Local policy \(UNVERIFIED\)/);
  // The table agrees: the latest ALT is above 3 x ULN and above the one before.
  const alt = await multiples(page, 'alt');
  assert.ok(alt.length >= 2, `at least two ALT results: ${alt}`);
  assert.ok(alt.at(-1) > 3, `the latest ALT is above 3 x ULN: ${alt}`);
  assert.ok(alt.at(-1) > alt.at(-2), `ALT is rising: ${alt}`);
  assert.ok(await page.locator('#labs td.multiple.above-review').count() >= 1, 'the ALT above the review multiple is marked');
  const liverChart = page.locator('svg#liver-chart');
  assert.equal(await liverChart.getAttribute('role'), 'img');
  assert.equal(await liverChart.locator('g.series[data-series="ALT"] circle').count(), alt.length, 'one point per ALT result');
  assert.equal(await liverChart.locator('g.ref-line[data-value="3"]').count(), 1, 'the review multiple is drawn');
  assert.match(await liverChart.locator('[data-last="ALT"]').textContent(), new RegExp(`ALT ${alt.at(-1)} × ULN`));

  // Bladder: the ICSI rise, its chart with the threshold, and the referral prompt.
  const icsi = (await text(page.locator('#icsi-change'))).match(/baseline (\d+) .*latest (\d+) /);
  assert.ok(icsi, 'baseline and latest ICSI are shown');
  assert.ok(Number(icsi[2]) - Number(icsi[1]) >= 4, `the ICSI rose by 4 or more: ${icsi[0]}`);
  assert.equal(await page.locator('svg#icsi-chart g.ref-line[data-value="8"]').count(), 1, 'the new-symptoms threshold is drawn');
  assert.match(await text(page.locator('#bladder .referral[data-signal="urinary_symptoms"]')), /refer to urology if symptoms persist/);
  assert.match(await text(page.locator('#signals li.signal[data-signal="urinary_symptoms"]')), /ICSI \d+ on .* vs baseline \d+ on/);

  // Exposure: the four windows, the chart of the doses given and how often sessions are.
  const windows = await rows(page.locator('#exposure-windows'));
  assert.equal(windows.length, 4, JSON.stringify(windows));
  assert.ok((await page.locator('svg#exposure-chart rect.bar').count()) >= 3, 'each dose given is a bar');
  assert.match(await text(page.locator('#session-frequency')), /Sessions in the last 28 days \d+ \(\d+ in the 28 days before\)/);

  // A review without reasons is refused and names the field.
  const form = page.locator('#review-form');
  await form.getByLabel('Decision').selectOption('change');
  let res = await submit(page, form.getByRole('button', { name: 'Sign the review' }));
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('#review-form')), /Reasons /);
  assert.equal(await page.locator('#review-form').getByLabel('Decision').inputValue(), 'change', 'the decision is kept');

  // Signed: change, with reasons; the evidence is frozen with it.
  await page.locator('#review-form').getByLabel('Reasons').fill(REASONS);
  res = await submit(page, page.locator('#review-form').getByRole('button', { name: 'Sign the review' }));
  assert.equal(res.status(), 200);
  assert.equal(pathname(page), `${base}/safety`);
  const review = page.locator('#reviews li.review').first();
  assert.equal(await review.getAttribute('data-decision'), 'change');
  const reviewText = await text(review);
  assert.match(reviewText, /Change dose, interval or route · signed by prescriber on /);
  assert.ok(reviewText.includes(REASONS), reviewText);
  const frozen = await review.locator('details li').allTextContents();
  assert.ok(frozen.some((l) => /^ALT \d+ U\/L \(\d+(\.\d+)? x ULN\) on \d{4}-\d\d-\d\d$/.test(l)), `the latest ALT is in the frozen evidence: ${frozen.join(' | ')}`);
  assert.match(await text(review.locator('details summary')), /signals: .*liver_tests.*/);

  // The care plan shows the decision and its reasons.
  await clickAndWait(page, page.getByRole('navigation', { name: 'Patient' }).getByRole('link', { name: 'Care plan' }));
  assert.equal(pathname(page), `${base}/care-plan`);
  assert.match(await text(page.locator('main')), new RegExp(`MRN ${mrn}\\b`));
  const latest = page.locator('#latest-review');
  assert.equal(await latest.locator('[data-decision]').getAttribute('data-decision'), 'change');
  assert.match(await text(latest), /Change dose, interval or route · \d{4}-\d\d-\d\d by prescriber/);
  assert.ok((await text(latest)).includes(REASONS));
});

uiTest('the board sorts on the server by the column chosen', async (page) => {
  await login(page, 'prescriber');
  await page.goto('/safety');
  const before = await rows(page.locator('#safety-board'));
  await clickAndWait(page, page.locator('#safety-board thead').getByRole('link', { name: 'MRN' }));
  assert.equal(new URL(page.url()).search, '?sort=mrn');
  assert.equal(await page.locator('#safety-board th[aria-sort="ascending"]').innerText(), 'MRN');
  const byMrn = (await rows(page.locator('#safety-board'))).map((r) => r[1]);
  assert.deepEqual(byMrn, [...byMrn].sort(), 'ascending MRN');
  assert.equal(byMrn.length, before.length, 'the same patients');
  await clickAndWait(page, page.locator('#safety-board thead').getByRole('link', { name: 'Review due' }));
  const dues = (await rows(page.locator('#safety-board'))).map((r) => r[5].slice(0, 10)).filter((d) => /^\d{4}-/.test(d));
  assert.deepEqual(dues, [...dues].sort(), 'earliest review first');
  await clickAndWait(page, page.getByRole('link', { name: 'Back to the default order' }));
  assert.deepEqual(await rows(page.locator('#safety-board')), before, 'the default order again');
});

uiTest('a lab result with an upper limit of normal of 0 is refused with the error at the ULN field, keeping what was typed', async (page) => {
  await login(page, 'nurse');
  await openFlaggedPatient(page);
  const before = await page.locator('#labs tbody tr').count();
  const form = page.locator('#lab-form');
  await form.getByLabel('Test').selectOption('alt');
  await form.getByLabel('Result').fill('88');
  await form.getByLabel('Unit').fill('U/L');
  await form.getByLabel('Upper limit of normal (ULN)').fill('0');
  await form.getByLabel('Laboratory (optional)').fill('Riverside Pathology');
  const res = await submit(page, form.getByRole('button', { name: 'Add result' }));
  assert.equal(res.status(), 422);
  const uln = page.locator('#lab-form').getByLabel('Upper limit of normal (ULN)');
  assert.equal(await uln.getAttribute('aria-invalid'), 'true');
  assert.match(await text(page.locator('#f-uln-err')), /^Upper limit of normal \(ULN\) must be above 0/);
  assert.match(await text(page.locator('#lab-form [role="alert"]').first()), /Nothing was saved[\s\S]*Upper limit of normal \(ULN\) must be above 0/);
  assert.equal(await page.locator('#lab-form').getByLabel('Result').inputValue(), '88', 'the typed value is kept');
  assert.equal(await page.locator('#lab-form').getByLabel('Test').inputValue(), 'alt');
  assert.equal(await page.locator('#labs tbody tr').count(), before, 'nothing was added');
  // A value that is not a number is named too.
  await page.locator('#lab-form').getByLabel('Upper limit of normal (ULN)').fill('forty');
  await submit(page, page.locator('#lab-form').getByRole('button', { name: 'Add result' }));
  assert.match(await text(page.locator('#f-uln-err')), /"forty" is not a number/);
});

uiTest('a nurse sees the safety page and who may sign, but cannot sign a review; a researcher cannot open the board', async (page) => {
  await login(page, 'nurse');
  const { base } = await openFlaggedPatient(page);
  assert.equal(await page.locator('#review-form').count(), 0, 'no review form for a nurse');
  assert.match(await text(page.locator('#review-who')), /Only a medical director or a prescriber may sign a benefit-risk review\. You are logged in as nurse\./);
  // Posting the form anyway (with the nurse's own anti-forgery token) is refused.
  const csrf = await page.locator('#lab-form input[name="_csrf"]').inputValue();
  const res = await page.request.post(`${base}/safety/reviews`, { form: { _csrf: csrf, decision: 'continue', reasons: 'stable' } });
  assert.equal(res.status(), 403);
  await page.reload();
  assert.equal(await page.locator('#reviews li.review[data-decision="continue"]').count(), 0, 'no review was recorded');

  await page.context().clearCookies();
  await login(page, 'researcher');
  assert.equal(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Safety board' }).count(), 0);
  const board = await page.goto('/safety');
  assert.equal(board.status(), 403);
});

uiTest('the care plan summary for the patient opens from the care plan, in plain words with the goal in the patient’s words', async (page) => {
  await login(page, 'prescriber');
  const { mrn, base } = await openFlaggedPatient(page);
  await clickAndWait(page, page.getByRole('navigation', { name: 'Patient' }).getByRole('link', { name: 'Care plan' }));
  const goals = await page.locator('#goals li.goal.functional q').allInnerTexts();
  assert.ok(goals.length >= 1, 'the care plan has a goal in the patient’s words');
  assert.ok((await rows(page.locator('#therapies table'))).length >= 1, 'psychotherapy is in the plan');
  await clickAndWait(page, page.getByRole('link', { name: 'Summary for the patient (print)' }));
  assert.equal(pathname(page), `${base}/care-plan/print`);
  const summary = page.locator('#care-plan-summary');
  const all = await text(summary);
  for (const g of goals) assert.ok(all.includes(g.replace(/\s+/g, ' ').trim()), `the goal "${g}" is in the summary`);
  assert.match(await text(page.getByRole('heading', { level: 1 })), /^Your care plan$/);
  assert.match(await text(summary.locator('#watch-for')), /Blood in your urine:[\s\S]*Your liver: yellow skin[\s\S]*Wanting more ketamine/);
  assert.match(await text(summary.locator('#whom-to-call')), /Call the clinic and ask for/);
  assert.match(await text(summary.locator('#summary-review')), /on or before \w+day \d+ \w+ \d{4}/);
  assert.ok(!all.includes(mrn), 'no record number');
  assert.doesNotMatch(all, /\b(ULN|ICSI|HAM-A|GAD-7|SNOMED|mg\/kg)\b/, 'no codes or clinical abbreviations');
  // Printed, the staff menu and links are left out.
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.locator('header.top').isVisible(), false);
  assert.equal(await page.getByRole('link', { name: '← Care plan' }).isVisible(), false);
  assert.equal(await summary.isVisible(), true);
});

uiTest('a nurse changes the care plan: a new goal and a support group with attendance; a bad attendance line and a missing reason are refused', async (page) => {
  await login(page, 'nurse');
  await openFlaggedPatient(page);
  await clickAndWait(page, page.getByRole('navigation', { name: 'Patient' }).getByRole('link', { name: 'Care plan' }));
  const version = Number((await text(page.locator('main p.muted').first())).match(/version (\d+)/)[1]);
  await page.locator('#care-plan-edit summary').click();
  const form = page.locator('#care-plan-form');
  const goal = form.getByRole('group', { name: 'Goal 4' });
  await goal.getByLabel('Kind').selectOption('functional');
  await goal.getByLabel('Goal', { exact: true }).fill('Sleep through the night before a work day');
  const support = form.getByRole('group', { name: 'Psychotherapy and support 3' });
  await support.getByLabel('Kind').selectOption('other');
  await support.getByLabel('What').fill('Peer support group for anxiety');
  await support.getByLabel('Who provides it').fill('Community wellbeing service');
  await support.getByLabel('How often').fill('Monthly');
  await support.getByLabel(/^Attendance/).fill('2026-11-20 attended\n2026-11-27 sometimes');
  let res = await submit(page, form.getByRole('button', { name: 'Save a new version' }));
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('#care-plan-form [role="alert"]').first()), /Psychotherapy 3, attendance: line 2 \("2026-11-27 sometimes"\) must be a date and attended or missed/);
  const again = page.locator('#care-plan-form');
  assert.equal(await again.isVisible(), true, 'the editor stays open with the problems');
  assert.equal(await again.getByRole('group', { name: 'Goal 4' }).getByLabel('Goal', { exact: true }).inputValue(), 'Sleep through the night before a work day');
  await again.getByRole('group', { name: 'Psychotherapy and support 3' }).getByLabel(/^Attendance/).fill('2026-11-20 attended\n2026-11-27 missed');
  res = await submit(page, again.getByRole('button', { name: 'Save a new version' }));
  assert.equal(res.status(), 422, 'a change needs a reason');
  assert.match(await text(page.locator('#care-plan-form')), /Reason for the change \(required\) /);
  await page.locator('#care-plan-form').getByLabel('Reason for the change (required)').fill('Patient asked to add sleep as a goal; joined the peer group.');
  res = await submit(page, page.locator('#care-plan-form').getByRole('button', { name: 'Save a new version' }));
  assert.equal(res.status(), 200);
  assert.match(pathname(page), /\/care-plan$/);
  assert.match(await text(page.locator('main p.muted').first()), new RegExp(`version ${version + 1} by nurse`));
  assert.ok((await page.locator('#goals q').allInnerTexts()).includes('Sleep through the night before a work day'));
  const group = page.locator('#therapies tbody tr').filter({ hasText: 'Peer support group for anxiety' });
  assert.match(await text(group), /Other support .* Community wellbeing service Monthly 1 of 2 attended 2026-11-20 attended 2026-11-27 missed/);
});
