// A real OpenID provider (oidc-provider, OpenID Certified) for the SSO tests.
//
// Environment: PORT (loopback port to listen on), KEY_DIR (where signing keys are kept
// across restarts), KEYS (comma-separated key ids to publish and sign with; the first
// signs), CONSOLE_REDIRECT (when set: the console's confidential client `fieldsync-console`
// with that redirect URI). Restarting with other KEYS on the same port rotates keys.
//
// Accounts: any login is accepted by the development interactions; the claims below decide
// who the login is. Clients: `fieldsync-app` (the device app, public, PKCE) and
// `other-app` (a token for another audience).
import Provider from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const port = Number(process.env.PORT);
const keyDir = process.env.KEY_DIR;
const kids = (process.env.KEYS || 'k1').split(',');
mkdirSync(keyDir, { recursive: true });

function key(kid) {
  const file = join(keyDir, `${kid}.json`);
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
    writeFileSync(file, JSON.stringify(jwk));
  }
  return JSON.parse(readFileSync(file, 'utf8'));
}

const people = {
  tech1: { name: 'Ana Torres', groups: ['staff', 'fs-technicians'], ofsc_resource: 'tech1' },
  super1: { name: 'Sam Supervisor', groups: ['fs-supervisors'], ofsc_resource: 'super1' },
  newtech: { name: 'New Tech', groups: ['fs-technicians'], ofsc_resource: 'tech2' },
  nogroup: { name: 'No Group', groups: ['staff'], ofsc_resource: 'tech3' },
  // Gets 2-second ID tokens, for the expiry test.
  shorty: { name: 'Short Lived', groups: ['fs-technicians'], ofsc_resource: 'tech3', preferred_username: 'tech3' },
};

const issuer = `http://127.0.0.1:${port}`;
const redirect = 'http://127.0.0.1/callback';
const publicClient = (id) => ({
  client_id: id,
  token_endpoint_auth_method: 'none',
  redirect_uris: [redirect],
  grant_types: ['authorization_code'],
  response_types: ['code'],
});

const clients = [publicClient('fieldsync-app'), publicClient('other-app')];
if (process.env.CONSOLE_REDIRECT) {
  clients.push({
    client_id: 'fieldsync-console',
    client_secret: 'console-secret-for-tests-only',
    token_endpoint_auth_method: 'client_secret_post',
    redirect_uris: [process.env.CONSOLE_REDIRECT],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  });
}

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: kids.map(key) },
  claims: { openid: ['sub'], profile: ['preferred_username', 'name', 'groups', 'ofsc_resource'] },
  // The profile claims go into the ID token itself, as Entra ID and Okta can be set to do.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true }, revocation: { enabled: true } },
  ttl: {
    IdToken: (ctx, token) => (token.available.sub === 'shorty' ? 2 : 3600),
  },
  async findAccount(ctx, id) {
    const who = people[id];
    if (!who) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: who.preferred_username || id, ...who };
      },
    };
  },
  // First-party app: no consent screen; the grant covers what the app asks for.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile');
    grant.addOIDCClaims(['preferred_username', 'name', 'groups', 'ofsc_resource']);
    await grant.save();
    return grant;
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer} with keys ${kids.join(',')}`);
});
