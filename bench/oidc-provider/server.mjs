// panva's oidc-provider, in memory, configured like entitle's bench client: a
// confidential client with client_credentials and rotating refresh tokens, ES256 ID
// tokens. Prints one JSON line when listening: {port, families: [refresh tokens]}.
// Its bundled development adapter is an LRU of 1,000 entries, which drops live grants
// under load; this one is a plain Map, like a real in-memory store.
//   node server.mjs <port> <families> [<extra families for the memory figure>]
// Answers SIGUSR2 by minting 10,000 more families and printing RSS before and after.

import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? 3000);
const families = Number(process.argv[3] ?? 64);
const issuer = `http://127.0.0.1:${port}`;

const jwk = (type, options) => ({
  ...generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }),
});
const keys = [
  { ...jwk('rsa', { modulusLength: 2048 }), alg: 'RS256', use: 'sig', kid: 'rsa' },
  { ...jwk('ec', { namedCurve: 'P-256' }), alg: 'ES256', use: 'sig', kid: 'ec' },
  { ...jwk('ed25519'), alg: 'EdDSA', use: 'sig', kid: 'ed' },
];

const store = new Map();
const grants = new Map();

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload) {
    const key = this.key(id);
    if (payload.grantId) {
      if (!grants.has(payload.grantId)) grants.set(payload.grantId, new Set());
      grants.get(payload.grantId).add(key);
    }
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, id);
    if (this.model === 'Session' && payload.uid) store.set(`sessionUid:${payload.uid}`, id);
    store.set(key, payload);
  }

  async find(id) {
    return store.get(this.key(id));
  }

  async findByUserCode(userCode) {
    return this.find(store.get(`userCode:${userCode}`));
  }

  async findByUid(uid) {
    return this.find(store.get(`sessionUid:${uid}`));
  }

  async consume(id) {
    const payload = store.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grants.get(grantId) ?? []) store.delete(key);
    grants.delete(grantId);
  }
}

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  clients: [
    {
      client_id: 'bench',
      client_secret: 'bench-secret-bench-secret-bench-secret',
      grant_types: ['client_credentials', 'refresh_token', 'authorization_code'],
      redirect_uris: ['https://rp.example/cb'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
      scope: 'openid email offline_access licenses',
    },
  ],
  jwks: { keys },
  scopes: ['openid', 'email', 'offline_access', 'licenses'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  rotateRefreshToken: true,
  issueRefreshToken: async () => true,
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, email: `${sub}@example.com`, email_verified: true }),
  }),
  ttl: { AccessToken: 600, ClientCredentials: 600, IdToken: 3600, RefreshToken: 90 * 24 * 3600, Grant: 90 * 24 * 3600 },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const client = await provider.Client.find('bench');

/** A refresh-token family as an authorization code exchange would leave it. */
async function mintFamily(n) {
  const accountId = `person-${n}`;
  const grant = new provider.Grant({ accountId, clientId: 'bench' });
  grant.addOIDCScope('openid email offline_access');
  const grantId = await grant.save();
  const token = new provider.RefreshToken({
    accountId,
    client,
    grantId,
    scope: 'openid email offline_access',
    gty: 'authorization_code',
    authTime: Math.floor(Date.now() / 1000),
  });
  return token.save();
}

const rssKiB = () => Math.round(process.memoryUsage().rss / 1024);
const tokens = [];
for (let i = 0; i < families; i++) tokens.push(await mintFamily(i));

let minted = families;
process.on('SIGUSR2', async () => {
  globalThis.gc?.();
  const before = rssKiB();
  for (let i = 0; i < 10000; i++) await mintFamily(minted++);
  globalThis.gc?.();
  console.log(JSON.stringify({ rss_before_kib: before, rss_after_kib: rssKiB() }));
});

provider.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ port, families: tokens }));
});
