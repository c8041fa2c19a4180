// The admin portal in Chromium: an organization's Fulfillment Contact uploads a CSV
// file with duplicates and problems, sees them highlighted, removes one with its x,
// commits, and finds the new people in the member list; then edits one of them and
// reads the audit log. Also at phone width.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, linkIn, PASSWORD, startEntitled, startSmtp } from './harness.js';

const artifacts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../artifacts');
mkdirSync(artifacts, { recursive: true });
const OPERATOR = 'ops@vendor.example';
const CONTACT = 'fiona@acme.example';

let smtp;
let server;
let browser;
let orgId;

before(async () => {
  smtp = await startSmtp();
  server = await startEntitled(smtp);
  browser = await launchBrowser();
  const operator = await server.operator(OPERATOR);
  const created = await server.api('POST', '/api/v1/orgs', {
    name: 'Acme',
    fulfillment_contact: { email: CONTACT, first_name: 'Fiona', last_name: 'Contact', country: 'GB' },
  }, operator);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  orgId = created.body.id;
  const mail = await smtp.expect(CONTACT, 'added to Acme');
  const token = new URL(linkIn(mail, '/reset-password')).searchParams.get('token');
  const set = await server.api('POST', '/api/v1/reset-password', { token, email: CONTACT, password: PASSWORD });
  assert.equal(set.status, 200, JSON.stringify(set.body));
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await smtp?.close();
});

const CSV = [
  'email,first name,last name,country,roles',
  'ann@acme.example,Ann,Alder,DE,License Checkout',
  'bob@acme.example,Bob,"Birch, Jr.",FR,',
  ' ANN@acme.example ,Annie,Alder,DE,',
  'not-an-address,Carl,Cedar,DE,',
  'fiona@acme.example,Fiona,Contact,GB,',
  'josé@acme.example,José,Müller,ES,',
].join('\r\n');

async function signedInPage(width = 1280) {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  // Straight to an organization page: sign-in first, then back here.
  await page.goto(`${server.baseUrl}/orgs/${orgId}`);
  await page.getByLabel('Email address').fill(CONTACT);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Members' }).waitFor();
  return page;
}

test('an administrator stages a CSV file, removes a duplicate with its x, commits and sees the people', async () => {
  const page = await signedInPage();
  const header = page.getByRole('banner');
  await header.getByText('Acme').first().waitFor();
  await header.getByText(CONTACT).waitFor();
  await header.getByText('(Fulfillment Contact)').waitFor();

  await page.getByRole('banner').getByRole('link', { name: 'Bulk registration' }).click();
  await page.getByRole('heading', { name: 'Bulk registration' }).waitFor();
  await page.getByLabel(/CSV file/).setInputFiles({ name: 'new-people.csv', mimeType: 'text/csv', buffer: Buffer.from(CSV) });
  await page.getByRole('button', { name: 'Upload and check' }).click();
  await page.getByRole('heading', { name: 'new-people.csv' }).waitFor();

  // Duplicates and problems are highlighted.
  // Case-sensitive: ann@ and ANN@ are different rows.
  const row = (email) => page.locator('tbody tr', { hasText: new RegExp(email.replace(/[.]/g, '\\.')) });
  assert.equal(await row('ANN@acme.example').getAttribute('data-status'), 'duplicate');
  assert.equal(await row('not-an-address').getAttribute('data-status'), 'invalid');
  assert.equal(await row('fiona@acme.example').getAttribute('data-status'), 'already_member');
  assert.equal(await row('bob@acme.example').getAttribute('data-status'), 'valid');
  const background = (locator) => locator.locator('td').first().evaluate((td) => getComputedStyle(td).backgroundColor);
  assert.equal(await background(row('ANN@acme.example')), 'rgb(255, 248, 197)');
  assert.equal(await background(row('not-an-address')), 'rgb(255, 235, 233)');
  assert.equal(await background(row('bob@acme.example')), 'rgba(0, 0, 0, 0)');
  await row('ANN@acme.example').getByText('Same email address as row 1.').waitFor();
  await page.screenshot({ path: path.join(artifacts, 'import-preview.png'), fullPage: true });

  // The x takes the duplicate out of the batch (through htmx, without a page load).
  await page.evaluate(() => { window.notReloaded = true; });
  await page.getByRole('button', { name: 'Remove line 4 (ANN@acme.example)' }).click();
  await page.locator('tbody tr[data-status="removed"]', { hasText: /ANN@acme/ }).waitFor();
  assert.equal(await page.evaluate(() => window.notReloaded), true);
  assert.equal(await page.getByRole('button', { name: 'Remove line 4 (ANN@acme.example)' }).count(), 0);

  await page.getByRole('button', { name: 'Add 3 people and invite them' }).click();
  await page.getByText('Committed: everyone valid was added and invited.').waitFor();
  assert.match(await row('bob@acme.example').textContent(), /added; invitation sent/);
  await page.getByRole('link', { name: 'Download the result report (CSV)' }).waitFor();
  await smtp.expect('bob@acme.example', 'added to Acme');

  await page.getByRole('link', { name: 'See the members' }).click();
  await page.getByRole('heading', { name: 'Members' }).waitFor();
  for (const email of ['ann@acme.example', 'bob@acme.example', 'josé@acme.example', CONTACT]) {
    await page.locator('#members tbody tr', { hasText: email }).waitFor();
  }
  assert.match(await page.locator('#members tbody tr', { hasText: 'ann@acme.example' }).textContent(), /License Checkout[\s\S]*Invited/);
  await page.getByText('Showing 1–4 of 4.').waitFor();

  // Search as you type (htmx swaps the table and keeps the address in step).
  await page.getByLabel('Search').fill('müller');
  await page.getByText('Showing 1–1 of 1.').waitFor();
  assert.equal(await page.locator('#members tbody tr').count(), 1);
  assert.match(page.url(), /q=m%C3%BCller/);
  await page.screenshot({ path: path.join(artifacts, 'members-search.png'), fullPage: true });
  await page.close();
});

