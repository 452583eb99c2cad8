// End-to-end tests of dosing in a browser: the bedside dose calculator (worked example, a soft
// limit, a ten-fold dose refused, a concentration that is not on the shelf), the protocol and
// drug libraries, and the quality report that counts every evaluation.
//
// Run with `npm test` in tests/browser after `cargo build -p ketacare` (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { clickAndWait, launchBrowser, login, logout, pathname, rows, startServer, text, withPage, submit } from './harness.mjs';

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

async function fillDose(page, { route = 'iv', weight, mgkg, conc, finalVolume, minutes }) {
  const form = page.locator('form#calculator');
  await form.getByLabel('Route').selectOption(route);
  await form.getByLabel('Weight measured today (kg)').fill(weight);
  await form.getByLabel('Dose (mg/kg)').fill(mgkg);
  if (conc) await form.getByLabel('Concentration of the vial').selectOption(conc);
  await form.getByLabel('Final volume after dilution (mL), IV only').fill(finalVolume ?? '');
  await form.getByLabel('Infusion time (min), IV only').fill(minutes ?? '');
  return submit(page, form.getByRole('button', { name: 'Calculate' }));
}

uiTest('a nurse calculates 0.5 mg/kg IV at the bedside: dose, volume, dilution, rate and the calculation chain', async (page) => {
  await login(page, 'nurse');
  await clickAndWait(page, page.getByRole('link', { name: 'Dose calculator' }));
  assert.equal(pathname(page), '/calculator');
  const res = await fillDose(page, { weight: '72', mgkg: '0.5', conc: '10', finalVolume: '100', minutes: '40' });
  assert.equal(res.status(), 200);
  assert.equal(await text(page.locator('#dose-mg')), '36 mg');
  assert.equal(await text(page.locator('#draw')), '3.6 mL of 10 mg/mL');
  assert.equal(await text(page.locator('#rate')), '150 mL/h');
  assert.match(await text(page.locator('#dose-result')), /add 96\.4 mL to make 100 mL at 0\.36 mg\/mL/);
  const steps = await page.locator('ol.steps li').allInnerTexts();
  assert.ok(steps.includes('Dose = 0.5 mg/kg × 72 kg = 36 mg'), JSON.stringify(steps));
  assert.equal(await page.locator('ul.breaches').count(), 0);
});

uiTest('a soft limit asks for a reason and a second clinician; a ten-fold dose is refused; an unlisted vial cannot be chosen', async (page) => {
  await login(page, 'prescriber');
  await page.goto('/calculator');
  let res = await fillDose(page, { weight: '72', mgkg: '0.8', conc: '10', finalVolume: '100', minutes: '40' });
  assert.equal(res.status(), 200);
  assert.match(await text(page.locator('#dose-result')), /Soft limit: an order needs a reason and a second clinician/);
  assert.match(await text(page.locator('ul.breaches')), /Dose 0\.8 mg\/kg is above the soft maximum of 0\.75 mg\/kg/);
  res = await fillDose(page, { weight: '72', mgkg: '5', conc: '10', finalVolume: '100', minutes: '40' });
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('#dose-result')), /Refused: a hard limit is breached/);
  assert.match(await text(page.locator('ul.breaches li.hard')), /Dose 5 mg\/kg is above the hard maximum of 1 mg\/kg/);
  const options = await page.locator('form#calculator select[name="concentration_mg_per_ml"] option').allInnerTexts();
  assert.deepEqual(options.slice(1), ['10 mg/mL', '50 mg/mL', '100 mg/mL'], 'only what is on the shelf');
  res = await fillDose(page, { weight: '176', mgkg: '0.5', conc: '10', finalVolume: '100', minutes: '40' });
  assert.equal(res.status(), 200, 'a heavy but possible weight is calculated');
  res = await fillDose(page, { weight: '480', mgkg: '0.5', conc: '10', finalVolume: '100', minutes: '40' });
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('main')), /was it typed in pounds\?/);
  assert.equal(await page.locator('form#calculator').getByLabel('Weight measured today (kg)').inputValue(), '480', 'the typed value is kept');
});

