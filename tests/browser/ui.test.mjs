// End-to-end tests of the staff web UI: what a nurse, prescriber, medical director,
// administrator and researcher do in a browser, against one demo clinic.
//
// Run with `npm test` in tests/browser after `cargo build -p ketacare` (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  clickAndWait,
  launchBrowser,
  login,
  logout,
  openChart,
  pathname,
  rows,
  startServer,
  text,
  withPage,
} from './harness.mjs';

const TEST_TIMEOUT_MS = 90_000;

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

const CHART_PATH = /^\/patients\/[0-9a-f-]{36}$/;

// 1. The issue's scenario: pounds typed into the kilogram field are caught before saving.
uiTest('nurse registers a patient and a weight typed in pounds is caught and corrected', async (page) => {
  await login(page, 'nurse');
  assert.equal(pathname(page), '/patients', 'the nurse starts on the patient list');

  await clickAndWait(page, page.getByRole('link', { name: 'Register patient' }));
  assert.equal(pathname(page), '/patients/new');
  await page.getByLabel('MRN').fill('');
  await page.getByLabel('Family name').fill('Quennell');
  await page.getByLabel('Given name').fill('Oksana');
  await page.getByLabel('Date of birth').fill('1988-02-14');
  await page.getByLabel('Sex').selectOption({ label: 'Female' });
  await clickAndWait(page, page.getByRole('button', { name: 'Register patient' }));

  assert.match(pathname(page), CHART_PATH, 'registration lands on the new chart');
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Quennell, Oksana');
  const header = await text(page.locator('main'));
  assert.match(header, /MRN KC-\d{6}/, 'an MRN was assigned');
  assert.match(header, /born 1988-02-14/);
  assert.equal(await text(page.locator('#latest-weight')), 'none recorded');
  const chartUrl = page.url();

  // First weight: 81.5 kg is saved without questions.
  await clickAndWait(page, page.getByRole('link', { name: 'Record weight' }));
  await page.getByLabel('Weight (kg)').fill('81.5');
  await clickAndWait(page, page.getByRole('button', { name: 'Save' }));
  assert.equal(pathname(page), new URL(chartUrl).pathname, 'saving returns to the chart');
  assert.equal(await text(page.locator('#latest-weight')), '81.5 kg');

  // Second weight: 179.7 is 81.5 × 2.2046, i.e. pounds typed into the kilogram field.
  await clickAndWait(page, page.getByRole('link', { name: 'Record weight' }));
  await page.getByLabel('Weight (kg)').fill('179.7');
  await clickAndWait(page, page.getByRole('button', { name: 'Save' }));
  const warnings = page.locator('#warnings');
  await warnings.waitFor();
  assert.match(await text(warnings), /Did you enter pounds\?/);
  assert.match(await text(warnings), /81\.5 kg/, 'the warning names the previous weight');
  assert.equal(await page.getByLabel('Weight (kg)').inputValue(), '179.7', 'the typed value is kept for correction');
  assert.equal(await page.getByRole('checkbox', { name: 'I have checked this value and it is correct' }).isChecked(), false);

  // The nurse corrects the value instead of confirming it.
  await page.getByLabel('Weight (kg)').fill('81.9');
  await clickAndWait(page, page.getByRole('button', { name: 'Save' }));
  assert.equal(page.url().split('#')[0], chartUrl, 'the corrected weight is saved and the chart is shown');
  assert.equal(await page.locator('#warnings').count(), 0);
  assert.equal(await text(page.locator('#latest-weight')), '81.9 kg');
  const weightValues = (await rows(page.locator('#weights'))).map((r) => r[1]);
  assert.ok(weightValues.includes('81.9 kg'), `#weights lists 81.9 kg: ${JSON.stringify(weightValues)}`);
  assert.ok(weightValues.includes('81.5 kg'), `#weights keeps 81.5 kg: ${JSON.stringify(weightValues)}`);
  assert.ok(!(await page.content()).includes('179.7'), 'the pounds value was never saved');
});

