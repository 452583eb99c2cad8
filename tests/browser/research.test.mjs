// End-to-end tests of the research outcomes page in a browser: a researcher (who may see no
// names) opens the outcomes page from the menu, filters to social anxiety disorder and sees the
// clinic counted on Taylor 2018's definition beside the published result, with the intervals,
// the small-numbers warning and the charts; a bad filter is refused field by field; the CSV
// downloads; a nurse is refused.
//
// The demo clinic's research cohort (KC-000079 to KC-000094) has sixteen SAD patients with one
// IV 0.5 mg/kg infusion and the LSAS before and after; six improve by more than 35 %.
//
// Run with `npm test` in tests/browser after `cargo build -p ketacare` (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { clickAndWait, launchBrowser, login, pathname, startServer, submit, text, withPage } from './harness.mjs';

const TEST_TIMEOUT_MS = 120_000;
// Names of demo patients of the research cohort and of the main clinic: none may appear.
const NAMES = ['Larkspur', 'Okonkwo', 'Nakagawa', 'Haddad', 'Delacroix', 'KC-0000'];
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

async function assertNoNames(page) {
  const body = await page.content();
  for (const n of NAMES) {
    assert.ok(!body.includes(n), `${n} appears on ${pathname(page)}`);
  }
}

uiTest('a researcher filters the outcomes to SAD and sees the clinic beside Taylor 2018', async (page) => {
  await login(page, 'researcher');
  await clickAndWait(page, page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Research' }));
  await assertNoNames(page);
  await clickAndWait(page, page.getByRole('link', { name: 'Cohort outcomes' }));
  assert.equal(pathname(page), '/research/outcomes');
  await assertNoNames(page);
  const all = await text(page.locator('#cohort-counts'));
  const allPatients = Number(all.match(/(\d+) patients/)[1]);

  await page.getByLabel('Diagnosis').selectOption('sad');
  await submit(page, page.getByRole('button', { name: 'Apply' }));
  assert.equal(pathname(page), '/research/outcomes');
  assert.match(page.url(), /diagnosis=sad/);
  const counts = await text(page.locator('#cohort-counts'));
  const sadPatients = Number(counts.match(/(\d+) patients/)[1]);
  assert.ok(sadPatients >= 16 && sadPatients < allPatients, `SAD ${sadPatients} of ${allPatients}`);
  assert.match(counts, /filtered/);
  assert.equal(await page.getByLabel('Diagnosis').inputValue(), 'sad', 'the filter stays chosen');

  // Taylor 2018 beside the clinic, on its own definition.
  const taylor = page.locator('#evidence-table tr[data-study="taylor-2018"]');
  const row = await text(taylor);
  assert.match(row, /Taylor 2018/);
  assert.match(row, /LSAS reduction above 35 %/);
  assert.match(row, /33 % \(16–56\)\s*6 \/ 18/, row);
  assert.match(row, /38 % \(18–61\)\s*6 \/ 16/, row);
  // The interval chart draws the published study (square) and the clinic (circle).
  const chart = page.locator('svg#evidence-chart');
  await chart.waitFor();
  assert.equal(await chart.locator('text').filter({ hasText: 'Taylor 2018 (published)' }).count(), 1);
  assert.equal(await chart.locator('text').filter({ hasText: "Clinic on Taylor 2018's definition" }).count(), 1);
  assert.equal(await chart.locator('rect[data-estimate="0.333"]').count(), 1);
  assert.equal(await chart.locator('circle[data-estimate="0.375"]').count(), 1);

  // The warning about small numbers and many comparisons, and the rest of the analysis.
  assert.match(await text(page.locator('#small-numbers-warning')), /small n.*chance/s);
  assert.ok((await page.locator('#rates-diagnosis tbody tr[data-group="sad"]').count()) === 1);
  assert.ok((await page.locator('svg#km-response').count()) === 1, 'time to response chart');
  assert.ok((await page.locator('#strata-table tbody tr').count()) >= 4, 'strata of the covariates');
  assert.match(await text(page.locator('#regression-table')), /Serum BDNF/);
  await assertNoNames(page);
});

uiTest('a bad filter is refused field by field and the CSV downloads', async (page) => {
  await login(page, 'researcher');
  await page.goto("/research/outcomes?age_min=abc&from=2026-02-30");
  assert.match(await text(page.locator('[role=alert]')), /not applied/);
  assert.match(await text(page.locator('#cohort-filter')), /whole number of years/);
  assert.match(await text(page.locator('#cohort-filter')), /YYYY-MM-DD/);
  assert.equal(await page.getByLabel('Age from').getAttribute('aria-invalid'), 'true');

  await page.goto("/research/outcomes?diagnosis=sad");
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#download-csv').click()]);
  assert.equal(download.suggestedFilename(), 'cohort-outcomes.csv');
  const fs = await import('node:fs/promises');
  const csv = await fs.readFile(await download.path(), 'utf8');
  assert.match(csv, /^section,group,measure,n,k,estimate,lo,hi,note/);
  assert.match(csv, /evidence,taylor-2018,clinic_response,16,6,0\.3750/);
  for (const n of NAMES) {
    assert.ok(!csv.includes(n), `${n} in the CSV`);
  }
});

uiTest('a nurse cannot open the research outcomes', async (page) => {
  await login(page, 'nurse');
  const res = await page.goto("/research/outcomes");
  assert.equal(res.status(), 403);
});
