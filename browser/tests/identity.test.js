// The identity flows as a person does them in Chromium.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, linkIn, PASSWORD, startEntitled, startSmtp } from '../lib/harness.js';

const artifacts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../artifacts');
mkdirSync(artifacts, { recursive: true });

let smtp;
let server;
let browser;

before(async () => {
  smtp = await startSmtp();
  server = await startEntitled(smtp);
  browser = await launchBrowser();
  const operator = await server.operator('ops@vendor.example');
  await server.api('POST', '/api/v1/terms/accept', { version: 'none' }, operator);
  const published = await server.api('POST', '/api/v1/terms', {
    version: '2026-11', title: 'entitle Terms of Service', body: 'You may use the software you are licensed for.\nBe nice.',
  }, operator);
  assert.equal(published.status, 201, JSON.stringify(published.body));
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await smtp?.close();
});

test('sign up, verify the email, sign in and accept the terms', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.baseUrl}/`);
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.getByLabel('Email address').fill('ana.silva@example.com');
  await page.getByLabel('First name').fill('Ana');
  await page.getByLabel('Last name').fill('Silva');
  await page.getByLabel('Country').fill('Portugal');
  await page.getByLabel('Password', { exact: true }).fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByText('Passwords need at least 12 characters').waitFor();

  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();

  const mail = await smtp.expect('ana.silva@example.com', 'Confirm your email');
  await page.goto(linkIn(mail, '/verify-email'));
  await page.getByRole('button', { name: 'Confirm email address' }).click();
  await page.getByRole('heading', { name: 'Email address confirmed' }).waitFor();
  await page.getByRole('link', { name: 'Sign in' }).click();

  await page.getByLabel('Email address').fill('Ana.Silva@Example.com');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'entitle Terms of Service' }).waitFor();
  assert.match(new URL(page.url()).pathname, /^\/terms$/);
  // Nothing else is reachable before acceptance.
  await page.goto(`${server.baseUrl}/account`);
  assert.match(new URL(page.url()).pathname, /^\/terms$/);
  await page.getByRole('button', { name: 'I accept the Terms of Service' }).click();
  await page.getByRole('heading', { name: 'Your account' }).waitFor();
  assert.ok(await page.getByText('ana.silva@example.com').first().isVisible());
  await page.screenshot({ path: path.join(artifacts, 'account.png'), fullPage: true });

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.close();
});

test('forgot password: the link asks for the email address, then a new password works', async () => {
  const signup = await server.api('POST', '/api/v1/signup', {
    email: 'bo@example.com', password: PASSWORD, first_name: 'Bo', last_name: 'Jensen', country: 'DK',
  });
  assert.equal(signup.status, 202);
  const verify = await smtp.expect('bo@example.com', 'Confirm');
  const token = new URL(linkIn(verify, '/verify-email')).searchParams.get('token');
  assert.equal((await server.api('POST', '/api/v1/verify-email', { token })).status, 200);

  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  await page.goto(`${server.baseUrl}/sign-in`);
  await page.getByRole('link', { name: 'Forgot password?' }).click();
  await page.getByLabel('Email address').fill('bo@example.com');
  await page.getByRole('button', { name: 'Send me a link' }).click();
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();

  const mail = await smtp.expect('bo@example.com', 'Set your entitle password');
  await page.goto(linkIn(mail, '/reset-password'));
  await page.getByLabel('Confirm your email address').fill('someone.else@example.com');
  await page.getByLabel('New password', { exact: true }).fill('a brand new passphrase');
  await page.getByLabel('Repeat the new password').fill('a brand new passphrase');
  await page.getByRole('button', { name: 'Set password' }).click();
  await page.getByText('not the email address the link was sent to').waitFor();

  await page.getByLabel('Confirm your email address').fill('bo@example.com');
  await page.getByLabel('New password', { exact: true }).fill('a brand new passphrase');
  await page.getByLabel('Repeat the new password').fill('a brand new passphrase');
  await page.getByRole('button', { name: 'Set password' }).click();
  await page.getByText('Your password is set').waitFor();
  await page.screenshot({ path: path.join(artifacts, 'password-set-phone.png'), fullPage: true });

  await page.getByLabel('Password').fill('a brand new passphrase');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'entitle Terms of Service' }).waitFor();
  await page.close();
});
