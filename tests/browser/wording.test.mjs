// End-to-end test of a clinic's licensed item wording: the medical director loads a wording
// file on the instrument's page (a broken file is refused with every problem named), the
// patient's questionnaire link then shows the licensed text, and the director withdraws it.
//
// Run with `npm test` in tests/browser after `cargo build -p ketacare` (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { HERE, STEP_TIMEOUT_MS, clickAndWait, launchBrowser, login, openChart, pathname, rows, startServer, text, withPage, submit } from './harness.mjs';

const TEST_TIMEOUT_MS = 120_000;
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 3 };

let server;
let browser;
let gad7Wording;

before(async () => {
  gad7Wording = await readFile(path.join(HERE, '../../docs/examples/gad7-wording.toml'), 'utf8');
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the medical director loads licensed GAD-7 wording; the patient link shows it; then it is withdrawn', { timeout: TEST_TIMEOUT_MS }, () =>
  withPage(browser, server, 'licensed wording', async (page) => {
    await login(page, 'director');
    await page.goto('/instruments');
    const before = (await rows(page.locator('main table'))).find((r) => r[0].startsWith('GAD-7'));
    assert.equal(before[5], 'short labels', 'the catalogue says which wording is in use');

    await clickAndWait(page, page.getByRole('link', { name: 'GAD-7', exact: true }));
    assert.equal(pathname(page), '/instruments/gad7');
    const section = page.locator('section#wording');
    assert.match(await text(section), /No clinic wording is loaded/);

    // A file with item 7 missing and a three-label answer list is refused whole, each problem named.
    const broken = gad7Wording.replace(/\[\[items\]\]\nkey = "q7"\ntext = "[^"]*"\n/, '').replace('"Not at all", ', '');
    await section.getByLabel('Wording file (TOML): paste the whole file').fill(broken);
    await section.getByLabel(/^Licence and reason/).fill('Public domain (PHQ screeners site)');
    let res = await submit(page, section.getByRole('button', { name: 'Check and load wording' }));
    assert.equal(res.status(), 422);
    const problems = await page.locator('#wording-errors li').allInnerTexts();
    assert.ok(problems.some((p) => /item 7 \(q7\) has no text/.test(p)), `q7 named: ${JSON.stringify(problems)}`);
    assert.ok(problems.some((p) => /item 1 \(q1\) needs 4 answer labels/.test(p)), `answer labels named: ${JSON.stringify(problems)}`);
    assert.equal(await section.getByLabel('Wording file (TOML): paste the whole file').inputValue(), broken, 'the pasted file is kept');
    assert.match(await text(page.locator('section#wording')), /No clinic wording is loaded/, 'nothing was loaded');

    await page.locator('section#wording').getByLabel('Wording file (TOML): paste the whole file').fill(gad7Wording);
    res = await submit(page, page.locator('section#wording').getByRole('button', { name: 'Check and load wording' }));
    assert.equal(res.status(), 200);
    assert.equal(new URL(page.url()).hash, '#wording');
    const loaded = await text(page.locator('section#wording'));
    assert.match(loaded, /Loaded by director on \d{4}-\d\d-\d\d \d\d:\d\d UTC: Public domain/);
    assert.match(loaded, /Over the last 2 weeks, how often have you been bothered/);
    await page.locator('section#wording summary').click();
    const itemsShown = await page.locator('section#wording ol.wording li').allInnerTexts();
    assert.equal(itemsShown.length, 7);
    assert.match(itemsShown[0], /^Feeling nervous, anxious, or on edge/);

    // A link sent now shows the licensed wording to the patient.
    await openChart(page, 'KC-000005');
    await clickAndWait(page, page.getByRole('link', { name: 'Outcomes and rating scales' }));
    const form = page.locator('section#requests form').filter({ has: page.getByRole('button', { name: 'Create link' }) });
    await form.locator('select[name="instrument"]').selectOption({ label: 'GAD-7 — Generalized Anxiety Disorder 7-item scale' });
    res = await submit(page, form.getByRole('button', { name: 'Create link' }));
    assert.equal(res.status(), 201);
    const link = await text(page.locator('code#sent-link'));

    const phoneContext = await browser.newContext(PHONE);
    phoneContext.setDefaultTimeout(STEP_TIMEOUT_MS);
    try {
      const phone = await phoneContext.newPage();
      assert.equal((await phone.goto(link)).status(), 200);
      assert.equal(await text(phone.locator('p.instructions')), 'Over the last 2 weeks, how often have you been bothered by the following problems?');
      const legends = await phone.locator('fieldset.item legend').allInnerTexts();
      assert.equal(legends.length, 7);
      assert.match(legends[6], /^7\. Feeling afraid, as if something awful might happen$/);
      assert.match(await text(phone.locator('main')), /No permission required to reproduce, translate, display or distribute/, 'the rights notice is shown');
      const width = await phone.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `the worded form fits the phone (${width}px)`);
    } finally {
      await phoneContext.close();
    }

    // Withdrawn with a reason: the catalogue and the page say so, and forms return to the labels.
    await page.goto('/instruments/gad7#wording');
    const withdraw = page.locator('section#wording form').filter({ has: page.getByRole('button', { name: 'Withdraw wording' }) });
    res = await submit(page, withdraw.getByRole('button', { name: 'Withdraw wording' }));
    assert.equal(res.status(), 422, 'a withdrawal needs a reason');
    assert.match(await text(page.locator('section#wording')), /Why withdraw the wording must be at least 3 characters/);
    await page.locator('section#wording').getByLabel('Why withdraw the wording').fill('Trial of the local translation ended');
    res = await submit(page, page.locator('section#wording').getByRole('button', { name: 'Withdraw wording' }));
    assert.equal(res.status(), 200);
    assert.match(await text(page.locator('section#wording')), /No clinic wording is loaded/);
    await page.goto('/instruments');
    const after = (await rows(page.locator('main table'))).find((r) => r[0].startsWith('GAD-7'));
    assert.equal(after[5], 'short labels');
  }),
);

test('a nurse sees the wording in force but cannot load or withdraw it', { timeout: TEST_TIMEOUT_MS }, () =>
  withPage(browser, server, 'wording read only', async (page) => {
    await login(page, 'nurse');
    await page.goto('/instruments/phq9');
    assert.match(await text(page.locator('section#wording')), /No clinic wording is loaded/);
    assert.equal(await page.getByRole('button', { name: 'Check and load wording' }).count(), 0);
  }),
);
