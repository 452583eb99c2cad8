// End-to-end tests of screening and eligibility in a browser, against one demo clinic: a
// prescriber screens a patient on lamotrigine and clonazepam with controlled hypertension and
// signs; a patient with psychosis is not eligible and no treatment session can start; the
// medical director accepts a relative contraindication with a reason; a nurse's new blood
// pressure shows as new since the signature; prior treatments and conditions are added.
//
// Run with `npm test` in tests/browser after `cargo build -p ketacare` (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { clickAndWait, launchBrowser, login, openChart, pathname, rows, startServer, text, withPage, submit } from './harness.mjs';

const TEST_TIMEOUT_MS = 120_000;

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

function uiTest(name, body) {
  test(name, { timeout: TEST_TIMEOUT_MS }, () => withPage(browser, server, name, body));
}

/** From the patient list to the screening page of `mrn`. */
async function openScreening(page, mrn) {
  await openChart(page, mrn);
  const chartPath = pathname(page);
  await clickAndWait(page, page.getByRole('link', { name: 'Screening', exact: true }));
  assert.equal(pathname(page), `${chartPath}/screening`);
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Screening');
  return chartPath;
}

/** The findings listed under a severity heading, as `{ title, text }`. */
async function findings(page, heading) {
  const list = page.locator(`section#findings h3:has-text("${heading}") + ul.findings > li`);
  const n = await list.count();
  const out = [];
  for (let i = 0; i < n; i += 1) {
    out.push({ title: await text(list.nth(i).locator('p.finding-title strong')), text: await text(list.nth(i)) });
  }
  return out;
}

uiTest('a prescriber screens a patient on lamotrigine and clonazepam with controlled hypertension: cautions with reasons and sources, then signs', async (page) => {
  await login(page, 'prescriber');
  const chartPath = await openScreening(page, 'KC-000066');
  assert.match(await text(page.locator('section#verdict')), /Verdict now: Eligible with cautions/);
  assert.match(await text(page.locator('section#verdict')), /Not signed yet\./);
  const cautions = await findings(page, 'Caution');
  const titles = cautions.map((c) => c.title);
  assert.deepEqual(titles.sort(), ['Benzodiazepines: clonazepam', 'Hypertension (controlled)', 'Lamotrigine'].sort(), JSON.stringify(titles));
  for (const c of cautions) {
    for (const part of ['Because', 'What to do', 'Source']) assert.ok(c.text.includes(part), `${c.title} shows "${part}": ${c.text}`);
    assert.match(c.text, /https?:\/\//, `${c.title} cites its source with an address`);
  }
  const lamotrigine = cautions.find((c) => c.title === 'Lamotrigine');
  assert.match(lamotrigine.text, /Because current medicine: Lamotrigine 100 mg twice daily/);
  assert.match(lamotrigine.text, /Sources conflict/, 'the healthy-volunteer versus depressed-sample conflict is shown');
  const info = (await findings(page, 'Information')).map((f) => f.title);
  assert.ok(info.some((t) => /^Treatment resistance shown/.test(t)), JSON.stringify(info));
  const trials = await rows(page.locator('table#trials'));
  assert.equal(trials.length, 3);
  assert.deepEqual(trials.map((r) => r[2]), ['adequate failure', 'adequate failure', 'adequate failure']);
  assert.match(trials[0][3], /HAM-A 28 -> 24 is a 14\.3 % reduction, below 50 %/);
  assert.match(await text(page.locator('section#intake')), /Resting BP, heart rate 136\/86 mmHg, 74\/min/);

  // No acceptance boxes for a prescriber; signing records the verdict.
  assert.equal(await page.locator('#sign-form input[type=checkbox]').count(), 0);
  await page.locator('#sign-form').getByLabel('Note with the signature').fill('Discussed the benzodiazepine dose with the patient.');
  const res = await submit(page, page.getByRole('button', { name: 'Sign screening' }));
  assert.equal(res.status(), 200);
  assert.match(await text(page.locator('section#verdict')), /Signed verdict \(version 1\): Eligible with cautions by prescriber on \d{4}-\d\d-\d\d \d\d:\d\d UTC/);

  // The printable summary shows what was signed, by whom, with the sources.
  await clickAndWait(page, page.getByRole('link', { name: 'Printable summary' }));
  assert.equal(pathname(page), `${chartPath}/screening/summary`);
  const summary = await text(page.locator('main'));
  assert.match(summary, /Verdict: Eligible with cautions/);
  assert.match(summary, /Signed by prescriber on/);
  assert.match(summary, /Note: Discussed the benzodiazepine dose/);
  assert.match(summary, /Andrashko/);
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.locator('header.top').isVisible(), false, 'no navigation on paper');
  assert.ok(await page.locator('section#verdict').isVisible());
});