// 2. Field-level errors keep what was typed.
uiTest('registration with missing family name and bad e-mail shows field errors and keeps the values', async (page) => {
  await login(page, 'nurse');
  await page.goto('/patients/new');
  await page.getByLabel('Given name').fill('Ilse');
  await page.getByLabel('Date of birth').fill('1984-03-27');
  await page.getByLabel('Sex').selectOption({ label: 'Other' });
  await page.getByLabel('E-mail').fill('ilse.example.org');
  await page.getByRole('group', { name: 'Contact', exact: true }).getByLabel('Phone').fill('+44 20 7946 0555');
  await clickAndWait(page, page.getByRole('button', { name: 'Register patient' }));

  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Register patient', 'the form is shown again');
  assert.match(await text(page.getByRole('alert').filter({ hasText: 'Nothing was saved' })), /Nothing was saved/);
  const errors = await page.locator('p.error').allInnerTexts();
  assert.equal(errors.length, 2, `exactly two field errors: ${JSON.stringify(errors)}`);
  assert.ok(errors.some((e) => /^Family name is required/.test(e)), `an error names the family name: ${JSON.stringify(errors)}`);
  assert.ok(errors.some((e) => /^E-mail must be an e-mail address/.test(e)), `an error names the e-mail: ${JSON.stringify(errors)}`);
  assert.equal(await page.getByLabel('Family name').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.getByLabel('E-mail').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.getByLabel('Given name').getAttribute('aria-invalid'), null);

  assert.equal(await page.getByLabel('Given name').inputValue(), 'Ilse');
  assert.equal(await page.getByLabel('Date of birth').inputValue(), '1984-03-27');
  assert.equal(await page.getByLabel('Sex').inputValue(), 'other');
  assert.equal(await page.getByLabel('E-mail').inputValue(), 'ilse.example.org');
  assert.equal(await page.getByRole('group', { name: 'Contact', exact: true }).getByLabel('Phone').inputValue(), '+44 20 7946 0555');

  // Nothing was registered.
  await page.goto('/patients?q=Ilse');
  assert.ok(!(await text(page.locator('main'))).includes('Ilse'), 'no patient named Ilse exists');
});

// 3. Finding a patient and reading the chart, including amended and voided records.
uiTest('patient list search by MRN and by name opens the chart with its sections and voided records', async (page) => {
  await login(page, 'nurse');
  await page.getByLabel('Search by name or MRN').fill('KC-000001');
  await clickAndWait(page, page.getByRole('button', { name: 'Search' }));
  const byMrn = await rows(page.locator('table.list'));
  assert.equal(byMrn.length, 1, `one patient has MRN KC-000001: ${JSON.stringify(byMrn)}`);
  const [name, mrn] = byMrn[0];
  assert.equal(mrn, 'KC-000001');
  assert.match(name, /^[^,]+, .+$/, 'names read "Family, Given"');

  const family = name.split(',')[0];
  await page.getByLabel('Search by name or MRN').fill(family);
  await clickAndWait(page, page.getByRole('button', { name: 'Search' }));
  const byName = await rows(page.locator('table.list'));
  assert.ok(byName.some((r) => r[1] === 'KC-000001'), `searching "${family}" finds KC-000001`);
  assert.ok(byName.every((r) => r[0].toLowerCase().includes(family.toLowerCase())), 'every hit matches the name');

  const row = page.locator('table.list tbody tr').filter({ hasText: 'KC-000001' });
  await clickAndWait(page, row.getByRole('link', { name }));
  assert.match(pathname(page), CHART_PATH);
  assert.equal(await text(page.getByRole('heading', { level: 1 })), name);

  for (const section of ['Contact', 'Weight and height', 'Diagnoses', 'Medications', 'Allergies', 'Encounters']) {
    assert.ok(await page.getByRole('heading', { level: 2, name: section, exact: true }).isVisible(), `section ${section} is shown`);
  }
  assert.ok((await page.locator('#diagnosis li').count()) > 0, 'the chart lists diagnoses');
  assert.ok((await page.locator('#medication li').count()) > 0, 'the chart lists medications');
  assert.match(await text(page.locator('#latest-weight')), /^\d+(\.\d+)? kg$/);

  // The amended medication links to a second version.
  const amended = page.locator('#medication li').filter({ has: page.getByRole('link', { name: 'history (v2)' }) });
  assert.equal(await amended.count(), 1, 'one medication was amended');

  // The voided allergy is folded away in "Voided records" and struck through.
  const voided = page.locator('details#voided');
  assert.equal(await text(voided.locator('summary')), 'Voided records (1)');
  assert.equal(await voided.getAttribute('open'), null, 'voided records start folded');
  await voided.locator('summary').click();
  const voidedItem = voided.locator('li');
  await voidedItem.first().waitFor({ state: 'visible' });
  assert.match(await text(voidedItem), /voided: entered in error: wrong patient/);
  const struck = await text(voidedItem.locator('s'));
  const allergies = await page.locator('#allergy li').allInnerTexts();
  assert.ok(!allergies.some((a) => a.includes(struck)), `the voided allergy "${struck}" is not among the current allergies`);

  // The amendment's history shows both versions with the reason.
  await clickAndWait(page, amended.getByRole('link', { name: 'history (v2)' }));
  const history = await rows(page.locator('#history'));
  assert.equal(history.length, 2, `two versions: ${JSON.stringify(history)}`);
  assert.deepEqual(history.map((r) => r[0]), ['2', '1'], 'newest version first');
  assert.equal(history[0][3], 'dose corrected after pharmacist review');
});

