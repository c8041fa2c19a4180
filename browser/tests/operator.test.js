// The operator's console in Chromium: an operator signs in, lands on their console,
// creates an organization with its first Fulfillment Contact, finds it by name, opens it,
// registers a client and rotates the keys; the pages and the account page fit a phone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, PASSWORD, startEntitled, startSmtp } from '../lib/harness.js';

const artifacts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../artifacts');
mkdirSync(artifacts, { recursive: true });
const OPERATOR = 'ops@vendor.example';

let smtp;
let server;
let browser;

before(async () => {
  smtp = await startSmtp();
  server = await startEntitled(smtp);
  browser = await launchBrowser();
  await server.operator(OPERATOR);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await smtp?.close();
});

async function operatorPage(width = 1280) {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  await page.goto(`${server.baseUrl}/`);
  await page.getByLabel('Email address').fill(OPERATOR);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Organizations' }).waitFor();
  return page;
}

test('an operator creates an organization, finds it, opens it, registers a client and rotates keys', async () => {
  const page = await operatorPage();
  const nav = page.getByRole('navigation', { name: 'Operator console' });
  await nav.getByRole('link', { name: 'Organizations' }).waitFor();

  const form = page.locator('form[action="/operator/orgs"]');
  await form.getByLabel('Organization name').fill('Initech');
  await form.getByLabel('Email address').fill('bill@initech.example');
  await form.getByLabel('First name').fill('Bill');
  await form.getByLabel('Last name').fill('Lumbergh');
  await form.getByLabel('Country').fill('United States');
  await form.getByRole('button', { name: 'Create organization' }).click();
  await page.getByRole('heading', { name: 'Members' }).waitFor();
  await page.getByText('bill@initech.example').waitFor();
  await smtp.expect('bill@initech.example', 'added to Initech');

  await nav.getByRole('link', { name: 'Organizations' }).click();
  await page.getByRole('searchbox', { name: 'Search' }).fill('init');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('Showing 1–1 of 1.').waitFor();
  await page.getByRole('link', { name: 'Initech' }).click();
  await page.getByRole('heading', { name: 'Members' }).waitFor();

  await nav.getByRole('link', { name: 'Clients' }).click();
  await page.getByLabel('Name people see').fill('Reporting service');
  await page.getByRole('checkbox', { name: /Confidential/ }).check();
  await page.getByRole('checkbox', { name: 'client_credentials' }).check();
  await page.getByRole('button', { name: 'Register client' }).click();
  const secret = await page.locator('#new-secret').textContent();
  assert.equal(secret.trim().length, 43);
  await page.screenshot({ path: path.join(artifacts, 'operator-clients.png'), fullPage: true });
  await nav.getByRole('link', { name: 'Clients' }).click();
  await page.getByRole('cell', { name: 'Reporting service', exact: true }).waitFor();
  assert.equal(await page.locator('#new-secret').count(), 0, 'the secret is not shown again');

  await nav.getByRole('link', { name: 'Signing keys' }).click();
  assert.equal(await page.getByRole('cell', { name: 'signing', exact: true }).count(), 3);
  await page.getByRole('button', { name: 'Rotate the keys' }).click();
  await page.getByText('Rotated').waitFor();
  assert.equal(await page.getByRole('cell', { name: 'signing', exact: true }).count(), 3);
  assert.equal(await page.getByRole('row').count(), 7);
  await page.close();
});

test('the console and the account page fit a phone screen', async () => {
  const page = await operatorPage(390);
  for (const where of ['/operator/orgs', '/operator/clients', '/operator/keys', '/account']) {
    await page.goto(`${server.baseUrl}${where}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${where} is ${overflow}px wider than the screen`);
  }
  await page.getByText('United Kingdom (GB)').waitFor();
  await page.screenshot({ path: path.join(artifacts, 'account-phone.png'), fullPage: true });
  await page.close();
});