uiTest('protocols and the drug library show every step and limit with its source', async (page) => {
  await login(page, 'nurse');
  await clickAndWait(page, page.getByRole('link', { name: 'Protocols' }));
  const asc = await rows(page.locator('#protocol-sc_ascending table'));
  assert.deepEqual(asc.map((r) => r[1]), ['0.25 mg/kg', '0.5 mg/kg', '1 mg/kg']);
  assert.deepEqual(asc.map((r) => r[2]), ['day 0', 'day 7', 'day 14']);
  assert.match(await text(page.locator('#protocol-sc_ascending')), /Source: Glue P et al\. 2017/);
  assert.match((await rows(page.locator('#protocol-iv_single table')))[0][1], /^0\.5 mg\/kg over 40 min$/);
  await clickAndWait(page, page.getByRole('link', { name: 'Drug library and limits' }));
  const iv = await rows(page.locator('#route-iv table'));
  assert.deepEqual(iv[0], ['Dose', '0.05 mg/kg', '0.1 mg/kg', '0.75 mg/kg', '1 mg/kg']);
  assert.match(await text(page.locator('#route-iv')), /Andrade 2017/);
});

uiTest('the medical director reads the quality report with the soft breaches and refusals', async (page) => {
  await login(page, 'prescriber');
  await page.goto('/calculator');
  await fillDose(page, { weight: '72', mgkg: '0.8', conc: '10', finalVolume: '100', minutes: '40' });
  await fillDose(page, { weight: '72', mgkg: '5', conc: '10', finalVolume: '100', minutes: '40' });
  await logout(page);
  await login(page, 'director');
  await clickAndWait(page, page.getByRole('link', { name: 'Dose quality' }));
  const all = (await rows(page.locator('#quality-all')))[0];
  assert.ok(Number(all[1]) >= 2, JSON.stringify(all));
  assert.ok(Number(all[3]) >= 1 && Number(all[5]) >= 1, `a soft breach and a refusal: ${JSON.stringify(all)}`);
  const users = await rows(page.locator('#quality-user'));
  assert.ok(users.some((r) => r[0] === 'prescriber'), JSON.stringify(users));
  const events = await rows(page.locator('#quality-events'));
  assert.ok(events.some((r) => r[3] === 'rejected' && /hard limit: dose above the hard maximum/.test(r[4])), JSON.stringify(events));
  // The report names the kind of limit, never the amounts: it must not reveal doses to a blind checker.
  assert.ok(events.every((r) => !/\d mg\/kg/.test(r[4])), JSON.stringify(events));
});

