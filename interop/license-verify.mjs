// An independent verifier of entitle license files: panva's `jose` (npm), which nobody
// here wrote, checks each file of a vector directory (or a file the server issued)
// against a JWKS exactly as docs/license-format.md says any JOSE library can. Prints one
// JSON line: per file, whether the signature verified and what the claims said.
//
// Usage: node license-verify.mjs DIR   (DIR holds outcomes.json and the .lic files)
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { compactVerify, importJWK } from 'jose';

const dir = process.argv[2];
const manifest = JSON.parse(readFileSync(path.join(dir, 'outcomes.json'), 'utf8'));
const LEEWAY = 300;

function unarmor(text) {
  const begin = text.indexOf('-----BEGIN ENTITLE LICENSE-----');
  const end = text.indexOf('-----END ENTITLE LICENSE-----');
  if (begin < 0 || end < begin) return null;
  return text.slice(begin + '-----BEGIN ENTITLE LICENSE-----'.length, end).replace(/\s+/g, '');
}

async function check(name) {
  const compact = unarmor(readFileSync(path.join(dir, name), 'utf8'));
  if (!compact) return { signature: false, error: 'not armored' };
  let verified;
  try {
    verified = await compactVerify(compact, async (header) => {
      const jwk = manifest.jwks.keys.find((k) => k.kid === header.kid && k.kty === 'OKP');
      if (!jwk) throw new Error('unknown key');
      return importJWK(jwk, 'EdDSA');
    }, { algorithms: ['EdDSA'] });
  } catch (error) {
    return { signature: false, error: error.code ?? error.message };
  }
  const header = verified.protectedHeader;
  let claims;
  try {
    claims = JSON.parse(new TextDecoder().decode(verified.payload));
  } catch {
    return { signature: true, claims: 'malformed' };
  }
  const { now, expect } = manifest;
  const wantTyp = claims.kind === 'lease' ? 'entitle-lease+jwt' : 'entitle-license+jwt';
  const problems = [];
  for (const field of ['iss', 'sub', 'jti', 'iat', 'exp', 'kind', 'org', 'product', 'version', 'machine', 'server_time']) {
    if (claims[field] === undefined) problems.push(`missing ${field}`);
  }
  if (problems.length) return { signature: true, claims: 'malformed', problems };
  if (header.typ !== wantTyp) problems.push('wrong_kind');
  if (claims.iss !== expect.issuer) problems.push('wrong_issuer');
  if (now >= claims.exp + LEEWAY) problems.push('expired');
  if (now + LEEWAY < (claims.nbf ?? claims.iat)) problems.push('not_yet_valid');
  if (claims.product !== expect.product) problems.push('wrong_product');
  const v = claims.version;
  const covers = v === '*' || v === expect.version || (v.endsWith('.*') && expect.version.startsWith(v.slice(0, -1)));
  if (!covers) problems.push('wrong_version');
  if (claims.machine !== expect.machine) problems.push('wrong_machine');
  return { signature: true, claims: problems[0] ?? 'valid', kid: header.kid, jti: claims.jti };
}

const results = {};
for (const name of Object.keys(manifest.outcomes)) {
  results[name] = await check(name);
}
console.log(JSON.stringify(results));