// 4. A prescriber adds, amends and voids a medication.
uiTest('prescriber adds a medication, amends its dose with a reason and voids it', async (page) => {
  await login(page, 'prescriber');
  await openChart(page, 'KC-000002');
  const chartPath = pathname(page);

  await clickAndWait(page, page.getByRole('link', { name: 'Add medication' }));
  await page.getByLabel('Medication', { exact: true }).fill('Hydroxyzine');
  await page.getByLabel('RxNorm code').fill('5553');
  await page.getByLabel('Dose and frequency').fill('25 mg at night');
  await page.getByLabel('Start date').fill('2026-06-01');
  await clickAndWait(page, page.getByRole('button', { name: 'Save' }));
  assert.equal(pathname(page), chartPath, 'saving returns to the chart');
  const item = page.locator('#medication li').filter({ hasText: 'Hydroxyzine' });
  assert.equal(await item.count(), 1);
  assert.match(await text(item), /Hydroxyzine 25 mg at night/);
  assert.match(await text(item), /prescriber/, 'provenance names the prescriber');

  await clickAndWait(page, item.getByRole('link', { name: 'history' }));
  assert.match(pathname(page), /^\/records\/[0-9a-f-]{36}$/);
  assert.equal((await rows(page.locator('#history'))).length, 1);

  await clickAndWait(page, page.getByRole('link', { name: 'Amend', exact: true }));
  assert.equal(await page.getByLabel('Medication', { exact: true }).inputValue(), 'Hydroxyzine', 'the amendment form is pre-filled');
  assert.equal(await page.getByLabel('Dose and frequency').inputValue(), '25 mg at night');
  await page.getByLabel('Dose and frequency').fill('50 mg at night');
  await page.getByLabel('Reason for the amendment').fill('dose increased after review of sleep diary');
  await clickAndWait(page, page.getByRole('button', { name: 'Save' }));
  assert.match(pathname(page), /^\/records\/[0-9a-f-]{36}$/);
  const history = await rows(page.locator('#history'));
  assert.equal(history.length, 2, `two versions after the amendment: ${JSON.stringify(history)}`);
  assert.deepEqual(history.map((r) => r[0]), ['2', '1']);
  assert.match(history[0][2], /Hydroxyzine 50 mg at night/);
  assert.equal(history[0][3], 'dose increased after review of sleep diary');
  assert.match(history[1][2], /Hydroxyzine 25 mg at night/);

  await page.getByText('Void this record').click();
  await page.getByLabel('Reason (for example: entered in error)').fill('entered in error: wrong patient');
  await clickAndWait(page, page.getByRole('button', { name: 'Void record' }));
  assert.match(await text(page.locator('main')), /This record is voided/);
  assert.equal(await page.getByRole('link', { name: 'Amend', exact: true }).count(), 0, 'a voided record cannot be amended');

  await clickAndWait(page, page.getByRole('link', { name: 'Back to the chart' }));
  assert.equal(pathname(page), chartPath);
  assert.equal(await page.locator('#medication li').filter({ hasText: 'Hydroxyzine' }).count(), 0, 'the voided medication left the list');
  const voided = page.locator('details#voided');
  await voided.locator('summary').click();
  const voidedItem = voided.locator('li').filter({ hasText: 'Hydroxyzine' });
  assert.equal(await voidedItem.count(), 1, 'the medication is in the voided list');
  assert.match(await text(voidedItem), /Hydroxyzine 50 mg at night voided: entered in error: wrong patient/);
});