uiTest('a patient with psychosis is not eligible, and a treatment session cannot be started', async (page) => {
  await login(page, 'prescriber');
  const chartPath = await openScreening(page, 'KC-000068');
  const verdict = await text(page.locator('section#verdict'));
  assert.match(verdict, /Verdict now: Not eligible/);
  assert.match(verdict, /A treatment session cannot start while an absolute contraindication stands/);
  assert.match(verdict, /Signed verdict \(version 1\): Not eligible by director/);
  const absolute = await findings(page, 'Absolute contraindication');
  assert.equal(absolute.length, 1);
  assert.match(absolute[0].title, /Psychotic disorder/);
  assert.match(absolute[0].text, /Because condition on record: psychosis/);

  await page.goto(`${chartPath}/records?kind=encounter`);
  await page.getByLabel('Kind').selectOption('treatment');
  await page.getByLabel('Start (UTC)').fill('2026-11-30T09:00');
  await page.getByLabel('Reason for visit').fill('SC ketamine 0.25 mg/kg (ascending dose 1 of 3)');
  const res = await submit(page, page.getByRole('button', { name: 'Save' }));
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('main')), /A treatment session cannot start while an absolute contraindication stands: Psychotic disorder/);
  await page.goto(chartPath);
  assert.equal(await page.locator('section#encounter li', { hasText: 'Treatment session' }).count(), 0, 'nothing was saved');
});

uiTest('the medical director accepts a relative contraindication only with a reason', async (page) => {
  await login(page, 'director');
  await openScreening(page, 'KC-000067');
  assert.match(await text(page.locator('section#verdict')), /Verdict now: Needs medical-director review/);
  const review = await findings(page, 'Needs review');
  assert.deepEqual(review.map((r) => r.title), ['Bipolar disorder']);
  const form = page.locator('#sign-form');
  await form.getByLabel('Accept: Bipolar disorder').check();
  let res = await submit(page, form.getByRole('button', { name: 'Sign screening' }));
  assert.equal(res.status(), 422, 'an acceptance needs a reason');
  assert.match(await text(page.locator('#sign-form')), /Why accept Bipolar disorder must be at least 3 characters/);
  assert.ok(await page.locator('#sign-form').getByLabel('Accept: Bipolar disorder').isChecked(), 'the tick is kept');
  await page.locator('#sign-form').getByLabel('Why accept Bipolar disorder').fill('On lithium for six years and euthymic; the treating psychiatrist agrees.');
  res = await submit(page, page.locator('#sign-form').getByRole('button', { name: 'Sign screening' }));
  assert.equal(res.status(), 200);
  assert.match(await text(page.locator('section#verdict')), /Verdict now: Eligible with cautions/);
  assert.match(await text(page.locator('section#verdict')), /Signed verdict \(version 1\): Eligible with cautions by director/);
  const accepted = (await findings(page, 'Needs review'))[0];
  assert.match(accepted.text, /Accepted/);
  assert.match(accepted.text, /Accepted because On lithium for six years/);
});

uiTest('a nurse records a blood pressure above 140/90: the caution shows as new since the signature; a swapped reading is refused', async (page) => {
  await login(page, 'nurse');
  await openScreening(page, 'KC-000065');
  assert.match(await text(page.locator('section#verdict')), /Verdict now: Eligible\b/);
  assert.equal(await page.getByRole('button', { name: 'Sign screening' }).count(), 0, 'nurses do not sign');
  const vitals = page.locator('#vitals-form');
  await vitals.getByLabel('Systolic (mmHg)').fill('82');
  await vitals.getByLabel('Diastolic (mmHg)').fill('148');
  let res = await submit(page, vitals.getByRole('button', { name: 'Save blood pressure' }));
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('#vitals-form')), /Diastolic \(mmHg\) must be below the systolic pressure \(82 mmHg\): are the two swapped\?/);
  await page.locator('#vitals-form').getByLabel('Systolic (mmHg)').fill('148');
  await page.locator('#vitals-form').getByLabel('Diastolic (mmHg)').fill('94');
  await page.locator('#vitals-form').getByLabel('Heart rate (/min)').fill('80');
  res = await submit(page, page.locator('#vitals-form').getByRole('button', { name: 'Save blood pressure' }));
  assert.equal(res.status(), 200);
  assert.match(await text(page.locator('section#verdict')), /Verdict now: Eligible with cautions/);
  const fresh = await text(page.locator('section#new-since'));
  assert.match(fresh, /New since the last signature \(1\)/);
  assert.match(fresh, /Blood pressure above 140\/90 mmHg/);
  assert.match(fresh, /resting BP 148\/94 mmHg/);

  // At check-in for the next visit the nurse sees the same re-check above the form.
  await page.goto(`${pathname(page).replace(/\/screening$/, '')}/records?kind=encounter`);
  const recheck = await text(page.locator('section#recheck'));
  assert.match(recheck, /Screening re-check before a treatment session/);
  assert.match(recheck, /signed Eligible by prescriber/);
  assert.match(recheck, /New since the last signature: .*Blood pressure above 140\/90 mmHg/);
});

