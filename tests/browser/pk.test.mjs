// End-to-end tests of predicted ketamine concentrations in a browser: the regimen simulator
// (the default comparison, a changed weight and dose, junk refused field by field), the
// predicted curve under the dose calculator, and predicted exposure against response and
// dissociation in a patient's titration review.
//
// Run with `npm test` in tests/browser after `cargo build -p ketacare` (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { clickAndWait, launchBrowser, login, openChart, pathname, rows, startServer, submit, text, withPage } from './harness.mjs';

const TEST_TIMEOUT_MS = 120_000;
const IV = 'IV 0.5 mg/kg over 40 min';
const SC_HALF = 'SC 0.5 mg/kg';
const SC_ONE = 'SC 1 mg/kg';
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

/** The text of an SVG element (SVG elements have no innerText). */
async function svgText(locator) {
  await locator.first().waitFor({ state: 'attached' });
  return (await locator.first().textContent()).replace(/\s+/g, ' ').trim();
}

/** The Cmax marker of a curve on a chart: `{ text, cmax, tmax }`. */
async function cmaxOf(page, chart, label) {
  const marker = page.locator(`${chart} [data-cmax="${label}"]`);
  assert.equal(await marker.count(), 1, `one Cmax marker for "${label}"`);
  const t = await svgText(marker);
  const m = t.match(/^Cmax (\d+) ng\/mL at (\d+(?:\.\d)?) min$/);
  assert.ok(m, `the marker reads "Cmax … ng/mL at … min": ${t}`);
  return { text: t, cmax: Number(m[1]), tmax: Number(m[2]) };
}

/** The curve labels drawn on a chart. */
function curves(page, chart) {
  return page.locator(`${chart} path[data-curve]`).evaluateAll((ps) => ps.map((p) => p.getAttribute('data-curve')));
}

/** A regimen fieldset of the simulator's form. */
function regimen(page, n) {
  return page.getByRole('group', { name: new RegExp(`^Regimen ${n}\\b`) });
}