// 5. Demographics are amended, never overwritten.
uiTest('amending the given name with a reason keeps both versions in the demographics history', async (page) => {
  await login(page, 'nurse');
  await openChart(page, 'KC-000003');
  const oldName = await text(page.getByRole('heading', { level: 1 }));
  const [family, given] = oldName.split(', ');

  await clickAndWait(page, page.getByRole('link', { name: 'Amend demographics' }));
  assert.equal(await page.getByLabel('Given name').inputValue(), given, 'the form is pre-filled');
  assert.equal(await page.getByLabel('Family name').inputValue(), family);
  await page.getByLabel('Given name').fill('Philippa');
  await page.getByLabel('Reason for the amendment').fill('patient asked to use her full given name');
  await clickAndWait(page, page.getByRole('button', { name: 'Save amendment' }));
  assert.match(pathname(page), CHART_PATH);
  assert.equal(await text(page.getByRole('heading', { level: 1 })), `${family}, Philippa`);

  await clickAndWait(page, page.getByRole('link', { name: 'Demographics history (v2)' }));
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Demographics history');
  const history = await rows(page.locator('#history'));
  assert.equal(history.length, 2, `two versions: ${JSON.stringify(history)}`);
  assert.deepEqual(history.map((r) => r[0]), ['2', '1']);
  assert.equal(history[0][2], `${family}, Philippa`);
  assert.equal(history[0][7], 'patient asked to use her full given name');
  assert.equal(history[1][2], oldName);
  assert.equal(history[0][3], 'KC-000003');
});

// 6a. The medical director reviews who read what.
uiTest('medical director filters the audit trail by username and sees the nurse reading charts', async (page) => {
  // The nurse reads a chart first, then hands the computer over.
  await login(page, 'nurse');
  await openChart(page, 'KC-000004');
  await logout(page);

  await login(page, 'director');
  await clickAndWait(page, page.getByRole('link', { name: 'Audit trail' }));
  assert.equal(pathname(page), '/audit');
  await page.getByLabel('Username').fill('nurse');
  await clickAndWait(page, page.getByRole('button', { name: 'Search' }));
  assert.equal(new URL(page.url()).searchParams.get('user'), 'nurse');
  assert.equal(await page.getByLabel('Username').inputValue(), 'nurse', 'the filter stays filled in');
  const all = await rows(page.locator('#audit'));
  assert.ok(all.length > 0, 'the nurse has audit entries');
  assert.ok(all.every((r) => r[2] === 'nurse'), `only the nurse's entries: ${JSON.stringify([...new Set(all.map((r) => r[2]))])}`);
  const reads = all.filter((r) => r[4] === 'read');
  assert.ok(reads.length > 0, 'reads are audited');
  assert.ok(reads.some((r) => r[5] === 'success' && r[7] !== ''), 'a successful read of a patient chart names the patient');

  await page.getByLabel('Action').selectOption({ label: 'Read' });
  await clickAndWait(page, page.getByRole('button', { name: 'Search' }));
  const onlyReads = await rows(page.locator('#audit'));
  assert.ok(onlyReads.length > 0);
  assert.ok(onlyReads.every((r) => r[2] === 'nurse' && r[4] === 'read'), 'filtering by action shows only reads');
});

