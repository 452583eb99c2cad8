// Shared setup for the browser tests: one demo server and one headless Chromium per run,
// a fresh browser context (own cookies) per test, and small helpers that act like a person
// using the page (labels, roles and visible text rather than CSS paths).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const RESULTS_DIR = path.join(HERE, 'test-results');
export const PASSWORD = 'demo-clinic-2026';
/** How long a single wait for the page may take. */
export const STEP_TIMEOUT_MS = 15_000;

const BIN = path.resolve(HERE, process.env.KETACARE_BIN ?? '../../target/debug/ketacare');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `ketacare demo` on a free port with a temporary data directory, its MLLP listener for
 * bedside monitors on another free port (the default 2575 would clash between demos), and waits
 * for its "Open http://…" and "Treatment room: …" lines. `monitors: false` turns the simulated
 * monitors of the demo treatment room off. Returns `{ baseURL, mllpPort, stop, log }`.
 */
export async function startServer({ readyTimeoutMs = 120_000, monitors = true } = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`ketacare binary not found at ${BIN}; build it with \`cargo build -p ketacare\` or set KETACARE_BIN`);
  }
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ketacare-browser-'));
  const port = await freePort();
  let mllpPort = await freePort();
  while (mllpPort === port) mllpPort = await freePort();
  const args = ['demo', '--port', String(port), '--data-dir', dataDir, '--mllp-port', String(mllpPort)];
  if (!monitors) args.push('--no-monitors');
  const child = spawn(BIN, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KETACARE_LOG: process.env.KETACARE_LOG ?? 'warn' },
  });
  let log = '';
  const append = (chunk) => {
    log += chunk.toString();
    if (log.length > 200_000) log = log.slice(-100_000);
  };
  child.stderr.on('data', append);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const baseURL = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      reject(new Error(`the demo server did not print "Open http://" within ${readyTimeoutMs} ms\n${out}\n${log}`));
    }, readyTimeoutMs);
    child.stdout.on('data', (chunk) => {
      append(chunk);
      out += chunk.toString();
      const m = out.match(/Open (http:\/\/[^\s]+)/);
      const room = out.match(/Treatment room: .* MLLP to [0-9.]+:(\d+)/);
      if (m && room) {
        clearTimeout(timer);
        const announced = Number(room[1]);
        if (announced !== mllpPort) {
          reject(new Error(`the demo announced MLLP port ${announced}, but was given ${mllpPort}\n${out}`));
        } else {
          resolve(m[1].replace(/\/$/, ''));
        }
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the demo server exited early (code ${code}, signal ${signal})\n${out}\n${log}`));
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  }).catch(async (e) => {
    child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
    throw e;
  });

  async function stop() {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    await rm(dataDir, { recursive: true, force: true });
  }

  return { baseURL, mllpPort, stop, log: () => log };
}

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}; install the Debian package \`chromium\` or set CHROMIUM_PATH`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

function slug(s) {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80);
}

/**
 * Runs `body(page)` in a fresh browser context. Any server error (HTTP 5xx) fails the test.
 * On failure, saves a screenshot, the page's HTML and the server log's tail into test-results/.
 */
export async function withPage(browser, server, name, body, { viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ baseURL: server.baseURL, viewport });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  const page = await context.newPage();
  const serverErrors = [];
  page.on('response', (r) => {
    if (r.status() >= 500) serverErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  try {
    await body(page, context);
    assert.deepEqual(serverErrors, [], 'no request may end in a server error');
  } catch (e) {
    await saveFailure(page, name, server.log()).catch((err) => console.error(`could not save the failure screenshot: ${err}`));
    throw e;
  } finally {
    await context.close();
  }
}

async function saveFailure(page, name, serverLog) {
  await mkdir(RESULTS_DIR, { recursive: true });
  const base = path.join(RESULTS_DIR, slug(name));
  await writeFile(`${base}.server.log`, serverLog.slice(-20_000));
  await page.screenshot({ path: `${base}.png`, fullPage: true });
  await writeFile(`${base}.html`, `<!-- ${page.url()} -->\n${await page.content()}`);
  console.error(`failure screenshot: ${base}.png (page ${page.url()})`);
}

/** Clicks a submit button (or link) and returns the HTTP response of the page it loads. */
export async function submit(page, locator) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), locator.click()]);
  return response;
}

/** Clicks something that loads a new page (link or form submit) and waits for that page. */
export async function clickAndWait(page, locator) {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), locator.click()]);
}

/** Logs in through the login form and waits for the start page of the role. */
export async function login(page, username, password = PASSWORD) {
  await page.goto('/login');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  const response = await submit(page, page.getByRole('button', { name: 'Log in' }));
  if (new URL(page.url()).pathname.startsWith('/login')) {
    // Say why: the status and what the page told the person (wrong password, locked, held back, a server error).
    const said = (await page.locator('main').innerText().catch(() => '')).replace(/\s+/g, ' ').trim().slice(0, 400);
    assert.fail(`${username} should be logged in, but the page is ${page.url()} (HTTP ${response?.status()}): ${said}`);
  }
}

/** Logs out with the header button. */
export async function logout(page) {
  await clickAndWait(page, page.getByRole('button', { name: 'Log out' }));
}

/** The path of the current page. */
export function pathname(page) {
  return new URL(page.url()).pathname;
}

/** The visible text of `locator` (waits for it to be attached). */
export async function text(locator) {
  await locator.first().waitFor({ state: 'attached' });
  return (await locator.first().innerText()).replace(/\s+/g, ' ').trim();
}

/** The rows of a table body as arrays of cell texts. */
export async function rows(table) {
  await table.waitFor({ state: 'attached' });
  return table.locator('tbody tr').evaluateAll((trs) =>
    trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.innerText.replace(/\s+/g, ' ').trim())),
  );
}

/** Opens a patient's chart from the patient list by searching for `query` and clicking the row with `mrn`. */
export async function openChart(page, mrn, query = mrn) {
  await page.goto('/patients');
  await page.getByLabel('Search by name or MRN').fill(query);
  await clickAndWait(page, page.getByRole('button', { name: 'Search' }));
  const row = page.locator('table.list tbody tr').filter({ has: page.getByRole('cell', { name: mrn, exact: true }) });
  assert.equal(await row.count(), 1, `one row with MRN ${mrn} after searching for "${query}"`);
  await clickAndWait(page, row.getByRole('link'));
  assert.match(pathname(page), /^\/patients\/[0-9a-f-]{36}$/, 'the chart URL');
  assert.match(await text(page.locator('main')), new RegExp(`MRN ${mrn}\\b`));
}