uiTest('a prescriber opens the simulator from the menu and sees the classic IV against SC comparison with its warnings', async (page) => {
  await login(page, 'prescriber');
  await clickAndWait(page, page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Simulator' }));
  assert.equal(pathname(page), '/simulate');
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Regimen simulator');

  const chart = page.locator('svg#pk-chart');
  await chart.waitFor();
  assert.equal(await chart.getAttribute('role'), 'img');
  assert.match(await svgText(chart.locator('title')), /Predicted plasma ketamine concentration of 3 regimens/);
  assert.match(await chart.locator('desc').textContent(), /NOT targets/);
  assert.deepEqual(await curves(page, '#pk-chart'), [IV, SC_HALF, SC_ONE]);
  for (const label of [IV, SC_HALF, SC_ONE]) {
    assert.equal(await chart.locator(`text[data-legend="${label}"]`).count(), 1, `"${label}" is in the legend`);
  }
  const iv = await cmaxOf(page, '#pk-chart', IV);
  assert.ok(iv.cmax >= 230 && iv.cmax <= 250, `0.5 mg/kg over 40 min peaks near 240 ng/mL: ${iv.text}`);
  assert.ok(Math.abs(iv.tmax - 40) < 0.5, `the infusion peaks at its end: ${iv.text}`);
  const scHalf = await cmaxOf(page, '#pk-chart', SC_HALF);
  const scOne = await cmaxOf(page, '#pk-chart', SC_ONE);
  assert.ok(scOne.cmax > iv.cmax, `SC 1 mg/kg (${scOne.cmax}) peaks above IV 0.5 mg/kg (${iv.cmax})`);
  assert.ok(Math.abs(scOne.cmax / scHalf.cmax - 2) < 0.02, 'a linear model: twice the dose, twice the peak');
  assert.ok((await chart.locator('path[data-band]').count()) >= 2, 'the SC curves have their 5th–95th percentile band');
  assert.ok((await chart.locator('g.context-band').count()) >= 3, 'context bands are drawn behind the curves');
  assert.match(await text(page.locator('figure.pk-figure figcaption')), /NOT targets/);

  const warnings = await text(page.locator('#pk-warnings'));
  assert.match(warnings, /The subcutaneous absorption .* is ASSUMED/, 'the assumed SC absorption is flagged');
  assert.match(await text(page.locator('#pk-warnings li[data-code="assumed_route_parameters"] .badge')), /^ASSUMED$/);

  const summary = await rows(page.locator('table#pk-summary'));
  assert.equal(summary.length, 3, JSON.stringify(summary));
  const ivRow = page.locator('#pk-summary tr[data-regimen="IV 0.5 mg/kg over 40 min"]');
  assert.equal(await text(ivRow.locator('td[data-metric="cmax"]')), String(iv.cmax), 'the table and the chart agree');
  assert.equal(await text(ivRow.locator('td[data-metric="cmax-ratio"]')), '1.00×');
  assert.match(await text(page.locator('#pk-provenance')), /Domino[\s\S]*V1 4\.41 L[\s\S]*terminal half-life 114\.6 min[\s\S]*ke0/);
  assert.equal((await rows(page.locator('#pk-bands'))).length, 5, 'every context band with its source');
});

uiTest('changing the weight and a dose and submitting redraws the comparison; its address can be shared', async (page) => {
  await login(page, 'prescriber');
  await page.goto('/simulate');
  const before = {
    iv: await cmaxOf(page, '#pk-chart', IV),
    sc: await cmaxOf(page, '#pk-chart', SC_ONE),
  };
  await page.locator('#pk-form').getByLabel('Body weight (kg)').fill('95');
  await regimen(page, 3).getByLabel('Dose', { exact: true }).fill('0.75');
  const res = await submit(page, page.getByRole('button', { name: 'Compare' }));
  assert.equal(res.status(), 200);
  const url = new URL(page.url());
  assert.equal(url.pathname, '/simulate');
  assert.equal(url.searchParams.get('weight_kg'), '95', 'a GET form: the comparison is in the address');
  assert.deepEqual(await curves(page, '#pk-chart'), [IV, SC_HALF, 'SC 0.75 mg/kg'], 'the label follows the dose');
  const sc = await cmaxOf(page, '#pk-chart', 'SC 0.75 mg/kg');
  assert.notEqual(sc.cmax, before.sc.cmax, 'the changed dose has another peak');
  assert.ok(Math.abs(sc.cmax / before.sc.cmax - 0.75) < 0.02, `0.75 of the 1 mg/kg peak: ${sc.cmax} vs ${before.sc.cmax}`);
  // The default model scales every volume and clearance with weight: per kg, the same curve.
  const iv = await cmaxOf(page, '#pk-chart', IV);
  assert.ok(Math.abs(iv.cmax - before.iv.cmax) <= 1, `IV ${iv.cmax} vs ${before.iv.cmax}`);
  assert.match(await text(page.locator('#pk-summary tr[data-regimen="IV 0.5 mg/kg over 40 min"]')), /1 × 47\.5 mg/, '0.5 mg/kg of 95 kg');

  // The shared address gives the same comparison.
  await page.goto(url.pathname + url.search);
  assert.equal((await cmaxOf(page, '#pk-chart', 'SC 0.75 mg/kg')).cmax, sc.cmax);
  assert.equal(await page.locator('#pk-form').getByLabel('Body weight (kg)').inputValue(), '95');
});

uiTest('a weight in pounds, an impossible weight or a junk dose is named next to its field and nothing is drawn', async (page) => {
  await login(page, 'prescriber');
  await page.goto('/simulate');
  const form = page.locator('#pk-form');
  await form.getByLabel('Body weight (kg)').fill('154 lb');
  let res = await submit(page, page.getByRole('button', { name: 'Compare' }));
  assert.equal(res.status(), 422);
  assert.equal(await page.locator('#pk-chart').count(), 0, 'no chart for bad input');
  let err = await text(page.locator('#f-weight_kg-err'));
  assert.match(err, /^Body weight \(kg\) must be a plain number of kilograms .*from 2 to 350 \(a weight in pounds divided by 2\.2\)/, err);
  assert.equal(await form.getByLabel('Body weight (kg)').inputValue(), '154 lb', 'what was typed is kept');
  assert.match(await text(page.locator('#pk-errors')), /Body weight: /);

  await form.getByLabel('Body weight (kg)').fill('900');
  await regimen(page, 2).getByLabel('Dose', { exact: true }).fill('half');
  await regimen(page, 4).getByLabel('Number of doses').fill('3');
  await regimen(page, 4).getByLabel('Dose', { exact: true }).fill('0.5');
  await regimen(page, 4).getByLabel('Infusion time (min)').fill('40');
  res = await submit(page, page.getByRole('button', { name: 'Compare' }));
  assert.equal(res.status(), 422);
  assert.equal(await page.locator('#pk-chart').count(), 0);
  err = await text(page.locator('#f-weight_kg-err'));
  assert.match(err, /^Body weight \(kg\) must be the body weight in kg, from 2 to 350/, err);
  assert.match(await text(regimen(page, 2).locator('p.error')), /^Dose must be a plain number, e\.g\. 0\.5 \(mg\/kg\)/);
  assert.match(await text(regimen(page, 4).locator('p.error')), /^Every \(min\) is required for repeated doses/);
  assert.equal(await regimen(page, 2).getByLabel('Dose', { exact: true }).inputValue(), 'half');
  const listed = await page.locator('#pk-errors li').allInnerTexts();
  assert.ok(listed.some((l) => l.startsWith('Regimen 2, dose:')), JSON.stringify(listed));
  assert.ok(listed.some((l) => l.startsWith('Regimen 4, interval:')), JSON.stringify(listed));

  // Huge numbers and junk in the address are refused the same way, never a server error.
  res = await page.goto('/simulate?weight_kg=1e400&r0_route=iv_infusion&r0_dose=1e308&r0_unit=mg&r0_minutes=-1&to_min=soon&model=nope&drug=x');
  assert.equal(res.status(), 422);
  for (const id of ['weight_kg', 'to_min', 'model', 'drug', 'r0_dose', 'r0_minutes']) {
    assert.equal(await page.locator(`.field.invalid #f-${id}`).count(), 1, `an error next to ${id}`);
  }
  assert.doesNotMatch(await page.content(), /NaN|Infinity/);
});

uiTest('the dose calculator shows the predicted curve of a calculated dose, and none for a refused one', async (page) => {
  await login(page, 'nurse');
  await page.goto('/calculator');
  const form = page.locator('form#calculator');
  const fill = async (mgkg) => {
    await form.getByLabel('Route').selectOption('iv');
    await form.getByLabel('Weight measured today (kg)').fill('72');
    await form.getByLabel('Dose (mg/kg)').fill(mgkg);
    await form.getByLabel('Concentration of the vial').selectOption('10');
    await form.getByLabel('Final volume after dilution (mL), IV only').fill('100');
    await form.getByLabel('Infusion time (min), IV only').fill('40');
    return submit(page, form.getByRole('button', { name: 'Calculate' }));
  };
  let res = await fill('0.5');
  assert.equal(res.status(), 200);
  assert.equal(await text(page.locator('#dose-mg')), '36 mg', 'the calculation itself is unchanged');
  const section = page.locator('#dose-prediction');
  assert.equal(await text(section.getByRole('heading', { level: 2 })), 'Predicted concentration of this dose');
  assert.deepEqual(await curves(page, '#dose-pk-chart'), ['IV 36 mg over 40 min']);
  const c = await cmaxOf(page, '#dose-pk-chart', 'IV 36 mg over 40 min');
  assert.ok(c.cmax >= 230 && c.cmax <= 250, c.text);
  assert.match(await text(page.locator('#dose-cmax')), new RegExp(`^${c.cmax} ng/mL at 40 min$`));
  assert.match(await text(section), /AUC 0–∞ \d+ ng·h\/mL/);
  assert.match(await text(section), /NOT targets/);

  await clickAndWait(page, page.locator('#dose-simulate-link'));
  assert.equal(pathname(page), '/simulate');
  assert.deepEqual(await curves(page, '#pk-chart'), ['IV 36 mg over 40 min'], 'the same dose opens in the simulator');
  assert.equal((await cmaxOf(page, '#pk-chart', 'IV 36 mg over 40 min')).cmax, c.cmax);

  await page.goto('/calculator');
  res = await fill('5');
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('#dose-result')), /Refused/);
  assert.equal(await page.locator('#dose-prediction').count(), 0, 'no curve for a refused dose');
});