uiTest('prior treatments and conditions are added through their forms and counted by the screening', async (page) => {
  await login(page, 'prescriber');
  const chartPath = await openScreening(page, 'KC-000069');
  await clickAndWait(page, page.getByRole('link', { name: 'Add prior treatment' }));
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Add prior treatment');
  await page.getByLabel('Kind').selectOption('pharmacological');
  await page.getByLabel('Medicine or therapy').fill('Pregabalin');
  await page.getByLabel('Duration (weeks)').fill('six');
  let res = await submit(page, page.getByRole('button', { name: 'Save' }));
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('main')), /must be a number of weeks from 0 to 520, or empty; got "six"/);
  await page.getByLabel('Duration (weeks)').fill('6');
  await page.getByLabel('Adequate dose or delivery?').selectOption('yes');
  await page.getByLabel('Scale').selectOption('hama');
  await page.getByLabel('Rating before').fill('25');
  await page.getByLabel('Rating at the end').fill('20');
  res = await submit(page, page.getByRole('button', { name: 'Save' }));
  assert.equal(res.status(), 200);
  await page.goto(`${chartPath}/screening`);
  const trials = await rows(page.locator('table#trials'));
  const pregabalin = trials.find((r) => r[0] === 'Pregabalin');
  assert.equal(pregabalin[2], 'not adequate');
  assert.match(pregabalin[3], /6 weeks is shorter than the 8 weeks counted as adequate/);

  await page.goto(`${chartPath}/records?kind=condition`);
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Add comorbid condition');
  await page.getByLabel('Condition', { exact: true }).selectOption('sleep_apnoea');
  res = await submit(page, page.getByRole('button', { name: 'Save' }));
  assert.equal(res.status(), 200);
  await page.goto(chartPath);
  assert.match(await text(page.locator('section#condition')), /sleep apnoea/);
  await page.goto(`${chartPath}/screening`);
  const cautions = (await findings(page, 'Caution')).map((c) => c.title);
  assert.ok(cautions.some((t) => /^Sleep apnoea/.test(t)), JSON.stringify(cautions));
  assert.match(await text(page.locator('section#new-since')), /Sleep apnoea/);
});

uiTest('the clinical rules page lists the screening knowledge with grades, sources and UNVERIFIED entries', async (page) => {
  await login(page, 'nurse');
  await page.goto('/knowledge');
  const conditions = await rows(page.locator('section#screening-conditions table'));
  const psychosis = conditions.find((r) => r[0].startsWith('Psychotic disorder'));
  assert.match(psychosis[1], /^absolute/);
  assert.match(psychosis[3], /ACEP/);
  const hypertension = conditions.find((r) => r[0].startsWith('Hypertension'));
  assert.match(hypertension[1], /absolute; caution when controlled/);
  const interactions = await rows(page.locator('section#screening-interactions table'));
  const memantine = interactions.find((r) => r[0].startsWith('Memantine'));
  assert.match(memantine[0], /UNVERIFIED/);
  const benzos = interactions.find((r) => r[0].startsWith('Benzodiazepines'));
  assert.match(benzos[2], /clonazepam \(2598\)/);
  assert.match(await text(page.locator('section#screening-resistance')), /Delphi consensus 2024 \(Domschke et al\.\) \(in force\)/);
  const uln = await text(page.locator('main'));
  assert.match(uln, /alt_uln_u_per_l 40 UNVERIFIED/);
});