uiTest('a prescriber plans SC ascending doses and orders 0.5 mg/kg; a soft limit needs a reason and a second person; a ten-fold dose is refused; a nurse double-checks blind', async (page) => {
  // The nurse weighs the patient today (the same weight as last time, so no plausibility question).
  await login(page, 'nurse');
  await openChartOf(page, 'KC-000030');
  const chartPath = pathname(page);
  const kg = (await text(page.locator('#latest-weight'))).replace(' kg', '');
  await clickAndWait(page, page.getByRole('link', { name: 'Record weight' }));
  await page.getByLabel('Weight (kg)').fill(kg);
  await clickAndWait(page, page.getByRole('button', { name: 'Save' }));
  await logout(page);

  await login(page, 'prescriber');
  await page.goto(chartPath);
  await clickAndWait(page, page.getByRole('link', { name: 'Dosing', exact: true }));
  assert.equal(pathname(page), `${chartPath}/dosing`);
  assert.match(await text(page.locator('#weight')), new RegExp(`${kg.replace('.', '\\.')} kg measured .* by nurse · measured today`));
  const planForm = page.locator('form#plan-form');
  await planForm.getByLabel('Protocol').selectOption('sc_ascending');
  let res = await submit(page, planForm.getByRole('button', { name: 'Plan' }));
  assert.equal(res.status(), 200);
  const sessions = await page.locator('table.calendar div.session').allInnerTexts();
  assert.equal(sessions.length, 3, JSON.stringify(sessions));
  assert.match(sessions[0], /Ascending dose 1 of 3\s+0\.25 mg\/kg/);
  await clickAndWait(page, page.getByRole('link', { name: 'Order this dose' }));
  const order = page.locator('form#order');
  assert.equal(await order.getByLabel('Dose (mg/kg)').inputValue(), '0.25', 'the plan fills in the dose');
  assert.equal(await order.getByLabel('Route').inputValue(), 'sc');
  await order.getByLabel('Dose (mg/kg)').fill('0.5');
  await order.getByLabel('Concentration of the vial').selectOption('50');
  res = await submit(page, order.getByRole('button', { name: 'Calculate and order' }));
  assert.equal(res.status(), 200);
  const scOrder = page.locator('article.order').first();
  assert.match(await text(scOrder), /Awaiting the independent double check/);
  const expected = (Math.floor((Number(kg) * 0.5 / 50) * 100) / 100 * 50);
  assert.match(await text(scOrder.locator('dl.dose')), new RegExp(`Dose ${String(Number(expected.toFixed(3)))} mg \\(0\\.5 mg/kg`));

  // A soft limit needs a reason; a hard limit is refused for everyone.
  const iv = async (mgkg, reason) => {
    const f = page.locator('form#order');
    await f.getByLabel('Route').selectOption('iv');
    await f.getByLabel('Dose (mg/kg)').fill(mgkg);
    await f.getByLabel('Concentration of the vial').selectOption('10');
    await f.getByLabel('Final volume after dilution (mL), IV only').fill('100');
    await f.getByLabel('Infusion time (min), IV only').fill('40');
    if (reason) await f.getByLabel(/^Reason to pass a soft limit/).fill(reason);
    return submit(page, f.getByRole('button', { name: 'Calculate and order' }));
  };
  res = await iv('5');
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('form#order')), /Hard limit, refused for everyone: Dose 5 mg\/kg is above the hard maximum of 1 mg\/kg/);
  res = await iv('0.8');
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('form#order')), /Soft limit: Dose 0\.\d+ mg\/kg is above the soft maximum of 0\.75 mg\/kg.* Give a reason/);
  res = await iv('0.8', 'Partial response at 0.75 mg/kg, well tolerated; agreed at the team meeting');
  assert.equal(res.status(), 200);
  const ivOrder = page.locator('article.order[data-status="awaiting_override"]');
  assert.equal(await ivOrder.count(), 1);
  // The prescriber cannot approve their own override.
  res = await submit(page, ivOrder.getByRole('button', { name: 'Approve the override as second clinician' }));
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('main')), /someone other than the prescriber/);
  await logout(page);

  await login(page, 'director');
  await page.goto(`${chartPath}/dosing`);
  res = await submit(page, page.locator('article.order[data-status="awaiting_override"]').getByRole('button', { name: 'Approve the override as second clinician' }));
  assert.equal(res.status(), 200);
  assert.equal(await page.locator('article.order[data-status="awaiting_override"]').count(), 0);
  assert.match(await text(page.locator('main')), /approved by director/);
  await logout(page);

  // The nurse checks the SC dose blind: a wrong vial is blocked, the right one passes.
  await login(page, 'nurse');
  await page.goto(`${chartPath}/dosing`);
  const sc = page.locator('article.order', { hasText: 'Subcutaneous injection' });
  assert.match(await text(sc), /The calculated dose is hidden until the independent double check/);
  assert.equal(await sc.locator('dl.dose').count(), 0, 'no dose shown to the checker');
  const check = sc.locator('form.check');
  await check.getByLabel("Weight from today's record (kg)").fill(kg);
  await check.getByLabel('Concentration on the vial in your hand (mg/mL)').fill('5');
  await check.getByLabel('Dose you calculated (mg)').fill(String(Number((Number(kg) * 0.5).toFixed(3))));
  res = await submit(page, check.getByRole('button', { name: 'Check' }));
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('main')), /does not match the order: the dose is blocked/);
  const blocked = page.locator('article.order[data-status="blocked"]', { hasText: 'Subcutaneous injection' });
  assert.match(await text(blocked), /Blocked: the double check did not match; order again/);
  assert.equal(await blocked.locator('form.check').count(), 0, 'a blocked order cannot be checked again');
  await logout(page);

  // The prescriber orders the SC dose again; the nurse checks with the right vial.
  await login(page, 'prescriber');
  await page.goto(`${chartPath}/dosing`);
  await clickAndWait(page, page.getByRole('link', { name: 'Order this dose' }).first());
  const again = page.locator('form#order');
  assert.equal(await again.getByLabel('Route').inputValue(), 'sc');
  await again.getByLabel('Dose (mg/kg)').fill('0.5');
  await again.getByLabel('Concentration of the vial').selectOption('50');
  res = await submit(page, again.getByRole('button', { name: 'Calculate and order' }));
  assert.equal(res.status(), 200);
  await logout(page);
  await login(page, 'nurse');
  await page.goto(`${chartPath}/dosing`);
  const check2 = page.locator('article.order[data-status="awaiting_check"]', { hasText: 'Subcutaneous injection' }).locator('form.check');
  await check2.getByLabel("Weight from today's record (kg)").fill(kg);
  await check2.getByLabel('Concentration on the vial in your hand (mg/mL)').fill('50');
  await check2.getByLabel('Dose you calculated (mg)').fill(String(Number((Number(kg) * 0.5).toFixed(3))));
  res = await submit(page, check2.getByRole('button', { name: 'Check' }));
  assert.equal(res.status(), 200);
  const done = page.locator('article.order[data-status="checked"]');
  assert.equal(await done.count(), 1);
  assert.match(await text(done), /Double-checked by nurse/);
  assert.match(await text(done.locator('dl.dose')), /0\.5 mg\/kg/, 'the values show once checked');
  await logout(page);

  // The prescriber reviews the titration recommendation and chooses otherwise, with a reason.
  await login(page, 'prescriber');
  await page.goto(`${chartPath}/dosing`);
  const review = page.locator('section#titration');
  assert.match(await text(review), /Recommendation: Escalate to the next dose · next dose 0\.5 mg\/kg/);
  assert.match(await text(review), /Source: Glue P et al\. 2017/);
  res = await submit(page, review.getByRole('button', { name: 'Choose otherwise' }));
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('section#titration')), /say why you choose otherwise/);
  await page.locator('section#titration').getByLabel('Reason (required when you choose otherwise)').fill('Already at 0.5 mg/kg today; keep the dose for one more week');
  res = await submit(page, page.locator('section#titration').getByRole('button', { name: 'Choose otherwise' }));
  assert.equal(res.status(), 200);
  assert.match(await text(page.locator('section#titration')), /Last decision: titration review: chose otherwise than "Escalate to the next dose": Already at 0\.5 mg\/kg today/);
});