test('an administrator edits a member, changes roles, disables them, and reads the audit log', async () => {
  const page = await signedInPage();
  await page.getByRole('link', { name: 'Bob Birch, Jr.' }).click();
  await page.getByRole('heading', { name: 'Bob Birch, Jr.' }).waitFor();
  await page.getByLabel('Last name').fill('Birch');
  await page.getByRole('button', { name: 'Save details' }).click();
  await page.getByText('Saved.').waitFor();
  await page.getByRole('heading', { name: 'Bob Birch' }).waitFor();

  await page.getByLabel('Co-Administrator').check();
  await page.getByLabel('Usage Reports').check();
  await page.getByRole('button', { name: 'Save roles' }).click();
  await page.getByText('Saved.').waitFor();
  await page.getByText('Co-Administrator, Usage Reports').waitFor();

  // A bad country is shown next to its field; nothing changes.
  await page.getByLabel(/Country/).fill('Narnia');
  await page.getByRole('button', { name: 'Save details' }).click();
  await page.locator('#country-error').waitFor();
  await page.getByRole('alert').getByText('Please correct the fields marked below.').waitFor();

  await page.getByRole('button', { name: 'Disable' }).click();
  await page.getByText('Disabled and signed out everywhere.').waitFor();
  await page.getByRole('button', { name: 'Enable' }).waitFor();

  await page.getByRole('banner').getByRole('link', { name: 'Audit log' }).click();
  await page.getByRole('heading', { name: 'Audit log' }).waitFor();
  await page.getByLabel('Action', { exact: true }).fill('org.roles_changed');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.locator('tbody tr', { hasText: 'bob@acme.example' }).waitFor();
  assert.equal(await page.locator('tbody tr').count(), 1);
  const csvLink = await page.getByRole('link', { name: 'Export these events as CSV' }).getAttribute('href');
  assert.match(csvLink, /audit\.csv\?action=org\.roles_changed/);
  await page.screenshot({ path: path.join(artifacts, 'audit-log.png'), fullPage: true });
  await page.close();
});

test('the organization pages fit a phone screen, and signed-out visitors are sent to sign in', async () => {
  const page = await signedInPage(360);
  for (const where of ['members', 'imports', 'audit', 'domains', 'provisioning']) {
    await page.goto(`${server.baseUrl}/orgs/${orgId}/${where}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${where} is ${overflow}px wider than the screen`);
  }
  await page.screenshot({ path: path.join(artifacts, 'members-phone.png'), fullPage: true });
  await page.close();

  const stranger = await browser.newPage();
  const response = await stranger.goto(`${server.baseUrl}/orgs/${orgId}/members`);
  assert.match(stranger.url(), /\/sign-in\?next=/);
  assert.equal(response.status(), 200);
  await stranger.close();
});