// 6b. The administrator manages accounts and API tokens.
uiTest('admin creates a user (rejecting a short password), issues an API token and revokes it', async (page) => {
  await login(page, 'admin');
  assert.equal(pathname(page), '/admin/users', 'the administrator starts on the users page');
  const users = page.locator('#users');
  assert.ok((await rows(users)).some((r) => r[0] === 'nurse'), 'the demo accounts are listed');

  await page.getByLabel('Username', { exact: true }).fill('r.okafor');
  await page.getByLabel('Full name').fill('Rita Okafor, RN');
  await page.getByLabel('Role').selectOption({ label: 'Nurse' });
  await page.getByLabel('Initial password').fill('short');
  await clickAndWait(page, page.getByRole('button', { name: 'Create user' }));
  const errors = await page.locator('p.error').allInnerTexts();
  assert.ok(errors.some((e) => /^Initial password must be at least 12 characters/.test(e)), `a password error: ${JSON.stringify(errors)}`);
  assert.equal(await page.getByLabel('Username', { exact: true }).inputValue(), 'r.okafor', 'the username is kept');
  assert.equal(await page.getByLabel('Full name').inputValue(), 'Rita Okafor, RN');
  assert.equal(await page.getByLabel('Initial password').inputValue(), '', 'the password is never sent back');
  assert.ok(!(await rows(users)).some((r) => r[0] === 'r.okafor'), 'the account was not created');

  await page.getByLabel('Role').selectOption({ label: 'Nurse' });
  await page.getByLabel('Initial password').fill('lantern orchid tunnel harbour');
  await clickAndWait(page, page.getByRole('button', { name: 'Create user' }));
  assert.equal(await page.locator('p.error').count(), 0);
  const created = (await rows(users)).find((r) => r[0] === 'r.okafor');
  assert.ok(created, 'the new account is listed');
  assert.deepEqual(created.slice(1, 4), ['Rita Okafor, RN', 'Nurse', 'active']);

  await page.getByLabel('Account').selectOption({ label: 'r.okafor (Nurse)' });
  await page.getByLabel('Label').fill('infusion pump gateway');
  await clickAndWait(page, page.getByRole('button', { name: 'Issue token' }));
  const newToken = page.locator('#new-token');
  await newToken.waitFor();
  assert.match(await text(newToken), /shown once/);
  const secret = await text(newToken.locator('code'));
  assert.ok(secret.length >= 20, `a long secret is shown: ${secret.length} characters`);
  const tokenRow = page.locator('#tokens tbody tr').filter({ hasText: 'infusion pump gateway' });
  assert.equal(await tokenRow.count(), 1);
  assert.deepEqual((await tokenRow.locator('td').allInnerTexts()).map((s) => s.trim()).filter((s, i) => i === 1 || i === 3), ['r.okafor', 'active']);

  await clickAndWait(page, tokenRow.getByRole('button', { name: 'Revoke' }));
  assert.equal(pathname(page), '/admin/users');
  assert.equal(await page.locator('#new-token').count(), 0, 'the secret is not shown again');
  assert.ok(!(await page.content()).includes(secret), 'the secret does not reappear');
  const revoked = page.locator('#tokens tbody tr').filter({ hasText: 'infusion pump gateway' });
  assert.equal((await revoked.locator('td').nth(3).innerText()).trim(), 'revoked');
  assert.equal(await revoked.getByRole('button', { name: 'Revoke' }).count(), 0);
});