async function openChartOf(page, mrn) {
  await page.goto('/patients');
  await page.getByLabel('Search by name or MRN').fill(mrn);
  await clickAndWait(page, page.getByRole('button', { name: 'Search' }));
  await clickAndWait(page, page.locator('table.list tbody tr').filter({ hasText: mrn }).getByRole('link'));
}

uiTest('a drug-library change needs two people: the director proposes, a prescriber approves, and it is in force', async (page) => {
  await login(page, 'director');
  await page.goto('/drug-library');
  const form = page.locator('form#propose');
  await form.getByLabel('Value', { exact: true }).selectOption('sc.soft_max_total_mg');
  await form.getByLabel('New value (empty = back to the default)').fill('500');
  await form.getByLabel('Why').fill('Too high');
  let res = await submit(page, form.getByRole('button', { name: 'Propose' }));
  assert.equal(res.status(), 422, 'a soft maximum above the hard maximum is refused');
  assert.match(await text(page.locator('form#propose')), /soft maximum would be above the hard maximum/);
  await page.locator('form#propose').getByLabel('New value (empty = back to the default)').fill('90');
  await page.locator('form#propose').getByLabel('Why').fill('Our heaviest patients stay under 90 mg SC');
  res = await submit(page, page.locator('form#propose').getByRole('button', { name: 'Propose' }));
  assert.equal(res.status(), 200);
  const row = page.locator('section#proposals tbody tr').first();
  assert.match(await text(row), /sc\.soft_max_total_mg → 90/);
  res = await submit(page, row.getByRole('button', { name: 'Approve' }));
  assert.equal(res.status(), 422, 'the proposer cannot approve');
  assert.match(await text(page.locator('section#proposals')), /someone other than the proposer/);
  await logout(page);

  await login(page, 'prescriber');
  await page.goto('/drug-library');
  res = await submit(page, page.locator('section#proposals tbody tr').first().getByRole('button', { name: 'Approve' }));
  assert.equal(res.status(), 200);
  assert.match(await text(page.locator('section#proposals tbody tr').first()), /approved by prescriber/);
  const sc = await rows(page.locator('#route-sc table'));
  assert.deepEqual(sc.find((r) => r[0] === 'Total per dose'), ['Total per dose', '—', '—', '90 mg', '150 mg']);
  assert.match(await text(page.locator('#route-sc')), /Clinic policy set on .* Our heaviest patients stay under 90 mg SC/);
});

