// An independent relying party: panva's openid-client (certified by the OpenID
// Foundation) run against entitled. Started by the Rust test `interop::openid_client`,
// which passes the issuer, the registered clients and a person through the environment.
//
// The browser steps (sign-in form, device approval) are plain HTTP requests with a
// cookie jar, the way a person's browser would make them.

import assert from 'node:assert/strict';
import * as client from 'openid-client';

const env = process.env;
const issuer = new URL(env.ISSUER);
const insecure = { execute: [client.allowInsecureRequests] };
const redirectUri = env.REDIRECT_URI;
const checks = [];
const check = (name) => checks.push(name);

/** A browser: follows nothing by itself, keeps cookies. */
class Browser {
  cookies = new Map();

  async request(url, init = {}) {
    const headers = new Headers(init.headers ?? {});
    if (this.cookies.size) {
      headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    }
    const response = await fetch(new URL(url, issuer), { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || /max-age=0/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }

  /** GETs a page, then posts its form with the page's CSRF token and `fields`. */
  async submit(page, action, fields) {
    const html = await (await this.request(page)).text();
    const csrf = html.match(/name="csrf_token" value="([^"]+)"/)?.[1];
    assert.ok(csrf, `a form with a CSRF token on ${page}`);
    return this.request(action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf_token: csrf, ...fields }),
    });
  }
}

/** Follows redirects within the provider until one leaves for the client. */
async function authorizeInBrowser(browser, url) {
  let location = url.href;
  for (let hop = 0; hop < 10; hop++) {
    if (location.startsWith(redirectUri)) return new URL(location);
    const target = new URL(location, issuer);
    if (target.pathname === '/sign-in') {
      const next = target.searchParams.get('next');
      const answer = await browser.submit(target.pathname + target.search, '/sign-in', {
        email: env.EMAIL,
        password: env.PASSWORD,
        next,
      });
      assert.equal(answer.status, 303, 'sign-in form accepted');
      location = answer.headers.get('location');
      continue;
    }
    const answer = await browser.request(target);
    assert.ok([302, 303, 307].includes(answer.status), `redirect from ${target.pathname}, got ${answer.status}`);
    location = answer.headers.get('location');
  }
  throw new Error('too many redirects');
}

async function expectOAuthError(promise, code, what) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.error, code, `${what}: ${err.message}`);
    return true;
  }, what);
}

// Confidential web application: discovery, code + PKCE, ID token checked against JWKS.
const web = await client.discovery(issuer, env.CLIENT_ID, undefined, client.ClientSecretBasic(env.CLIENT_SECRET), insecure);
client.enableNonRepudiationChecks(web);
assert.equal(web.serverMetadata().issuer, issuer.href.replace(/\/$/, ''));
check('discovery');

const browser = new Browser();
async function codeFlow(config, scope) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  const callback = await authorizeInBrowser(browser, url);
  return client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
}

const tokens = await codeFlow(web, 'openid profile email offline_access org');
const claims = tokens.claims();
assert.equal(claims.email, env.EMAIL);
assert.equal(claims.email_verified, true);
assert.equal(claims.given_name, 'Test');
assert.equal(claims.family_name, 'Person');
assert.equal(claims.country, 'DE');
assert.ok(claims.auth_time && claims.sid);
assert.ok(tokens.refresh_token, 'a refresh token for offline_access');
check('authorization code + PKCE, ID token verified with the JWKS');

const info = await client.fetchUserInfo(web, tokens.access_token, claims.sub);
assert.equal(info.email, env.EMAIL);
assert.equal(info.family_name, 'Person');
check('userinfo');

const about = await client.tokenIntrospection(web, tokens.access_token);
assert.equal(about.active, true);
assert.equal(about.sub, claims.sub);
assert.equal(about.client_id, env.CLIENT_ID);
check('introspection');

const refreshed = await client.refreshTokenGrant(web, tokens.refresh_token);
assert.notEqual(refreshed.refresh_token, tokens.refresh_token, 'rotated');
assert.equal(refreshed.claims().sub, claims.sub);
await expectOAuthError(client.refreshTokenGrant(web, tokens.refresh_token), 'invalid_grant', 'reusing a rotated refresh token');
await expectOAuthError(client.refreshTokenGrant(web, refreshed.refresh_token), 'invalid_grant', 'the family is revoked after reuse');
assert.equal((await client.tokenIntrospection(web, refreshed.access_token)).active, false);
check('refresh rotation; reuse revokes the family');

const again = await codeFlow(web, 'openid offline_access');
await client.tokenRevocation(web, again.refresh_token);
assert.equal((await client.tokenIntrospection(web, again.refresh_token)).active, false);
await expectOAuthError(client.refreshTokenGrant(web, again.refresh_token), 'invalid_grant', 'a revoked refresh token');
await client.tokenRevocation(web, again.access_token);
assert.equal((await client.tokenIntrospection(web, again.access_token)).active, false);
check('revocation');

// The public desktop client: the device authorization grant.
const desktop = await client.discovery(issuer, 'entitle-desktop', undefined, client.None(), insecure);
client.enableNonRepudiationChecks(desktop);
const device = await client.initiateDeviceAuthorization(desktop, { scope: 'openid email offline_access' });
const page = new URL(device.verification_uri_complete);
const approved = await browser.submit(page.pathname + page.search, '/device', {
  user_code: device.user_code,
  decision: 'allow',
});
assert.equal(approved.status, 200);
const deviceTokens = await client.pollDeviceAuthorizationGrant(desktop, device);
assert.equal(deviceTokens.claims().email, env.EMAIL);
assert.ok(deviceTokens.refresh_token);
check('device authorization grant');

// A service: client credentials.
const service = await client.discovery(issuer, env.SERVICE_ID, undefined, client.ClientSecretPost(env.SERVICE_SECRET), insecure);
const serviceTokens = await client.clientCredentialsGrant(service, { scope: 'licenses' });
assert.equal(serviceTokens.scope, 'licenses');
assert.equal((await client.tokenIntrospection(service, serviceTokens.access_token)).sub, env.SERVICE_ID);
assert.equal((await client.tokenIntrospection(web, serviceTokens.access_token)).active, false, "another client's token is not the web app's to introspect");
check('client credentials');

// RP-initiated logout.
const logout = client.buildEndSessionUrl(web, {
  id_token_hint: tokens.id_token,
  post_logout_redirect_uri: env.POST_LOGOUT_REDIRECT_URI,
  state: 'bye',
});
const loggedOut = await browser.request(logout);
assert.equal(loggedOut.headers.get('location'), `${env.POST_LOGOUT_REDIRECT_URI}?state=bye`);
assert.equal(browser.cookies.has('entitle_session'), false);
check('RP-initiated logout');

console.log(JSON.stringify({ ok: true, checks }));
