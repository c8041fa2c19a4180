// Required actions in the organization header and the approval queue, in Chromium:
// the banner lists what to do, a person asks to join, an administrator approves them
// in the queue, and each item leaves the banner once it is done. Then the Provisioning
// page: a SCIM token made, used and revoked, and a group mapped to a role.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, linkIn, PASSWORD, startEntitled, startSmtp } from '../lib/harness.js';

const artifacts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../artifacts');
mkdirSync(artifacts, { recursive: true });
const CONTACT = 'fay@initech.example';

let smtp;
let server;
let browser;
let orgId;

async function setPassword(email, subject) {
  const mail = await smtp.expect(email, subject);
  const token = new URL(linkIn(mail, '/reset-password')).searchParams.get('token');
  const set = await server.api('POST', '/api/v1/reset-password', { token, email, password: PASSWORD });
  assert.equal(set.status, 200, JSON.stringify(set.body));
}

async function signIn(page, email, where) {
  await page.goto(`${server.baseUrl}${where}`);
  await page.getByLabel('Email address').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

before(async () => {
  smtp = await startSmtp();
  server = await startEntitled(smtp);
  browser = await launchBrowser();
  const operator = await server.operator('ops@vendor.example');
  const created = await server.api('POST', '/api/v1/orgs', {
    name: 'Initech',
    fulfillment_contact: { email: CONTACT, first_name: 'Fay', last_name: 'Contact', country: 'US' },
  }, operator);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  orgId = created.body.id;
  await setPassword(CONTACT, 'added to Initech');
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await smtp?.close();
});

test('the header lists required actions and the approval queue clears one of them', async () => {
  const admin = await browser.newPage();
  await signIn(admin, CONTACT, `/orgs/${orgId}/members`);
  const banner = admin.getByRole('complementary', { name: 'Required actions' });
  await banner.waitFor();
  await banner.locator('li[data-code="verify_domain"]').waitFor();
  await banner.locator('li[data-code="enable_auto_approval"]').waitFor();
  assert.equal(await banner.locator('li[data-code="decide_access_requests"]').count(), 0);

  // The domain page shows the record to publish; verification says what it found.
  await banner.getByRole('link', { name: /Verify your organization's email domain/ }).click();
  await admin.getByRole('heading', { name: 'Domains' }).waitFor();
  await admin.getByLabel('Domain').fill('initech.example');
  await admin.getByRole('button', { name: 'Claim' }).click();
  await admin.getByText('Claimed. Publish the TXT record, then verify.').waitFor();
  await admin.getByText('_entitle-challenge.initech.example').waitFor();
  await admin.getByRole('button', { name: 'Verify initech.example' }).click();
  await admin.getByRole('alert').getByText(/DNS did not answer/).waitFor();
  assert.equal(await admin.getByRole('button', { name: 'Switch Auto Approval on' }).isDisabled(), true);

  // Someone who knows Fay asks to join through the join page.
  const signup = await server.api('POST', '/api/v1/signup', { email: 'milton@gmail.com', password: PASSWORD, first_name: 'Milton', last_name: 'Waddams', country: 'US' });
  assert.equal(signup.status, 202);
  const confirm = await smtp.expect('milton@gmail.com', 'Confirm your email');
  const verified = await server.api('POST', '/api/v1/verify-email', { token: new URL(linkIn(confirm, '/verify-email')).searchParams.get('token') });
  assert.equal(verified.status, 200);
  const person = await browser.newPage();
  await signIn(person, 'milton@gmail.com', '/join');
  await person.getByRole('heading', { name: 'Join an organization' }).waitFor();
  await person.getByLabel("Your administrator's email address").fill(CONTACT);
  await person.getByLabel('Message (optional)').fill('I was told to ask you. Have you seen my stapler?');
  await person.getByRole('button', { name: 'Send the request' }).click();
  await person.getByText(/its administrators have your request/).waitFor();
  await smtp.expect(CONTACT, 'milton@gmail.com asks to join Initech');

  // The banner now points at the queue; approving clears it.
  await admin.goto(`${server.baseUrl}/orgs/${orgId}/members`);
  const waiting = banner.locator('li[data-code="decide_access_requests"]');
  await waiting.waitFor();
  await admin.screenshot({ path: path.join(artifacts, 'required-actions.png'), fullPage: true });
  await waiting.getByRole('link').click();
  await admin.getByRole('heading', { name: 'Access requests' }).waitFor();
  await admin.getByText('Have you seen my stapler?').waitFor();
  await admin.screenshot({ path: path.join(artifacts, 'access-requests.png'), fullPage: true });
  await admin.getByText('They named fay@initech.example as an administrator of yours.').waitFor();
  await admin.getByRole('region', { name: 'Milton Waddams' }).getByLabel('License Checkout').check();
  await admin.getByRole('button', { name: 'Approve milton@gmail.com' }).click();
  await admin.getByText('Approved Milton Waddams (milton@gmail.com): they are a User and License Checkout now and have been told.').waitFor();
  await admin.getByText('Nobody is waiting to join Initech.').waitFor();
  // The decision stays in the history.
  await admin.getByRole('region', { name: 'Decisions' }).getByText('User, License Checkout').waitFor();
  assert.equal(await banner.locator('li[data-code="decide_access_requests"]').count(), 0);
  await smtp.expect('milton@gmail.com', 'You are now a member of Initech');

  await admin.goto(`${server.baseUrl}/orgs/${orgId}/members?q=milton`);
  await admin.locator('#members tbody tr', { hasText: 'milton@gmail.com' }).waitFor();
  await admin.close();
  await person.close();
});

test('the provisioning page makes a token once, maps a group to a role and revokes the token', async () => {
  const admin = await browser.newPage();
  await signIn(admin, CONTACT, `/orgs/${orgId}/members`);
  await admin.getByRole('navigation', { name: 'Initech' }).getByRole('link', { name: 'Provisioning' }).click();
  await admin.getByRole('heading', { name: 'Provisioning' }).waitFor();
  await admin.getByText(`${server.baseUrl}/scim/v2`).waitFor();
  await admin.getByLabel('New token for').fill('Okta');
  await admin.getByRole('button', { name: 'Create token' }).click();
  await admin.getByText('Copy this token now').waitFor();
  const token = (await admin.locator('#new-token').textContent()).trim();
  assert.match(token, /^entitle_scim_/);

  // The identity provider provisions a person and a group with that token.
  const scim = (method, where, body) => server.api(method, `/scim/v2${where}`, body, token);
  const user = await scim('POST', '/Users', {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: 'peter@initech.example',
    name: { givenName: 'Peter', familyName: 'Gibbons' },
    emails: [{ value: 'peter@initech.example' }],
  });
  assert.equal(user.status, 201, JSON.stringify(user.body));
  const group = await scim('POST', '/Groups', {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
    displayName: 'Engineering',
    members: [{ value: user.body.id }],
  });
  assert.equal(group.status, 201, JSON.stringify(group.body));

  // Opened again, the page no longer shows the secret, and lists the group to map.
  await admin.goto(`${server.baseUrl}/orgs/${orgId}/provisioning`);
  assert.equal(await admin.locator('#new-token').count(), 0);
  await admin.getByLabel('Role of Engineering', { exact: true }).selectOption({ label: 'Usage Reports' });
  await admin.getByRole('button', { name: 'Save the role of Engineering' }).click();
  await admin.getByText('Saved.').waitFor();
  assert.equal(await admin.getByLabel('Role of Engineering', { exact: true }).inputValue(), 'usage_reports');
  const peter = await scim('GET', `/Users/${user.body.id}`);
  assert.deepEqual(peter.body.roles.map((r) => r.value).sort(), ['usage_reports', 'user']);
  await admin.screenshot({ path: path.join(artifacts, 'provisioning.png'), fullPage: true });

  // Revoking asks first, in a dialog that names the token.
  await admin.getByRole('button', { name: 'Revoke Okta' }).click();
  const dialog = admin.getByRole('dialog', { name: 'Revoke the SCIM token “Okta”?' });
  await dialog.getByRole('button', { name: 'Revoke' }).click();
  await admin.getByText('Revoked the SCIM token “Okta”: requests with it are refused from now on.').waitFor();
  assert.equal((await scim('GET', '/Groups')).status, 401);
  await admin.close();
});