/** The fieldset of item `n` (1-based) of a rating-scale form. */
function item(page, n) {
  return page.getByRole('group', { name: new RegExp(`^${n}\\. `) });
}

/** A UTC time `minutes` ago as a datetime-local value (YYYY-MM-DDTHH:MM). */
function utcMinutesAgo(minutes) {
  return new Date(Date.now() - minutes * 60_000).toISOString().slice(0, 16);
}

/**
 * Records a rating scale with every item at `value` through the clinician's form, tied to the
 * latest treatment session at `timepointLabel` when given.
 */
async function recordScale(page, patientId, key, items, value, timepointLabel) {
  await page.goto(`/patients/${patientId}/assessments/new?instrument=${key}`);
  for (let n = 1; n <= items; n += 1) await item(page, n).getByRole('radio', { name: new RegExp(`^${value}\\b`) }).check();
  if (timepointLabel) {
    await page.locator('select[name="session"]').selectOption({ index: 1 });
    await page.locator('select[name="timepoint"]').selectOption({ label: timepointLabel });
  }
  const res = await submit(page, page.getByRole('button', { name: 'Save and score' }));
  assert.ok(res.status() < 400, `${key} saved (${res.status()})`);
}

uiTest('the titration review plots response and CADSS against the predicted Cmax of the dose given', async (page) => {
  await login(page, 'prescriber');
  // KC-000065 started the SC ascending protocol today; the first dose is double-checked.
  await openChart(page, 'KC-000065');
  const chartPath = pathname(page);
  await clickAndWait(page, page.getByRole('link', { name: 'Dosing', exact: true }));
  const section = page.locator('#exposure-response');
  assert.equal(await text(section.getByRole('heading', { level: 2 })), 'Response and dissociation against predicted exposure');
  assert.match(await text(section.locator('#exposure-empty')), /No session under this plan has both a given dose and a rating/);
  assert.equal(await section.locator('svg').count(), 0, 'no empty chart');
  let table = await rows(section.locator('#exposure-table'));
  assert.equal(table.length, 1, JSON.stringify(table));
  assert.equal(table[0][1], 'dose1');
  assert.equal(table[0][3], 'subcutaneous');
  assert.match(table[0][5], /^\d+$/, 'a predicted Cmax');
  assert.match(await text(section.locator('#exposure-note')), /predicted from the model \(Domino \(TCI lineage\)\) at the weight on each order, not measured/);
  assert.match(await text(section.locator('#exposure-note')), /ASSUMED/);

  // Today's session, charted as a treatment encounter, and its ratings: HAM-A an hour after
  // the dose, and CADSS.
  const id = chartPath.split('/')[2];
  await page.goto(`${chartPath}/records?kind=encounter`);
  await page.getByLabel('Kind').selectOption({ label: 'Treatment session' });
  await page.getByLabel('Start (UTC)').fill(utcMinutesAgo(65));
  await page.getByLabel('Reason for visit').fill('SC ketamine 0.25 mg/kg (ascending dose 1 of 3)');
  const saved = await submit(page, page.getByRole('button', { name: 'Save' }));
  assert.ok(saved.status() < 400, `the session is charted (${saved.status()})`);
  await recordScale(page, id, 'hama', 14, 1, '+1 h');
  await recordScale(page, id, 'cadss', 23, 1);
  await page.goto(`${chartPath}/dosing`);
  assert.equal(await section.locator('#exposure-empty').count(), 0);
  const chart = section.locator('svg#exposure-chart');
  await chart.waitFor();
  assert.equal(await chart.locator('g.point[data-series="left"] circle').count(), 1, 'one response point');
  assert.equal(await chart.locator('g.point[data-series="right"] rect').count(), 1, 'one CADSS point');
  const today = table[0][0];
  assert.equal(await svgText(chart.locator('g.point[data-series="right"] text')), today, 'the point is labelled with the session date');
  table = await rows(section.locator('#exposure-table'));
  assert.match(table[0][7], /^\d+(\.\d)? % \(HAM-A\)$/, `the response: ${table[0][7]}`);
  assert.equal(table[0][8], '23', 'the CADSS total');
  assert.match(await chart.locator('desc').textContent(), new RegExp(`${today} Cmax ${table[0][5]} ng/mL, response .* %, CADSS 23`));
});

