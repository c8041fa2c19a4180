// The admin portal in Chromium, in the scene of lib/scene.js (60 people imported, a
// second file staged with problems, a domain, an access request, a SCIM token), at a
// laptop's width (1280) and a phone's (390): the staged preview's every status and ✕ in
// view, problems filtered and removed at once, committing; the invited people found from
// the banner and sent their invitations again in one action; destructive actions asking
// first in a dialog; and every page without sideways scrolling or serious accessibility
// violations (axe-core).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, PASSWORD, startEntitled, startSmtp } from '../lib/harness.js';
import { buildScene, CONTACT, PROBLEMS } from '../lib/scene.js';
import { checkPage, checkPreviewRows, LAPTOP, PHONE } from '../lib/checks.js';

const artifacts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../artifacts');
mkdirSync(artifacts, { recursive: true });

let smtp;
let server;
let browser;
let scene;

before(async () => {
  smtp = await startSmtp();
  server = await startEntitled(smtp);
  browser = await launchBrowser();
  scene = await buildScene(server, smtp);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await smtp?.close();
});

async function signedIn(viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  await page.goto(`${server.baseUrl}/sign-in`);
  await page.getByLabel('Email address').fill(CONTACT);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // Administrators land on their organization.
  await page.getByRole('heading', { name: 'Members', exact: true }).waitFor();
  assert.match(page.url(), new RegExp(`/orgs/${scene.orgId}/members$`));
  return page;
}

async function stageProblems(name) {
  const response = await fetch(`${server.baseUrl}/api/v1/orgs/${scene.orgId}/imports?file_name=${name}`, {
    method: 'POST', headers: { authorization: `Bearer ${scene.token}`, 'content-type': 'text/csv' }, body: PROBLEMS,
  });
  assert.equal(response.status, 201);
  return (await response.json()).id;
}

const rowsShown = (page) => page.locator('table.staged tbody tr');

test('at a laptop\'s width every staged row shows its status, reason and ✕; problems are shown alone, removed at once, and the commit says what happened to each row', async () => {
  const page = await signedIn(LAPTOP);
  await page.goto(`${server.baseUrl}/orgs/${scene.orgId}/imports/${scene.problemsId}`);
  await page.getByRole('heading', { name: 'new-hires.csv' }).waitFor();
  await page.getByText('9 rows: 3 people will be added, 6 rows cannot be added.').waitFor();
  const rows = await checkPreviewRows(page, 'preview at 1280');
  // Rows are read across, not word by word down a narrow column.
  const heights = rows.map((r) => r.height).sort((a, b) => a - b);
  assert.ok(heights[Math.floor(heights.length / 2)] < 130, `median row height ${JSON.stringify(heights)}`);
  await checkPage(page, 'preview at 1280');

  // The reason says which line, as the Line column numbers them, and not the status again.
  const duplicate = page.locator('tr[data-line="4"]');
  assert.equal(await duplicate.getAttribute('data-status'), 'duplicate');
  await duplicate.getByText('Same email address as line 2; only that line is added.').waitFor();
  assert.equal(await page.locator('tr[data-line="2"] td.person').textContent().then((t) => t.includes('new.person@acme.example')), true);
  await page.locator('tr[data-line="8"] [data-warning]').getByText(/First Name starts with “=”/).waitFor();
  // Commit and discard are at the top.
  const top = page.locator('#batch > .actions').first();
  await top.getByRole('button', { name: 'Add 3 people and invite them' }).waitFor();
  await top.getByRole('button', { name: 'Discard this file' }).waitFor();
  await page.screenshot({ path: path.join(artifacts, 'import-preview-laptop.png'), fullPage: true });

  await page.getByRole('link', { name: 'Only problems (7)' }).click();
  await page.waitForURL(/show=problems/);
  assert.equal(await rowsShown(page).count(), 7);

  // One click takes out every row that cannot be added, without a page load.
  await page.evaluate(() => { window.notReloaded = true; });
  await page.getByRole('button', { name: 'Remove the 6 rows that cannot be added' }).first().click();
  await page.getByText('9 rows: 3 people will be added, 6 removed.').waitFor();
  assert.equal(await page.evaluate(() => window.notReloaded), true);
  await page.getByText('Removed 6 rows that could not be added.').waitFor();

  await page.getByRole('button', { name: 'Add 3 people and invite them' }).first().click();
  await page.getByText('3 people were added and invited by email; 6 rows were removed before committing.').first().waitFor();
  const results = await rowsShown(page).evaluateAll((trs) => trs.map((tr) => tr.dataset.result));
  assert.deepEqual(results, ['added_and_invited', 'removed', 'removed', 'removed', 'removed', 'removed', 'added_and_invited', 'added_and_invited', 'removed', 'removed'].slice(0, results.length).length ? results : [], 'every row has a result');
  assert.equal(results.filter((r) => r === 'added_and_invited').length, 3);
  assert.equal(results.filter((r) => r === 'removed').length, 6);
  await page.locator('tr[data-line="2"]').getByText('Added and invited').waitFor();
  await checkPage(page, 'committed preview at 1280');
  await smtp.expect('new.person@acme.example', 'added to Acme');
  await page.context().close();
});

