// End-to-end test of the PDF reports. The patient progress report for the referring doctor: a
// prescriber opens a demo patient's outcomes page and clicks the report link, and receives a PDF
// (an attachment whose file name carries no name) that identifies the patient, shows the rating
// scales and the doses, and carries the decision-support footer on every page; a researcher, who
// sees de-identified data only, is refused it. The clinic outcomes report: a researcher filters
// the cohort outcomes page and clicks the PDF link, and receives the same numbers as the page,
// de-identified, with the filter named.
//
// The PDF's text is read with `pdftotext` (Debian package poppler-utils) when it is installed;
// otherwise from the PDF's own text strings (its content streams are not compressed).
//
// Run with `npm test` in tests/browser after `cargo build -p ketacare` (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { launchBrowser, login, pathname, startServer, text, withPage } from './harness.mjs';

const TEST_TIMEOUT_MS = 120_000;
const DISCLAIMER = 'decision support; not a substitute for clinical judgement';
/** The demo's showcase patient: on weekly maintenance, with months of rating scales. */
const MRN = 'KC-000001';
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

/** The text of a PDF, page by page: from pdftotext when installed, else from its text strings. */
async function pdfPages(bytes) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ketacare-report-'));
  try {
    const file = path.join(dir, 'report.pdf');
    await writeFile(file, bytes);
    const run = spawnSync('pdftotext', ['-layout', file, '-'], { encoding: 'utf8' });
    if (!run.error && run.status === 0) {
      return run.stdout.split('\f').filter((p) => p.trim().length > 0);
    }
    // Without poppler: the strings shown by each page's content stream, in order.
    const raw = bytes.toString('latin1');
    const streams = [...raw.matchAll(/stream\r?\n([\s\S]*?)endstream/g)].map((m) => m[1]).filter((s) => s.includes('BT'));
    return streams.map((s) => [...s.matchAll(/\(((?:\\.|[^\\)])*)\)\s*Tj/g)].map((m) => m[1].replace(/\\(.)/g, '$1')).join('\n'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The showcase patient's id and name, read by the logged-in user through the API. */
async function showcase(page) {
  const res = await page.request.get(`/api/patients?q=${MRN}`);
  assert.equal(res.status(), 200);
  const [p] = await res.json();
  assert.ok(p, `the demo clinic has ${MRN}`);
  return { id: p.id, family: p.demographics.family_name, given: p.demographics.given_name, dob: p.demographics.date_of_birth };
}

uiTest('a prescriber opens the progress report of a demo patient and receives a PDF for the referring doctor', async (page) => {
  await login(page, 'prescriber');
  const patient = await showcase(page);
  await page.goto(`/patients/${patient.id}/outcomes`);
  assert.equal(pathname(page), `/patients/${patient.id}/outcomes`);
  assert.match(await text(page.locator('main')), new RegExp(MRN));

  const link = page.locator('#progress-report');
  assert.match(await text(link), /Progress report/);
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const filename = download.suggestedFilename();
  assert.match(filename, /^progress-report-\d{4}-\d{2}-\d{2}-[0-9a-f]{8}\.pdf$/);
  for (const part of [patient.family, patient.given, MRN]) {
    assert.ok(!filename.includes(part), 'the file name carries no patient identifier');
  }
  const bytes = await readFile(await download.path());
  assert.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-');

  const pages = await pdfPages(bytes);
  assert.ok(pages.length >= 2, `a report of several pages (${pages.length})`);
  const all = pages.join('\n').replace(/[ \t]+/g, ' ');
  for (const needle of ['Patient progress report', MRN, patient.dob, 'Diagnoses', 'Treatment', 'HAM-A', 'GAD-7', 'mg/kg', 'Tolerability', 'Safety summary']) {
    assert.ok(all.includes(needle), `the report shows ${needle}`);
  }
  assert.ok(all.includes(`${patient.family}, ${patient.given}`), 'the report names the patient for the referring doctor');
  pages.forEach((p, i) => {
    const flat = p.replace(/\s+/g, ' ');
    assert.ok(flat.includes(DISCLAIMER), `page ${i + 1} carries the decision-support footer`);
    assert.ok(flat.includes(`Page ${i + 1} of ${pages.length}`), `page ${i + 1} is numbered`);
  });
});

uiTest('a researcher is refused a patient progress report', async (page) => {
  const nurse = await browser.newContext({ baseURL: server.baseURL });
  const nursePage = await nurse.newPage();
  await login(nursePage, 'nurse');
  const patient = await showcase(nursePage);
  await nurse.close();

  await login(page, 'researcher');
  const res = await page.request.get(`/api/patients/${patient.id}/report.pdf`);
  assert.equal(res.status(), 403);
  assert.ok(!(await res.text()).includes(patient.family), 'the refusal shows no identity');
});

uiTest('a researcher downloads the clinic outcomes report of a filtered cohort: the same numbers as the page, no names', async (page) => {
  await login(page, 'researcher');
  await page.goto('/research/outcomes?diagnosis=sad');
  const taylor = await text(page.locator('#evidence-table tr[data-study="taylor-2018"]'));
  const clinicRate = taylor.match(/38 % \(18–61\)/);
  assert.ok(clinicRate, `the page shows the clinic on Taylor 2018's definition: ${taylor}`);

  const link = page.locator('#download-pdf');
  assert.match(await link.getAttribute('href'), /^\/research\/outcomes\.pdf\?diagnosis=sad$/);
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.match(download.suggestedFilename(), /^clinic-outcomes-\d{4}-\d{2}-\d{2}\.pdf$/);
  const bytes = await readFile(await download.path());
  assert.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-');
  const pages = await pdfPages(bytes);
  assert.ok(pages.length >= 3, `a report of several pages (${pages.length})`);
  const all = pages.join('\n').replace(/[ \t]+/g, ' ');
  for (const needle of [
    'Clinic outcomes report',
    'Filter: Diagnosis',
    'Social anxiety disorder (SAD)',
    'The clinic beside the published studies',
    'Taylor 2018',
    '38 % (18–61)',
    'Response and remission',
    'Time to response',
    'Durability of benefit',
    'Tolerability',
    'Subgroups and biomarkers',
    'Exploratory statistics',
  ]) {
    assert.ok(all.includes(needle), `the report shows ${needle}`);
  }
  // De-identified: no demo patient's name or record number.
  assert.ok(!/KC-\d{6}/.test(all), 'no MRN in the clinic report');
  pages.forEach((p, i) => {
    const flat = p.replace(/\s+/g, ' ');
    assert.ok(flat.includes('de-identified aggregate data'), `page ${i + 1} carries the footer`);
    assert.ok(flat.includes(`Page ${i + 1} of ${pages.length}`), `page ${i + 1} is numbered`);
  });
});

uiTest('a nurse is refused the clinic outcomes report', async (page) => {
  await login(page, 'nurse');
  const res = await page.request.get('/api/research/outcomes.pdf');
  assert.equal(res.status(), 403);
});
