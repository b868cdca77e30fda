#!/usr/bin/env node
// Introspects a latchkey access token with panva's openid-client (v6), the
// way a Node resource server would: discovery from the issuer URL, client
// authentication with HTTP Basic (ClientSecretBasic), RFC 7662
// introspection. Also introspects a garbage token, which must be inactive.
//
//   node openid_client_introspect.mjs BASE_URL CLIENT_ID CLIENT_SECRET ACCESS_TOKEN
//
// BASE_URL must be latchkey's issuer (LATCHKEY_ISSUER or LATCHKEY_PUBLIC_URL,
// else http://<listen address>): openid-client refuses discovered metadata
// whose issuer differs from the URL it was asked to discover. The client comes
// from `latchkey clients create NAME`. Exit 0 only on success; 1 when the
// server's answers are wrong; 2 for bad arguments.

import * as client from 'openid-client';

function fail(message, code = 1) {
  console.log(`FAIL: openid-client introspection: ${message}`);
  process.exit(code);
}

const args = process.argv.slice(2);
if (args.length !== 4) {
  console.error('usage: node openid_client_introspect.mjs BASE_URL CLIENT_ID CLIENT_SECRET ACCESS_TOKEN');
  process.exit(2);
}
const [baseUrl, clientId, clientSecret, accessToken] = args;

let server;
try {
  server = new URL(baseUrl);
} catch {
  fail(`BASE_URL is not a URL: ${baseUrl}`, 2);
}

function describe(error) {
  const parts = [`${error.name}: ${error.message}`];
  if (error.code) parts.push(`code=${error.code}`);
  if (error.error) parts.push(`error=${error.error}`);
  if (error.status) parts.push(`status=${error.status}`);
  if (error.cause) parts.push(`cause=${JSON.stringify(error.cause)}`);
  return parts.join(' ');
}

let config;
try {
  // The issuer is plain http (a local server), so insecure requests must be
  // allowed explicitly; the library refuses http otherwise.
  config = await client.discovery(
    server,
    clientId,
    undefined,
    client.ClientSecretBasic(clientSecret),
    { execute: [client.allowInsecureRequests] },
  );
} catch (error) {
  fail(`discovery of ${server.href} failed: ${describe(error)}`);
}

const metadata = config.serverMetadata();
console.log(`discovered issuer ${metadata.issuer}, introspection_endpoint ${metadata.introspection_endpoint}`);
if (!metadata.introspection_endpoint) {
  fail('the discovery document names no introspection_endpoint');
}

let live;
try {
  live = await client.tokenIntrospection(config, accessToken);
} catch (error) {
  fail(`introspecting the access token failed: ${describe(error)}`);
}
console.log(`access token: ${JSON.stringify(live)}`);

let garbage;
try {
  garbage = await client.tokenIntrospection(config, 'not-a-token.' + Date.now());
} catch (error) {
  fail(`introspecting a garbage token failed: ${describe(error)}`);
}
console.log(`garbage token: ${JSON.stringify(garbage)}`);

if (live.active !== true) {
  fail(`the access token is not active: ${JSON.stringify(live)}`);
}
for (const claim of ['sub', 'username']) {
  if (typeof live[claim] !== 'string' || live[claim].length === 0) {
    fail(`the active answer has no ${claim}: ${JSON.stringify(live)}`);
  }
}
if (garbage.active !== false) {
  fail(`a garbage token is not inactive: ${JSON.stringify(garbage)}`);
}

console.log(
  `OK: openid-client discovered ${metadata.issuer}, introspected the access token as active ` +
    `(sub ${live.sub}, username ${live.username}) and a garbage token as inactive`,
);
process.exit(0);