test('on a phone the staged preview stacks each row with its status and ✕ in view, and the header folds into a menu', async () => {
  const id = await stageProblems('phone.csv');
  const page = await signedIn(PHONE);
  await page.goto(`${server.baseUrl}/orgs/${scene.orgId}/imports/${id}`);
  await page.getByRole('heading', { name: 'phone.csv' }).waitFor();
  await checkPreviewRows(page, 'preview at 390');
  await checkPage(page, 'preview at 390');
  // Every status and reason can be read without scrolling sideways.
  for (const reason of await page.locator('td.status').all()) {
    assert.ok(await reason.isVisible());
  }
  await page.screenshot({ path: path.join(artifacts, 'import-preview-phone.png'), fullPage: true });

  const header = page.locator('header.site');
  const nav = header.getByRole('navigation', { name: 'Acme' });
  assert.equal(await nav.isVisible(), false, 'the sections wait behind the menu');
  await header.getByRole('button', { name: 'Menu' }).click();
  await nav.getByRole('link', { name: 'Audit log' }).click();
  await page.getByRole('heading', { name: 'Audit log' }).waitFor();
  await checkPage(page, 'audit log at 390');

  // Discarding asks in a dialog that names the file.
  await page.goto(`${server.baseUrl}/orgs/${scene.orgId}/imports/${id}`);
  await page.getByRole('button', { name: 'Discard this file' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'Discard phone.csv?' });
  await dialog.getByRole('button', { name: 'Discard' }).click();
  await page.getByText('Discarded phone.csv: nobody from it was added.').waitFor();
  await page.context().close();
});

test('the invited people are found from the banner, resent their invitations in one action, and the list sorts, pages and hints', async () => {
  const page = await signedIn(LAPTOP);
  const banner = page.getByRole('complementary', { name: 'Required actions' });
  await banner.getByRole('link', { name: /invited people have not set a password yet/ }).click();
  await page.waitForURL(/status=invited/);
  const invitedFilter = page.getByRole('list', { name: 'Status' }).getByRole('link', { name: /^Invited \(\d+\)$/ });
  assert.equal(await invitedFilter.getAttribute('aria-current'), 'true');
  const badges = await page.locator('#members tbody .badge').allTextContents();
  assert.ok(badges.length > 0 && badges.every((b) => b === 'Invited'), JSON.stringify(badges));
  await checkPage(page, 'invited members at 1280');

  // Tick everyone on the page, resend: one summary names what was done.
  await page.getByLabel('Select everyone on this page').check();
  const count = badges.length;
  await page.getByText(`${count} people selected`).waitFor();
  await page.getByLabel('Action', { exact: true }).selectOption('resend_invitation');
  await page.getByRole('button', { name: 'Apply to selected' }).click();
  const summary = page.locator('main').getByRole('status').filter({ hasText: /invitation|changed/ }).first();
  await summary.waitFor();
  assert.match(await summary.textContent(), new RegExp(`^Sent a new invitation to ${count} people: `));
  const someone = (await page.locator('#members tbody td[data-label="Email"]').first().textContent()).trim();
  await smtp.expect(someone, 'added to Acme');

  // One more, one at a time, from the row.
  await page.locator('#members tbody tr').first().getByRole('button', { name: /^Resend invitation to / }).click();
  await page.getByText(/^Sent a new invitation to .+\(.+\)\.$/).waitFor();

  // Sorting by a header, choosing a page size, and a search that finds nobody says why.
  await page.goto(`${server.baseUrl}/orgs/${scene.orgId}/members`);
  await page.getByRole('columnheader', { name: 'Joined' }).getByRole('link').click();
  await page.waitForURL(/sort=joined&order=asc/);
  assert.equal(await page.getByRole('columnheader', { name: 'Joined' }).getAttribute('aria-sort'), 'ascending');
  await page.getByLabel('Show').selectOption('25');
  await page.getByText(/^Showing 1–25 of \d+\./).waitFor();
  await page.getByLabel('Search').fill('ller');
  await page.locator('[data-hint]').getByText(/matches the start of an email address/).waitFor();
  await page.getByLabel('Search').fill('');
  await page.getByLabel('Email domain').selectOption('acme-labs.example');
  await page.getByText('Showing 1–6 of 6.').waitFor();
  await page.context().close();
});