test('the simulator and the calculator with its curve fit a tablet without horizontal scrolling', { timeout: TEST_TIMEOUT_MS }, () =>
  withPage(browser, server, 'pk pages on a tablet', async (page) => {
    await login(page, 'prescriber');
    const pages = [
      ['the simulator', () => page.goto('/simulate')],
      ['the simulator with errors', () => page.goto('/simulate?weight_kg=154+lb&r0_route=sc&r0_dose=x&r0_count=2')],
      ['the calculator with the predicted curve', async () => {
        await page.goto('/calculator');
        const form = page.locator('form#calculator');
        await form.getByLabel('Route').selectOption('sc');
        await form.getByLabel('Weight measured today (kg)').fill('72');
        await form.getByLabel('Dose (mg/kg)').fill('0.5');
        await form.getByLabel('Concentration of the vial').selectOption('50');
        await submit(page, form.getByRole('button', { name: 'Calculate' }));
        await page.locator('#dose-pk-chart').waitFor();
      }],
    ];
    for (const [label, go] of pages) {
      await go();
      const { scrollWidth, innerWidth } = await page.evaluate(() => ({ scrollWidth: document.scrollingElement.scrollWidth, innerWidth: window.innerWidth }));
      assert.ok(scrollWidth <= innerWidth + 1, `${label}: ${scrollWidth}px wide in a ${innerWidth}px viewport`);
    }
  }, { viewport: { width: 768, height: 1024 } }));