const CLINIC_PROTOCOL = `[[protocol]]
key = "sc_slow"
name = "SC slow ascending (clinic)"
route = "sc"
indication = "Frail adults"
source = "Local guideline 2026-04, adapted from Glue 2017 (doi:10.1177/0269881117705089)"
steps = [
  { key = "d1", label = "Slow dose 1", day = 0, mg_per_kg = "0.2", assessments = ["hama@1h"], move_on = "If tolerated" },
  { key = "d2", label = "Slow dose 2", day = 14, mg_per_kg = "0.4", assessments = ["hama@1h"], move_on = "Review" },
]`;

uiTest('a prescriber proposes a clinic protocol; it is in force only once the medical director approves it', async (page) => {
  await login(page, 'prescriber');
  await page.goto('/protocols');
  const form = page.locator('form#propose-protocol');
  await form.getByLabel('Protocol (TOML)').fill(CLINIC_PROTOCOL.replace('hama@1h', 'hama@90min'));
  await form.getByLabel('Why').fill('Slower escalation for frail adults');
  let res = await submit(page, form.getByRole('button', { name: 'Propose' }));
  assert.equal(res.status(), 422);
  assert.match(await text(page.locator('form#propose-protocol')), /must be instrument@timepoint/);
  assert.ok((await page.locator('form#propose-protocol').getByLabel('Protocol (TOML)').inputValue()).includes('sc_slow'), 'the text is kept');
  await page.locator('form#propose-protocol').getByLabel('Protocol (TOML)').fill(CLINIC_PROTOCOL);
  res = await submit(page, page.locator('form#propose-protocol').getByRole('button', { name: 'Propose' }));
  assert.equal(res.status(), 200);
  assert.match(await text(page.locator('section#proposals tbody tr').first()), /awaiting the medical director/);
  assert.equal(await page.locator('#protocol-sc_slow').count(), 0, 'not in force yet');
  await logout(page);
  await login(page, 'director');
  await page.goto('/protocols');
  res = await submit(page, page.locator('section#proposals tbody tr').first().getByRole('button', { name: 'Approve' }));
  assert.equal(res.status(), 200);
  const rows2 = await rows(page.locator('#protocol-sc_slow table'));
  assert.deepEqual(rows2.map((r) => r[1]), ['0.2 mg/kg', '0.4 mg/kg']);
  assert.match(await text(page.locator('#protocol-sc_slow')), /clinic protocol approved by director/);
});