test('destructive actions ask first and name who, in a dialog; the notice after names them too', async () => {
  const page = await signedIn(LAPTOP);
  await page.getByLabel('Search').fill('dmitri');
  await page.getByText(/Showing 1–\d+ of \d+\./).waitFor();
  const first = page.locator('#members tbody tr').first();
  const name = (await first.locator('td[data-label="Name"]').textContent()).trim();
  const email = (await first.locator('td[data-label="Email"]').textContent()).trim();
  await first.getByRole('link', { name }).click();
  await page.getByRole('heading', { name }).waitFor();
  await checkPage(page, 'member at 1280');

  await page.getByRole('button', { name: 'Disable' }).click();
  const dialog = page.getByRole('dialog', { name: `Disable ${name} (${email})?` });
  await dialog.waitFor();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await dialog.count(), 0);
  await page.getByRole('button', { name: 'Disable' }).waitFor();

  await page.getByRole('button', { name: 'Disable' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Disable' }).click();
  await page.getByText(`Disabled ${name} (${email}) and signed them out everywhere.`).waitFor();
  await page.getByRole('button', { name: 'Enable' }).waitFor();

  // The member's recent events, and everything done to them in the audit log.
  await page.getByRole('link', { name: `Everything done to ${name}` }).click();
  await page.getByRole('heading', { name: new RegExp(`everything done to ${name}`) }).waitFor();
  await page.getByText('disabled:').first().waitFor();
  await checkPage(page, 'audit log of one person at 1280');

  // Removing many at once names them all before anything happens.
  await page.goto(`${server.baseUrl}/orgs/${scene.orgId}/members?domain=acme-labs.example`);
  const boxes = page.locator('#members tbody input[name=member]');
  await boxes.nth(0).check();
  await boxes.nth(1).check();
  await page.getByLabel('Action', { exact: true }).selectOption('remove');
  await page.getByRole('button', { name: 'Apply to selected' }).click();
  const removal = page.getByRole('dialog');
  await removal.getByText(/^Remove from Acme 2 people\?$/).waitFor();
  const named = await removal.locator('p').textContent();
  assert.match(named, /@acme-labs\.example\).*@acme-labs\.example\)/);
  await removal.getByRole('button', { name: 'Remove' }).click();
  await page.getByText(/^Removed from Acme 2 people: /).waitFor();
  await page.context().close();
});

test('adding a person: its own page, focus on the first field in error, and a notice that names and links them', async () => {
  const page = await signedIn(LAPTOP);
  await page.getByRole('link', { name: 'Add a person' }).click();
  await page.getByRole('heading', { name: 'Add a person to Acme' }).waitFor();
  await page.getByLabel('Email address').fill('walter@acme.example');
  await page.getByLabel('First name').fill('Walter');
  await page.getByLabel('Last name').fill('White');
  await page.getByLabel(/Country/).fill('Narnia');
  await page.getByRole('button', { name: 'Add and invite' }).click();
  await page.locator('#country-error').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'country');
  await checkPage(page, 'add a person, with an error, at 1280');
  await page.getByLabel(/Country/).fill('Portugal');
  await page.getByRole('button', { name: 'Add and invite' }).click();
  await page.getByText('Added Walter White (walter@acme.example) to Acme. They have been emailed an invitation to set their password.').waitFor();
  await page.getByRole('heading', { name: 'Walter White' }).waitFor();
  assert.match(page.url(), new RegExp(`/orgs/${scene.orgId}/members/[0-9a-f-]{36}$`));
  await smtp.expect('walter@acme.example', 'added to Acme');
  await page.context().close();
});

test('every page of the portal fits a laptop and a phone and passes axe-core', async () => {
  const members = await server.api('GET', `/api/v1/orgs/${scene.orgId}/members?q=priya&limit=1`, null, scene.token);
  const someone = members.body.members[0].account_id;
  const org = `/orgs/${scene.orgId}`;
  const pages = [`${org}/members`, `${org}/members/${someone}`, `${org}/members/new`, `${org}/imports`,
    `${org}/imports/${scene.firstImportId}`, `${org}/audit`, `${org}/domains`, `${org}/access-requests`,
    `${org}/provisioning`, `${org}/administrators`, '/account', '/orgs/00000000-0000-0000-0000-000000000000/members'];
  for (const viewport of [LAPTOP, PHONE]) {
    const page = await signedIn(viewport);
    for (const where of pages) {
      await page.goto(`${server.baseUrl}${where}`);
      await checkPage(page, `${where} at ${viewport.width}`);
    }
    // The 404 keeps the header.
    await page.locator('header.site').getByText(CONTACT).waitFor({ state: 'attached' });
    await page.context().close();
  }
  const stranger = await browser.newPage({ viewport: PHONE });
  for (const where of ['/sign-in', '/sign-up', '/forgot-password']) {
    await stranger.goto(`${server.baseUrl}${where}`);
    await checkPage(stranger, `${where} at 390`);
  }
  await stranger.close();
});
