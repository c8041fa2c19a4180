// The provider's pages in Chromium: a person approves a device (the desktop client's
// device flow), sees it on their account page and signs it out, then an application
// asks to sign them out.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, PASSWORD, startEntitled, startSmtp } from '../lib/harness.js';

const artifacts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../artifacts');
mkdirSync(artifacts, { recursive: true });
const EMAIL = 'ops@vendor.example';

let smtp;
let server;
let browser;

before(async () => {
  smtp = await startSmtp();
  server = await startEntitled(smtp);
  browser = await launchBrowser();
  await server.operator(EMAIL);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await smtp?.close();
});

async function token(form) {
  const response = await fetch(`${server.baseUrl}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  });
  return { status: response.status, body: await response.json() };
}

test('a person approves the desktop client on the device page, then signs it out from their account', async () => {
  const started = await fetch(`${server.baseUrl}/oauth2/device_authorization`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'entitle-desktop', scope: 'openid offline_access' }),
  }).then((r) => r.json());
  const poll = { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: 'entitle-desktop', device_code: started.device_code };
  assert.equal((await token(poll)).body.error, 'authorization_pending');

  const page = await browser.newPage();
  // Typed by hand, in lower case: the code is forgiving.
  await page.goto(started.verification_uri);
  await page.getByLabel('Email address').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Sign in a device' }).waitFor();
  await page.getByLabel('Code shown on your device').fill(started.user_code.toLowerCase());
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByText('entitle desktop client on a device asks to sign in as you.').waitFor();
  assert.equal(await page.getByLabel('Code').textContent(), started.user_code);
  await page.screenshot({ path: path.join(artifacts, 'device-approval.png'), fullPage: true });
  await page.getByRole('button', { name: 'Allow' }).click();
  await page.getByRole('heading', { name: 'Device signed in' }).waitFor();

  await new Promise((resolve) => setTimeout(resolve, started.interval * 1000));
  const issued = await token(poll);
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  assert.ok(issued.body.refresh_token);

  await page.goto(`${server.baseUrl}/account`);
  await page.getByRole('heading', { name: 'Signed-in devices and applications' }).waitFor();
  await page.getByText('signs in automatically').waitFor();
  await page.screenshot({ path: path.join(artifacts, 'account-devices.png'), fullPage: true });
  await page.getByRole('button', { name: 'Sign out entitle desktop client' }).click();
  await page.getByText('The device is signed out.').waitFor();
  await page.getByText('No device or application is signed in as you.').waitFor();
  const refused = await token({ grant_type: 'refresh_token', client_id: 'entitle-desktop', refresh_token: issued.body.refresh_token });
  assert.equal(refused.body.error, 'invalid_grant');

  // An application without proof of who is signing out: the person is asked first.
  await page.goto(`${server.baseUrl}/oauth2/logout`);
  await page.getByRole('heading', { name: 'Sign out?' }).waitFor();
  await page.getByRole('main').getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Signed out' }).waitFor();
  await page.goto(`${server.baseUrl}/account`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.close();
});