// 6c. Ten failed logins lock an account; the login page says so without saying which it was,
// and the administrator sees the lock and lifts it.
uiTest('ten failed logins lock an account, and the administrator unlocks it from the users page', async (page, context) => {
  await login(page, 'admin');
  await page.getByLabel('Username', { exact: true }).fill('t.mensah');
  await page.getByLabel('Full name').fill('Tomas Mensah, RN');
  await page.getByLabel('Role').selectOption({ label: 'Nurse' });
  await page.getByLabel('Initial password').fill('copper meadow lantern 77');
  await clickAndWait(page, page.getByRole('button', { name: 'Create user' }));
  await logout(page);
  await context.clearCookies();

  const tryLogin = async (username, password) => {
    await page.goto('/login');
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await clickAndWait(page, page.getByRole('button', { name: 'Log in' }));
    return text(page.getByRole('alert'));
  };
  const wrong = await tryLogin('t.mensah', 'copper meadow lantern 78');
  assert.match(wrong, /not correct, the account is inactive, or it is locked after 10 failed logins in a row/);
  assert.equal(await tryLogin('no.such.user', 'copper meadow lantern 78'), wrong, 'an unknown user gets the same words');
  for (let i = 1; i < 10; i += 1) await tryLogin('t.mensah', 'copper meadow lantern 78');
  assert.equal(await tryLogin('t.mensah', 'copper meadow lantern 77'), wrong, 'the right password is refused while locked, in the same words');
  assert.equal(pathname(page), '/login');

  await login(page, 'admin');
  const row = page.locator('#users tbody tr').filter({ hasText: 't.mensah' });
  assert.match(await text(row.locator('td').nth(3)), /^active locked until \d\d:\d\d UTC \(11 failed logins\)$/);
  await clickAndWait(page, row.getByRole('button', { name: 'Unlock' }));
  assert.equal(pathname(page), '/admin/users');
  assert.equal(await text(page.locator('#users tbody tr').filter({ hasText: 't.mensah' }).locator('td').nth(3)), 'active');
  assert.equal(await page.locator('#users tbody tr').filter({ hasText: 't.mensah' }).getByRole('button', { name: 'Unlock' }).count(), 0);
  await logout(page);
  await context.clearCookies();
  await login(page, 't.mensah', 'copper meadow lantern 77');
  assert.equal(pathname(page), '/patients', 'the unlocked nurse is in');
});

// 7. Researchers see a de-identified cohort only.
uiTest('researcher lands on the de-identified cohort with no names or MRNs', async (page, context) => {
  // Collect real names as a nurse, to make sure none of them reaches the researcher.
  await login(page, 'nurse');
  const names = (await rows(page.locator('table.list'))).map((r) => r[0]);
  assert.ok(names.length >= 50, 'the first page of the patient list is full');
  await logout(page);
  await context.clearCookies();

  await login(page, 'researcher');
  assert.equal(pathname(page), '/research');
  const cohort = await rows(page.locator('#cohort'));
  assert.ok(cohort.length >= 64, `the cohort has every demo patient: ${cohort.length}`);
  assert.ok(cohort.every((r) => /^R-[0-9A-F]{10}$/.test(r[0])), 'research ids are pseudonyms');
  const html = await page.content();
  assert.ok(!html.includes('KC-0000'), 'no MRN appears on the research page');
  const leaked = names.filter((n) => html.includes(n) || html.includes(n.split(', ').reverse().join(' ')));
  assert.deepEqual(leaked, [], 'no patient name appears on the research page');
  assert.ok(!/\b(19|20)\d\d-\d\d-\d\d\b/.test(await text(page.locator('#cohort'))), 'no dates (of birth) in the cohort');

  assert.equal(await page.getByRole('link', { name: 'Patients' }).count(), 0, 'no link to the patient list');
  const res = await page.goto('/patients');
  assert.equal(res.status(), 403, 'the patient list is forbidden for researchers');
});

