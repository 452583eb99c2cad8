// End-to-end test of chart scope and emergency ("break-glass") access: the medical director
// narrows the clinic to care teams, a nurse outside a patient's care team finds the patient by
// MRN and opens the chart in an emergency with a reason, the director reviews what was done, and
// the prescriber on the team adds the nurse to it.
//
// Run with `npm test` in tests/browser after `cargo build -p ketacare` (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { clickAndWait, launchBrowser, login, logout, openChart, pathname, startServer, text, withPage } from './harness.mjs';

const TEST_TIMEOUT_MS = 90_000;

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

test('a nurse outside the care team opens a chart in an emergency; the director reviews it; the prescriber adds her to the team', { timeout: TEST_TIMEOUT_MS }, () =>
  withPage(browser, server, 'access', async (page, context) => {
    // The medical director narrows the chart scope, with a reason.
    await login(page, 'director');
    await clickAndWait(page, page.getByRole('link', { name: 'Chart access' }));
    assert.equal(await text(page.getByTestId('chart-scope')), 'every clinician sees every chart');
    await page.getByRole('radio', { name: /^Care team:/ }).check();
    await clickAndWait(page, page.getByRole('button', { name: 'Save the chart scope' }));
    assert.match(await text(page.getByRole('alert')), /Nothing was saved.*reason: must be at least 3 characters/, 'a reason is required');
    await page.getByRole('radio', { name: /^Care team:/ }).check();
    await page.getByLabel('Reason for the change').fill('psychiatric records: care teams only');
    await clickAndWait(page, page.getByRole('button', { name: 'Save the chart scope' }));
    assert.equal(await text(page.getByTestId('chart-scope')), 'care team');
    assert.equal(await text(page.getByTestId('no-emergency')), 'None.');
    await logout(page);
    await context.clearCookies();

    // The nurse's list holds the patients she registered (the demo's referrals, KC-000065
    // onwards), not the prescriber's; an exact MRN names one of those.
    await login(page, 'nurse');
    assert.equal(pathname(page), '/patients');
    const mine = await page.locator('table.list tbody tr').count();
    assert.ok(mine > 0);
    assert.doesNotMatch(await text(page.locator('table.list')), /KC-0000[0-5]\d/);
    await page.getByLabel('Search by name or MRN').fill('KC-000002');
    await clickAndWait(page, page.getByRole('button', { name: 'Search' }));
    assert.match(await text(page.getByTestId('outside-scope')), /^KC-000002 · .+ is not on your care team\./);
    await clickAndWait(page, page.getByRole('link', { name: 'Open in an emergency…' }));
    assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Emergency access');
    assert.match(await text(page.getByTestId('emergency-patient')), /^KC-000002 · /);
    await page.getByLabel('Why do you need this chart now?').fill('urgent');
    await clickAndWait(page, page.getByRole('button', { name: 'Open the chart (emergency)' }));
    assert.match(await text(page.getByRole('alert')), /at least 10 characters/);
    await page.getByLabel('Why do you need this chart now?').fill('covering room 2: patient unwell after the dose');
    await clickAndWait(page, page.getByRole('button', { name: 'Open the chart (emergency)' }));
    assert.match(pathname(page), /^\/patients\/[0-9a-f-]{36}$/, 'the chart opens');
    const chartUrl = pathname(page);
    assert.match(await text(page.getByTestId('emergency-banner')), /^Emergency access until .*“covering room 2/);
    // Now in her list, for the emergency's twelve hours.
    await page.goto('/patients');
    assert.equal(await page.locator('table.list tbody tr').count(), mine + 1);
    // A chart she has no access to shows the way in, not the chart.
    await page.goto('/patients?q=KC-000003');
    const other = page.getByTestId('outside-scope');
    assert.match(await text(other), /^KC-000003/);
    const href = await other.getByRole('link').getAttribute('href');
    const response = await page.goto(href.replace('/emergency-access', ''));
    assert.equal(response.status(), 403);
    assert.equal(await text(page.getByRole('heading', { level: 1 })), 'This patient is not on your care team');
    await clickAndWait(page, page.getByRole('link', { name: 'Back to my patients' }));
    await logout(page);
    await context.clearCookies();

    // The director sees the emergency access with what was done, and reviews it.
    await login(page, 'director');
    await clickAndWait(page, page.getByRole('link', { name: 'Chart access' }));
    const access = page.getByTestId('emergency-access');
    assert.equal(await access.count(), 1);
    assert.match(await text(access.getByRole('heading')), /^nurse opened KC-000002 · /);
    assert.match(await text(access), /covering room 2: patient unwell after the dose/);
    await access.locator('summary').click();
    assert.ok((await access.locator('tbody tr').count()) >= 2, 'the chart reads are listed');
    await access.getByLabel(/^Review note for nurse/).fill('appropriate: covering nurse in room 2');
    await clickAndWait(page, access.getByRole('button', { name: 'Mark reviewed' }));
    assert.equal(await text(page.getByTestId('no-emergency')), 'None.', 'nothing waits for review');
    await clickAndWait(page, page.getByRole('link', { name: 'Show all' }));
    assert.match(await text(page.getByTestId('emergency-access')), /Reviewed by director .*appropriate: covering nurse/);
    await logout(page);
    await context.clearCookies();

    // The prescriber, on the patient's care team, adds the nurse to it.
    await login(page, 'prescriber');
    await openChart(page, 'KC-000003');
    await clickAndWait(page, page.getByRole('link', { name: 'Care team' }));
    assert.match(await text(page.getByTestId('care-team')), /Dr Tomas Lindgren \(prescriber\)/);
    await page.getByLabel('Username').fill('researcher');
    await clickAndWait(page, page.getByRole('button', { name: 'Add to the care team' }));
    assert.match(await text(page.getByRole('alert')), /active prescriber, nurse or medical director/);
    await page.getByLabel('Username').fill('nurse');
    await clickAndWait(page, page.getByRole('button', { name: 'Add to the care team' }));
    assert.match(await text(page.getByTestId('care-team')), /Grace Oduya, RN \(nurse\)/);
    await logout(page);
    await context.clearCookies();

    await login(page, 'nurse');
    await openChart(page, 'KC-000003');
    assert.equal(await page.getByTestId('emergency-banner').count(), 0, 'on the team: an ordinary chart');
    assert.notEqual(pathname(page), chartUrl);
  }),
);
