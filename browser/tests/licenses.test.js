// Licenses in Chromium: the operator adds a product and a subscription and changes its
// seats in the console; the organization's administrator sees the seats, checks a
// license out and downloads its file, stages a bulk checkout file, reads its preview,
// removes the rows that cannot be checked out and commits, then checks a license in;
// the holder sees it on their account page. Every page passes the layout and
// accessibility checks at a laptop's and a phone's width.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, PASSWORD, startEntitled, startSmtp } from '../lib/harness.js';
import { CONTACT, setPassword } from '../lib/scene.js';
import { checkPage, checkPreviewRows, LAPTOP, PHONE } from '../lib/checks.js';

const artifacts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../artifacts');
mkdirSync(artifacts, { recursive: true });
const OPERATOR = 'ops@vendor.example';

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
  await setPassword(server, smtp, CONTACT, 'added to Acme');
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await smtp?.close();
});

async function signedIn(email, viewport = LAPTOP) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  await page.goto(`${server.baseUrl}/sign-in`);
  await page.getByLabel('Email address').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => !url.pathname.startsWith('/sign-in'));
  return page;
}

function day(offsetDays) {
  return new Date(Date.now() + offsetDays * 86400000).toISOString().slice(0, 10);
}

test('the operator adds a product and a subscription and changes its seats', async () => {
  const page = await signedIn(OPERATOR);
  const nav = page.getByRole('navigation', { name: 'Operator console' });
  await nav.getByRole('link', { name: 'Products' }).click();
  await page.getByRole('heading', { name: 'Products' }).waitFor();
  const add = page.locator('form[action="/operator/products"]');
  await add.getByLabel(/^Code/).fill('Civil Designer');
  await add.getByLabel('Name', { exact: true }).fill('Civil Designer');
  await add.getByRole('button', { name: 'Add the product' }).click();
  await page.locator('#code-error').waitFor();
  await page.getByLabel(/^Code/).fill('civil-designer');
  await page.getByLabel(/^Versions/).fill('24.1, 24.2');
  await page.getByRole('button', { name: 'Add the product' }).click();
  await page.getByText('Saved civil-designer.').waitFor();
  await checkPage(page, '/operator/products');

  await nav.getByRole('link', { name: 'Subscriptions' }).click();
  await page.getByLabel('Organization').selectOption({ label: 'Acme' });
  await page.getByLabel(/^Products, by code/).fill('civil-designer');
  await page.getByLabel('Seats').fill('3');
  await page.getByLabel('Ends').fill(day(400));
  await page.getByRole('button', { name: 'Add the subscription' }).click();
  await page.getByText('Saved.').waitFor();
  const row = page.locator('tr[data-status="active"]');
  await row.getByRole('link', { name: 'Acme' }).waitFor();
  await row.getByLabel('Seats').fill('4');
  await row.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Saved.').waitFor();
  assert.equal(await page.locator('tr[data-status="active"]').getByLabel('Seats').inputValue(), '4');
  await checkPage(page, '/operator/subscriptions');
  await page.screenshot({ path: path.join(artifacts, 'operator-subscriptions.png'), fullPage: true });
  await page.setViewportSize(PHONE);
  for (const where of ['/operator/products', '/operator/subscriptions']) {
    await page.goto(`${server.baseUrl}${where}`);
    await checkPage(page, `${where} on a phone`);
  }
  await page.screenshot({ path: path.join(artifacts, 'operator-subscriptions-phone.png'), fullPage: true });
  await page.context().close();
});