// 8. The rules in force are visible with their sources; logging out ends the session.
uiTest('knowledge page shows the weight rules with sources; logout returns to login and protects pages', async (page) => {
  await login(page, 'nurse');
  await clickAndWait(page, page.getByRole('link', { name: 'Clinical rules' }));
  assert.equal(pathname(page), '/knowledge');
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Clinical rules in force');
  const weightSection = page.locator('section').filter({ has: page.getByRole('heading', { level: 2, name: /Body weight and height plausibility/ }) });
  assert.equal(await weightSection.count(), 1, 'the weight and height rules are shown');
  const rules = await rows(weightSection.locator('table'));
  const byKey = Object.fromEntries(rules.map((r) => [r[0], r]));
  for (const key of ['weight_min_kg', 'weight_max_kg', 'pounds_per_kg', 'unit_match_tolerance_percent']) {
    assert.ok(byKey[key], `rule ${key} is listed`);
  }
  assert.equal(byKey.pounds_per_kg[1], '2.2046');
  assert.equal(byKey.pounds_per_kg[2], 'constant');
  assert.match(byKey.pounds_per_kg[3], /avoirdupois pound/);
  assert.equal(byKey.weight_min_kg[2], 'policy');
  for (const r of rules) assert.ok(r[3].length > 20, `rule ${r[0]} has a source`);

  await logout(page);
  assert.equal(pathname(page), '/login');
  assert.ok(await page.getByRole('button', { name: 'Log in' }).isVisible());
  await page.goto('/patients');
  assert.equal(pathname(page), '/login', 'the patient list now redirects to the login page');
  assert.match(await text(page.getByRole('alert')), /Please log in/);
  assert.ok(!(await page.content()).includes('KC-0000'), 'no patient data after logout');
});

// 9. Tablets are used at the chair side: pages must not scroll sideways.
const TABLET_PAGES = [
  // [viewport, who, page, how to get there]
  [{ width: 820, height: 1180 }, 'nurse', 'chart of KC-000001', (page) => openChart(page, 'KC-000001')],
  [{ width: 768, height: 1024 }, 'nurse', 'chart of KC-000001', (page) => openChart(page, 'KC-000001')],
  [{ width: 820, height: 1180 }, 'nurse', 'patient list', (page) => page.goto('/patients')],
  [{ width: 820, height: 1180 }, 'nurse', 'record weight form', async (page) => {
    await openChart(page, 'KC-000001');
    await clickAndWait(page, page.getByRole('link', { name: 'Record weight' }));
  }],
  [{ width: 820, height: 1180 }, 'nurse', 'clinical rules', (page) => page.goto('/knowledge')],
  [{ width: 820, height: 1180 }, 'director', 'audit trail', (page) => page.goto('/audit')],
];

test('pages fit a tablet viewport without horizontal scrolling', { timeout: TEST_TIMEOUT_MS * 2 }, async (t) => {
  for (const [viewport, who, label, go] of TABLET_PAGES) {
    const name = `${label} at ${viewport.width}x${viewport.height}`;
    await t.test(name, () =>
      withPage(browser, server, `tablet ${name}`, async (page) => {
        await login(page, who);
        await go(page);
        const { scrollWidth, innerWidth } = await page.evaluate(() => ({
          scrollWidth: document.scrollingElement.scrollWidth,
          innerWidth: window.innerWidth,
        }));
        assert.equal(innerWidth, viewport.width);
        const wide = await page.evaluate(() =>
          Array.from(document.querySelectorAll('main *'))
            .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
            .filter((el) => el.parentElement.getBoundingClientRect().right <= window.innerWidth + 1)
            .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} (${Math.round(el.getBoundingClientRect().width)}px)`),
        );
        assert.ok(scrollWidth <= innerWidth + 1, `${label}: the page is ${scrollWidth}px wide in a ${innerWidth}px viewport; too wide: ${wide.join(', ')}`);
      }, { viewport }),
    );
  }
});
