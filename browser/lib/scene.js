// The situation the admin portal is judged in: an organization with 60 people imported
// (some registered, some still invited, one disabled), a second file staged with
// problems, a domain waiting for verification, an access request, and a SCIM token.
// Shared by the Chromium tests and the screenshot script.
import assert from 'node:assert/strict';
import { linkIn, PASSWORD } from './harness.js';

export const CONTACT = 'fiona@acme.example';

const FIRST = ['Ann', 'Bob', 'Chloé', 'Dmitri', 'Eva', 'Farid', 'Grace', 'Hiroshi', 'Ines', 'Jonas',
  'Kwame', 'Lena', 'Mateo', 'Nora', 'Oskar', 'Priya', 'Quentin', 'Rosa', 'Sven', 'Tamar'];
const LAST = ['Alder', 'Birch', 'Castellanos-Villanueva', 'Dąbrowski', 'Eriksson', 'Fitzgerald',
  'García Márquez', 'Hoffmann', 'Ivanova', 'Jørgensen', 'Kowalczyk', 'Lindqvist'];
const COUNTRIES = ['DE', 'France', 'GB', 'Spain', 'PL', 'Sweden', 'US', 'Japan'];

/// The first file: 60 people of Acme, a few with extra roles.
export function sixtyPeople() {
  const lines = ['Email,First Name,Last Name,Country,Roles'];
  for (let i = 0; i < 60; i += 1) {
    const first = FIRST[i % FIRST.length];
    const last = LAST[(i * 7) % LAST.length];
    const domain = i % 10 === 9 ? 'acme-labs.example' : 'acme.example';
    const roles = i % 15 === 0 ? 'License Checkout;Usage Reports' : (i % 12 === 5 ? 'Co-Administrator' : '');
    lines.push(`${first.toLowerCase().normalize('NFD').replace(/[^a-z]/g, '')}.${i}@${domain},${first},"${last}",${COUNTRIES[i % COUNTRIES.length]},${roles}`);
  }
  return lines.join('\r\n');
}

/// The second file, with problems of every kind and long values.
export const PROBLEMS = [
  'Email,First Name,Last Name,Country,Roles',
  'new.person@acme.example,New,Person,DE,License Checkout',
  'ann.0@acme.example,Ann,Alder,DE,',
  'New.Person@acme.example,Newer,Person,DE,',
  'not-an-address,Carl,Cedar,DE,',
  'gus@globex.example,Gus,Globex,US,',
  'maximilian.alexander.von.hohenberg-schwarzenstein@subsidiary.acme.example,Maximilian Alexander,"von Hohenberg-Schwarzenstein",Germany,Usage Reports;Software Downloads;License Checkout',
  'eve@acme.example,=HYPERLINK("http://x.example"),Evans,DE,',
  'zoe@acme.example,Zoë,Zimmermann,Narnia,Administrator',
  'li@acme.example,Li,Wei,CN,Root',
].join('\r\n');

export async function setPassword(server, smtp, email, subject) {
  const mail = await smtp.expect(email, subject);
  const token = new URL(linkIn(mail, '/reset-password')).searchParams.get('token');
  const set = await server.api('POST', '/api/v1/reset-password', { token, email, password: PASSWORD });
  assert.equal(set.status, 200, JSON.stringify(set.body));
}

async function stage(server, token, orgId, name, csv) {
  const response = await fetch(`${server.baseUrl}/api/v1/orgs/${orgId}/imports?file_name=${name}`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' }, body: csv,
  });
  const text = await response.text();
  assert.equal(response.status, 201, text);
  return JSON.parse(text);
}

/// Builds the scene; returns the ids and tokens the tests need.
export async function buildScene(server, smtp) {
  const operator = await server.operator('ops@vendor.example');
  const created = await server.api('POST', '/api/v1/orgs', {
    name: 'Acme',
    fulfillment_contact: { email: CONTACT, first_name: 'Fiona', last_name: 'Contact', country: 'GB' },
  }, operator);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const orgId = created.body.id;
  await setPassword(server, smtp, CONTACT, 'added to Acme');
  const token = (await server.api('POST', '/api/v1/session', { email: CONTACT, password: PASSWORD })).body.session_token;
  // Globex, so that one row of the second file belongs to another organization.
  const globex = await server.api('POST', '/api/v1/orgs', {
    name: 'Globex',
    fulfillment_contact: { email: 'gus@globex.example', first_name: 'Gus', last_name: 'Globex', country: 'US' },
  }, operator);
  assert.equal(globex.status, 201);

  const first = await stage(server, token, orgId, 'staff-2026.csv', sixtyPeople());
  const committed = await server.api('POST', `/api/v1/orgs/${orgId}/imports/${first.id}/commit`, null, token);
  assert.equal(committed.status, 200, JSON.stringify(committed.body));
  // A third of them register; one is disabled.
  const people = committed.body.rows.map((r) => r.email.toLowerCase());
  for (const email of people.filter((_, i) => i % 3 === 0)) {
    await setPassword(server, smtp, email, 'added to Acme');
  }
  const listed = await server.api('GET', `/api/v1/orgs/${orgId}/members?q=bob&limit=1`, null, token);
  const disabled = await server.api('PATCH', `/api/v1/orgs/${orgId}/members/${listed.body.members[0].account_id}`, { disabled: true }, token);
  assert.equal(disabled.status, 200, JSON.stringify(disabled.body));

  const problems = await stage(server, token, orgId, 'new-hires.csv', PROBLEMS);
  const domain = await server.api('POST', `/api/v1/orgs/${orgId}/domains`, { domain: 'acme.example' }, token);
  assert.equal(domain.status, 201, JSON.stringify(domain.body));
  const scim = await server.api('POST', `/api/v1/orgs/${orgId}/scim-tokens`, { name: 'Okta' }, token);
  assert.equal(scim.status, 201, JSON.stringify(scim.body));

  // Someone from outside asks to join, naming Fiona.
  const signup = await server.api('POST', '/api/v1/signup', {
    email: 'pat@contractor.example', password: PASSWORD, first_name: 'Pat', last_name: 'Contractor', country: 'IE',
  });
  assert.equal(signup.status, 202, JSON.stringify(signup.body));
  const verify = await smtp.expect('pat@contractor.example', 'Confirm');
  const verifyToken = new URL(linkIn(verify, '/verify-email')).searchParams.get('token');
  assert.equal((await server.api('POST', '/api/v1/verify-email', { token: verifyToken })).status, 200);
  const pat = (await server.api('POST', '/api/v1/session', { email: 'pat@contractor.example', password: PASSWORD })).body.session_token;
  const asked = await server.api('POST', '/api/v1/access-requests', { administrator_email: CONTACT, message: 'I run the Dublin office for Acme.' }, pat);
  assert.equal(asked.status, 202, JSON.stringify(asked.body));
  return { orgId, token, problemsId: problems.id, firstImportId: first.id };
}