test('an administrator checks out, downloads, bulk checks out from a previewed file and checks in', async () => {
  const page = await signedIn(CONTACT);
  await page.goto(`${server.baseUrl}/orgs/${orgId}/members`);
  await page.getByRole('navigation', { name: 'Acme' }).getByRole('link', { name: 'Licenses' }).click();
  await page.getByRole('heading', { name: 'Licenses', level: 1 }).waitFor();
  const seats = page.locator('tr[data-product="civil-designer"] [data-in-use]');
  assert.equal((await seats.textContent()).trim(), '0 of 4');

  // One at a time, with a mistake first.
  await page.getByLabel(/^Person's email address/).fill('ann@supplier');
  await page.getByLabel('Machine name').fill('ANN-PC');
  await page.getByRole('button', { name: 'Check out', exact: true }).click();
  await page.locator('#email-error').waitFor();
  await page.getByLabel(/^Person's email address/).fill('ann@supplier.example');
  await page.getByRole('button', { name: 'Check out', exact: true }).click();
  await page.getByText('Checked out civil-designer for ann@supplier.example on ANN-PC.').waitFor();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: /Download the license file for ann@supplier.example/ }).click(),
  ]);
  const file = readFileSync(await download.path(), 'utf8');
  assert.match(file, /^-----BEGIN ENTITLE LICENSE-----\n/);
  assert.match(download.suggestedFilename(), /^civil-designer-.*\.lic$/);
  assert.equal((await seats.textContent()).trim(), '1 of 4');
  await checkPage(page, 'licenses');

  // In bulk: four rows fit the three free seats, one is wrong, one has no seat left.
  const csv = [
    'Email,Product,Version,Machine,Expires',
    `bob@supplier.example,civil-designer,24.*,BOB-PC,${day(30)}`,
    `cy@supplier.example,civil-designer,24.2,CY-PC,${day(30)}`,
    `dee@supplier.example,civil-designer,24.*,DEE-PC,${day(30)}`,
    `eve@supplier.example,civil-designer,24.*,EVE-PC,${day(30)}`,
    `not-an-address,civil-designer,24.*,X-PC,${day(30)}`,
    `fay@supplier.example,bridge-analyst,1,FAY-PC,${day(30)}`,
  ].join('\r\n');
  await page.getByLabel(/^CSV file/).setInputFiles({ name: 'site-team.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await page.getByRole('button', { name: 'Upload and check' }).click();
  await page.getByRole('heading', { name: 'site-team.csv' }).waitFor();
  await page.getByText('6 rows: 3 licenses will be checked out, 3 rows cannot be checked out.').waitFor();
  assert.equal(await page.locator('tr[data-status="no_seat"]').count(), 1);
  await page.locator('tr[data-line="5"]').getByText('No seat left').waitFor();
  await page.locator('tr[data-line="7"]').getByText('no product has the code bridge-analyst').waitFor();
  await checkPreviewRows(page, 'bulk checkout preview');
  await checkPage(page, 'bulk checkout preview');
  await page.screenshot({ path: path.join(artifacts, 'bulk-checkout-preview.png'), fullPage: true });
  await page.getByRole('link', { name: 'Only problems (3)' }).click();
  assert.equal(await page.locator('table.staged tbody tr').count(), 3);
  await page.getByRole('button', { name: 'Remove the 3 rows that cannot be checked out' }).click();
  await page.getByText('6 rows: 3 licenses will be checked out, 3 removed.').waitFor();
  await page.getByRole('button', { name: 'Check out 3 licenses' }).click();
  await page.getByText('Committed site-team.csv. 3 licenses were checked out; 3 rows were not.').first().waitFor();
  assert.equal(await page.locator('tr[data-result="checked_out"]').count(), 3);

  await page.getByRole('link', { name: 'See the reserved licenses and download their files' }).click();
  assert.equal((await seats.textContent()).trim(), '4 of 4');
  assert.equal(await page.locator('tr[data-status="reserved"]').count(), 4);

  // Checking in asks first, names the license, and frees the seat.
  const ann = page.locator('tr[data-status="reserved"]', { hasText: 'ANN-PC' });
  await ann.getByRole('button', { name: 'Check in' }).click();
  const dialog = page.getByRole('dialog', { name: "Check in ann@supplier.example's civil-designer license on ANN-PC?" });
  await dialog.getByRole('button', { name: 'Check in' }).click();
  await page.getByText("Checked in ann@supplier.example's civil-designer license on ANN-PC: its seat is free.").waitFor();
  assert.equal((await seats.textContent()).trim(), '3 of 4');
  assert.equal(await page.locator('tr[data-status="checked_in"]').count(), 1);
  await page.setViewportSize(PHONE);
  await checkPage(page, 'licenses on a phone');
  await page.screenshot({ path: path.join(artifacts, 'licenses-phone.png'), fullPage: true });
  await page.context().close();
});

test('the holder sees their reserved license on their account page and checks it in', async () => {
  const operator = (await server.api('POST', '/api/v1/session', { email: OPERATOR, password: PASSWORD })).body.session_token;
  const fiona = (await server.api('POST', '/api/v1/session', { email: CONTACT, password: PASSWORD })).body.session_token;
  const mine = await server.api('POST', `/api/v1/orgs/${orgId}/checkouts`, {
    email: CONTACT, product: 'civil-designer', version: '24.2', machine_name: 'FIONA-LAPTOP',
    expires_at: Date.now() + 10 * 86400000,
  }, fiona);
  assert.equal(mine.status, 201, JSON.stringify(mine.body));
  assert.ok(operator);
  const page = await signedIn(CONTACT, PHONE);
  await page.goto(`${server.baseUrl}/account`);
  await page.getByRole('heading', { name: 'Your licenses' }).waitFor();
  await page.locator('table.entitlements tr[data-product="civil-designer"]').getByText('Acme').waitFor();
  const row = page.locator('table.my-checkouts tr[data-status="reserved"]');
  await row.getByText('FIONA-LAPTOP').waitFor();
  await checkPage(page, '/account with licenses');
  await row.getByRole('button', { name: 'Check in' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Check in' }).click();
  await page.getByText('The license is checked in').waitFor();
  assert.equal(await page.locator('table.my-checkouts tr[data-status="checked_in"]').count(), 1);
  await page.context().close();
});
