// End-to-end tests of two-step sign-in: the medical director requires it of prescribers, a
// prescriber sets it up at the next sign-in with a QR code and signs in later with a recovery
// code, a nurse sets it up by choice from the Account page, and an administrator resets a lost
// phone. Codes are computed here from the key the page shows, as an authenticator app would.
//
// Run with `npm test` in tests/browser after `cargo build -p ketacare` (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { clickAndWait, launchBrowser, login, logout, pathname, startServer, text, withPage } from './harness.mjs';

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

function mfaTest(name, body) {
  test(name, { timeout: TEST_TIMEOUT_MS }, () => withPage(browser, server, name, body));
}

/** RFC 4648 base32 to bytes. */
function base32(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of s.replace(/[\s=]/g, '').toUpperCase()) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The RFC 6238 code (SHA-1, 6 digits, 30 s) for a key at a time offset from now. */
function totp(secret, offsetSeconds = 0) {
  const counter = Math.floor((Date.now() / 1000 + offsetSeconds) / 30);
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const h = crypto.createHmac('sha1', base32(secret)).update(msg).digest();
  const o = h[h.length - 1] & 0xf;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1_000_000).padStart(6, '0');
}

/** Types the username and password; the next page is the code page, not a session. */
async function password(page, username) {
  await page.goto('/login');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill('demo-clinic-2026');
  await clickAndWait(page, page.getByRole('button', { name: 'Log in' }));
}

mfaTest('the director requires it of prescribers; a prescriber sets it up, then signs in with a recovery code; the administrator resets it', async (page, context) => {
  // The medical director changes the clinic policy, with a reason.
  await login(page, 'director');
  await clickAndWait(page, page.getByRole('link', { name: 'Account' }));
  const policy = page.locator('#policy');
  assert.match(await text(policy.getByRole('heading')), /who must use two-step sign-in/);
  await policy.getByLabel('Prescriber').check();
  await clickAndWait(page, policy.getByRole('button', { name: 'Save policy' }));
  assert.match(await text(page.locator('#policy')), /Reason for the change must be/, 'a reason is required');
  await page.locator('#policy').getByLabel('Prescriber').check();
  await page.locator('#policy').getByLabel('Reason for the change').fill('prescribers order a controlled drug');
  await page.locator('#policy').getByLabel('Your password (to confirm it is you)').fill('demo-clinic-2026');
  await clickAndWait(page, page.locator('#policy').getByRole('button', { name: 'Save policy' }));
  assert.equal(await page.locator('#policy').getByLabel('Prescriber').isChecked(), true);
  assert.equal(await page.locator('#policy').getByLabel('Nurse').isChecked(), false);
  await logout(page);
  await context.clearCookies();

  // The prescriber's next sign-in asks them to set it up.
  await password(page, 'prescriber');
  assert.equal(pathname(page), '/login/code');
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Set up two-step sign-in');
  assert.equal(await page.getByRole('img', { name: /QR code/ }).locator('svg').count(), 1, 'a QR code to scan');
  const secret = await page.locator('#totp-secret').getAttribute('data-secret');
  assert.match(secret, /^[A-Z2-7]{32}$/);
  await page.getByLabel('Code from the app').fill('000000');
  await clickAndWait(page, page.getByRole('button', { name: 'Sign in' }));
  assert.match(await text(page.getByRole('alert')), /The code that code is not right/);
  assert.equal(await page.locator('#totp-secret').getAttribute('data-secret'), secret, 'the same key is shown again');
  await page.getByLabel('Code from the app').fill(totp(secret));
  await clickAndWait(page, page.getByRole('button', { name: 'Sign in' }));
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Your recovery codes');
  const codes = await page.locator('#recovery-codes li').allInnerTexts();
  assert.equal(codes.length, 10);
  await clickAndWait(page, page.getByRole('link', { name: /I have stored them/ }));
  assert.equal(pathname(page), '/patients', 'signed in');
  await logout(page);
  await context.clearCookies();

  // A lost phone: a recovery code signs in once.
  await password(page, 'prescriber');
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Enter your sign-in code');
  await page.getByLabel('Code (or a recovery code)').fill(codes[0]);
  await clickAndWait(page, page.getByRole('button', { name: 'Sign in' }));
  assert.match(await text(page.locator('#codes-left')), /You have 9 left/);
  await clickAndWait(page, page.getByRole('link', { name: 'Go to my account' }));
  assert.match(await text(page.locator('#mfa-status')), /^On since .* You have 9 unused recovery codes\.$/);
  await logout(page);
  await context.clearCookies();

  // The same recovery code does not work twice.
  await password(page, 'prescriber');
  await page.getByLabel('Code (or a recovery code)').fill(codes[0]);
  await clickAndWait(page, page.getByRole('button', { name: 'Sign in' }));
  assert.equal(pathname(page), '/login/code');
  assert.match(await text(page.getByRole('alert')), /recovery code is not one of yours or was used/);
  await context.clearCookies();

  // The administrator sees it on the Users page and resets it.
  await login(page, 'admin');
  const row = () => page.locator('#users tbody tr').filter({ hasText: 'prescriber' }).filter({ hasText: 'Lindgren' });
  assert.equal(await text(row().locator('td.mfa')), 'on');
  await clickAndWait(page, row().getByRole('button', { name: 'Reset two-step sign-in' }));
  assert.equal(await text(row().locator('td.mfa')), 'required; set up at next sign-in');
  await logout(page);
  await context.clearCookies();
  await password(page, 'prescriber');
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Set up two-step sign-in', 'set up again with a new phone');
});

mfaTest('a nurse sets it up by choice from the Account page and is asked for a code from then on', async (page, context) => {
  await login(page, 'nurse');
  await clickAndWait(page, page.getByRole('link', { name: 'Account' }));
  assert.match(await text(page.locator('#mfa-status')), /^Off\./);
  await page.getByLabel('Your password (to confirm it is you)').fill('not the password');
  await clickAndWait(page, page.getByRole('button', { name: 'Set up two-step sign-in' }));
  assert.match(await text(page.getByRole('alert')), /not your current password/);
  await page.getByLabel('Your password (to confirm it is you)').fill('demo-clinic-2026');
  await clickAndWait(page, page.getByRole('button', { name: 'Set up two-step sign-in' }));
  const secret = await page.locator('#totp-secret').getAttribute('data-secret');
  await page.getByLabel('Code from the app').fill(totp(secret));
  await clickAndWait(page, page.getByRole('button', { name: 'Confirm' }));
  assert.equal((await page.locator('#recovery-codes li').allInnerTexts()).length, 10);
  await clickAndWait(page, page.getByRole('link', { name: /I have stored them/ }));
  assert.match(await text(page.locator('#mfa-status')), /^On since/);
  await logout(page);
  await context.clearCookies();

  await password(page, 'nurse');
  assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Enter your sign-in code');
  // The next 30-second step's code (the phone a little ahead): the one used to confirm cannot
  // be used again.
  await page.getByLabel('Code (or a recovery code)').fill(totp(secret, 30));
  await clickAndWait(page, page.getByRole('button', { name: 'Sign in' }));
  assert.equal(pathname(page), '/patients');
});
