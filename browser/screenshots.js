// Regenerates docs/screenshots: the admin portal's main pages at a laptop's and a
// phone's width, in the scene of lib/scene.js. Run by scripts/screenshots.sh.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, PASSWORD, startEntitled, startSmtp } from './lib/harness.js';
import { buildScene, CONTACT } from './lib/scene.js';
import { LAPTOP, PHONE } from './lib/checks.js';

const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../docs/screenshots');
mkdirSync(out, { recursive: true });

const WHOLE = new Set(['member', 'add-person', 'import-preview', 'domains', 'access-requests', 'provisioning']);

const smtp = await startSmtp();
const server = await startEntitled(smtp);
const browser = await launchBrowser();
try {
  const scene = await buildScene(server, smtp);
  const members = await server.api('GET', `/api/v1/orgs/${scene.orgId}/members?q=chlo&limit=1`, null, scene.token);
  const someone = members.body.members[0].account_id;
  const pages = [
    ['members', `/orgs/${scene.orgId}/members`],
    ['members-invited', `/orgs/${scene.orgId}/members?status=invited`],
    ['member', `/orgs/${scene.orgId}/members/${someone}`],
    ['add-person', `/orgs/${scene.orgId}/members/new`],
    ['import-preview', `/orgs/${scene.orgId}/imports/${scene.problemsId}`],
    ['import-committed', `/orgs/${scene.orgId}/imports/${scene.firstImportId}`],
    ['audit-log', `/orgs/${scene.orgId}/audit`],
    ['domains', `/orgs/${scene.orgId}/domains`],
    ['access-requests', `/orgs/${scene.orgId}/access-requests`],
    ['provisioning', `/orgs/${scene.orgId}/provisioning`],
  ];
  for (const [viewport, suffix] of [[LAPTOP, 'laptop'], [PHONE, 'phone']]) {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    await page.goto(`${server.baseUrl}/sign-in`);
    await page.getByLabel('Email address').fill(CONTACT);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/orgs\//);
    for (const [name, where] of pages) {
      await page.goto(`${server.baseUrl}${where}`);
      // Long lists are shown as far as the first screen; the pages of one thing whole.
      await page.screenshot({ path: path.join(out, `${name}-${suffix}.png`), fullPage: WHOLE.has(name) });
    }
    await context.close();
  }
  console.log(`screenshots in ${out}`);
} finally {
  await browser.close();
  await server.stop();
  await smtp.close();
}
