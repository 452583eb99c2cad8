// End-to-end tests of the research exports in a browser: a researcher opens the exports page,
// reads what is exported and how it is de-identified, and downloads the CSV export; the zip
// holds the data dictionary and every table, and no name or MRN of any demo patient. A nurse is
// refused the page.
//
// Run with `npm test` in tests/browser after `cargo build -p ketacare` (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import zlib from 'node:zlib';
import { launchBrowser, login, startServer, text, withPage } from './harness.mjs';

const TEST_TIMEOUT_MS = 180_000;
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

/** The entries of a zip file as { name: text }, read through its central directory. */
function unzip(buf) {
  let end = buf.length - 22;
  while (end >= 0 && buf.readUInt32LE(end) !== 0x06054b50) end -= 1;
  assert.ok(end >= 0, 'the download is a zip (end of central directory found)');
  const count = buf.readUInt16LE(end + 10);
  let at = buf.readUInt32LE(end + 16);
  const files = {};
  for (let i = 0; i < count; i += 1) {
    assert.equal(buf.readUInt32LE(at), 0x02014b50, 'central directory entry');
    const method = buf.readUInt16LE(at + 10);
    const size = buf.readUInt32LE(at + 20);
    const nameLen = buf.readUInt16LE(at + 28);
    const extraLen = buf.readUInt16LE(at + 30);
    const commentLen = buf.readUInt16LE(at + 32);
    const local = buf.readUInt32LE(at + 42);
    const name = buf.toString('utf8', at + 46, at + 46 + nameLen);
    assert.equal(buf.readUInt32LE(local), 0x04034b50, `local header of ${name}`);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const data = buf.subarray(start, start + size);
    assert.ok(method === 0 || method === 8, `${name}: stored or deflated (method ${method})`);
    files[name] = (method === 8 ? zlib.inflateRawSync(data) : data).toString('utf8');
    at += 46 + nameLen + extraLen + commentLen;
  }
  return files;
}

/** Names and MRNs of every demo patient, read by a nurse through the API. */
async function identities(context) {
  const page = await context.newPage();
  await login(page, 'nurse');
  const res = await page.request.get('/api/patients?limit=500');
  assert.equal(res.status(), 200);
  const patients = await res.json();
  assert.ok(patients.length >= 60, `the demo clinic has its patients (${patients.length})`);
  await page.close();
  return patients.flatMap((p) => [p.demographics.mrn, p.demographics.family_name, p.demographics.given_name]);
}

function escape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

uiTest('a researcher downloads the CSV export: the zip has the data dictionary and no patient names or MRNs', async (page) => {
  const nurseContext = await browser.newContext({ baseURL: server.baseURL });
  const secrets = await identities(nurseContext).finally(() => nurseContext.close());

  await login(page, 'researcher');
  await page.goto('/research/exports');
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Research exports');
  const rules = await text(page.locator('#deidentification'));
  assert.match(rules, /research id/);
  assert.match(rules, /ages above 89 are reported as 90\+/);
  assert.match(rules, /Every date and time is shifted/);
  // Each format lists its files, the data dictionary among them.
  for (const format of ['csv', 'omop']) {
    const files = await page.locator(`section[data-format="${format}"] tbody tr`).evaluateAll((trs) => trs.map((tr) => tr.dataset.file));
    assert.ok(files.includes('data_dictionary.csv'), `${format}: ${files}`);
  }

  const link = page.getByRole('link', { name: 'Download CSV with a data dictionary (zip)' });
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.match(download.suggestedFilename(), /^ketacare-csv-export-\d{4}-\d\d-\d\d\.zip$/);
  const files = unzip(await readFile(await download.path()));
  const names = Object.keys(files).sort();
  for (const expected of ['data_dictionary.csv', 'patients.csv', 'diagnoses.csv', 'treatment_sessions.csv', 'assessments.csv', 'adverse_events.csv', 'lab_results.csv']) {
    assert.ok(names.includes(expected), `${expected} is in the zip: ${names}`);
  }
  const patients = files['patients.csv'].trim().split('\n');
  assert.equal(patients[0], 'research_id,sex,age_at_export,age_at_first_session,sessions');
  assert.equal(patients.length - 1, secrets.length / 3, 'one row per patient');
  assert.ok(patients.slice(1).every((row) => /^R-[0-9A-F]{10},/.test(row)), 'patients appear by research id only');
  const dictionary = files['data_dictionary.csv'];
  assert.match(dictionary.split('\n')[0], /^table,column,type,unit,description,code_system/);
  for (const [name, body] of Object.entries(files)) {
    for (const secret of secrets) {
      assert.ok(!new RegExp(`\\b${escape(secret)}\\b`).test(body), `${name} must not contain ${secret}`);
    }
  }
});

uiTest('a nurse may not open the exports page', async (page) => {
  await login(page, 'nurse');
  const res = await page.goto('/research/exports');
  assert.equal(res.status(), 403);
  const api = await page.request.get('/api/research/export/csv');
  assert.equal(api.status(), 403);
});
