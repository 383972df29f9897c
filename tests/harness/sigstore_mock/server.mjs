// SPDX-License-Identifier: Apache-2.0
// A local keyless Sigstore stack for tests: Fulcio (with a CT log) and Rekor v1
// from npm's @sigstore/mock, served over plain HTTP on 127.0.0.1.
//
// @sigstore/mock ships only nock interceptors and handler functions, so this
// file is the HTTP wrapper. It stands in for a real private Sigstore deployment
// (which cannot run here); where the mock is laxer than the real services we
// add the real checks back (OIDC token signature, CSR proof of possession,
// DSSE signature before logging) rather than loosen any client.
//
// usage: node server.mjs --out DIR --oidc-public-key PEM [--port 0] [--rekor-port 0]
//                        [--modules DIR_WITH_package.json]
// Writes DIR/trusted_root.json, DIR/signing_config.json,
// DIR/client_trust_config.json and, last (atomically), DIR/ready.json with the
// URLs. Runs until SIGTERM/SIGINT.
import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { createServer } from 'node:http';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    out: { type: 'string' },
    'oidc-public-key': { type: 'string' },
    port: { type: 'string', default: '0' },
    'rekor-port': { type: 'string', default: '0' },
    modules: { type: 'string', default: resolve(HERE, '../../interop') },
  },
});
if (!args.out || !args['oidc-public-key']) {
  process.stderr.write('usage: node server.mjs --out DIR --oidc-public-key PEM [--port N]\n');
  process.exit(2);
}

// The npm packages live in tests/interop/node_modules (one package.json for node checks).
const require = createRequire(join(args.modules, 'package.json'));
const nodeCrypto = require('crypto');
// The mock's Rekor always answers with an inclusion proof for index 0 of a
// size-1 tree, but draws the entry's logIndex (and the checkpoint's tree id)
// from crypto.randomInt. Pinning it to 0 makes the proof consistent with the
// entry; without it every inclusion proof is (rightly) rejected by clients.
nodeCrypto.randomInt = () => 0;
const mock = require('@sigstore/mock');
const x509 = require('@peculiar/x509');
const jose = require('jose');
const canonicalize = require('canonicalize');

const OPERATOR = 'attestor-test';
const oidcKey = createPublicKey(readFileSync(args['oidc-public-key']));
const log = (msg) => process.stderr.write(`${new Date().toISOString()} ${msg}\n`);

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 4 * 1024 * 1024) throw new HttpError(413, 'request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `body is not JSON: ${e.message}`);
  }
}

// --- Fulcio ---------------------------------------------------------------------

// Real Fulcio verifies the token against the issuer's keys; the mock only
// decodes it. Tokens here are signed by the test harness's OIDC key.
async function checkToken(token) {
  try {
    const { payload } = await jose.jwtVerify(token, oidcKey, {
      audience: 'sigstore',
      requiredClaims: ['iss', 'sub', 'iat', 'exp'],
    });
    if (payload.email !== undefined && payload.email_verified !== true) {
      throw new Error('email not verified');
    }
  } catch (e) {
    throw new HttpError(401, `identity token rejected: ${e.message}`);
  }
}

// sigstore-python speaks Fulcio's v2 REST API: the token in the Authorization
// header, the CSR as base64 of its PEM. The mock wants both in the body, the
// CSR as PEM.
async function toMockFulcioBody(req, text) {
  const auth = req.headers.authorization || '';
  const match = /^Bearer (\S+)$/.exec(auth);
  const body = parseJSON(text);
  const token = match ? match[1] : body?.credentials?.oidcIdentityToken;
  if (!token) throw new HttpError(401, 'no identity token');
  await checkToken(token);
  if (typeof body.certificateSigningRequest !== 'string') {
    throw new HttpError(400, 'only certificateSigningRequest is supported');
  }
  const pem = Buffer.from(body.certificateSigningRequest, 'base64').toString('utf8');
  let csr;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (e) {
    throw new HttpError(400, `bad CSR: ${e.message}`);
  }
  // Proof of possession of the key to be certified (Fulcio checks it too).
  if (!(await csr.verify())) throw new HttpError(400, 'CSR signature does not verify');
  return JSON.stringify({
    credentials: { oidcIdentityToken: token },
    certificateSigningRequest: pem,
  });
}

// --- Rekor v1 -------------------------------------------------------------------

const sha256hex = (data) => createHash('sha256').update(data).digest('hex');

function pae(type, payload) {
  const t = Buffer.from(type, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${t.length} `),
    t,
    Buffer.from(` ${payload.length} `),
    payload,
  ]);
}

// Rekor stores a dsse v0.0.1 entry canonicalized (types/dsse/v0.0.1): hashes
// of the envelope and payload plus the signatures with their verifiers, after
// checking each signature. The mock would log the proposed entry verbatim.
function canonicalDsse(entry) {
  const content = entry?.spec?.proposedContent;
  if (!content || typeof content.envelope !== 'string' || !Array.isArray(content.verifiers)) {
    throw new HttpError(400, 'dsse entry needs spec.proposedContent.{envelope,verifiers}');
  }
  const envelope = parseJSON(content.envelope);
  const payload = Buffer.from(envelope.payload, 'base64');
  const signed = pae(envelope.payloadType, payload);
  const keys = content.verifiers.map((v) => {
    const pem = Buffer.from(v, 'base64').toString('utf8');
    return pem.includes('CERTIFICATE')
      ? new nodeCrypto.X509Certificate(pem).publicKey
      : createPublicKey(pem);
  });
  const signatures = (envelope.signatures || []).map((s) => {
    const sig = Buffer.from(s.sig, 'base64');
    const i = keys.findIndex((k) => cryptoVerify('sha256', signed, k, sig));
    if (i < 0) throw new HttpError(400, 'DSSE signature does not verify with any verifier');
    return { signature: sig.toString('base64'), verifier: content.verifiers[i] };
  });
  if (signatures.length === 0) throw new HttpError(400, 'DSSE envelope has no signature');
  return {
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha256hex(content.envelope) },
      payloadHash: { algorithm: 'sha256', value: sha256hex(payload) },
      signatures,
    },
  };
}

function toMockRekorBody(text) {
  const entry = parseJSON(text);
  if (entry.kind === 'dsse' && entry.apiVersion === '0.0.1') {
    return canonicalize(canonicalDsse(entry));
  }
  if (entry.kind === 'hashedrekord' && entry.apiVersion === '0.0.1') {
    // Already in its canonical shape. Unlike real Rekor, the signature over the
    // pre-hashed artifact is not checked here (node cannot verify a prehash);
    // attestor signs DSSE, so only message-signature tests would notice.
    return text;
  }
  throw new HttpError(400, `unsupported entry ${entry.kind}/${entry.apiVersion}`);
}

// --- HTTP -----------------------------------------------------------------------

function serve(name, routes) {
  return createServer(async (req, res) => {
    const path = (req.url || '').split('?')[0].replace(/\/+$/, '');
    const route = req.method === 'POST' ? routes[path] : undefined;
    let status = 404;
    let response = `no route ${req.method} ${path}`;
    let contentType = 'text/plain';
    try {
      if (route) {
        const text = await readBody(req);
        const out = await route.handler.fn(await route.adapt(req, text));
        status = out.statusCode;
        response = out.response;
        contentType = out.contentType || 'text/plain';
      }
    } catch (e) {
      status = e instanceof HttpError ? e.status : 500;
      response = e.message;
    }
    log(`${name} ${req.method} ${path} -> ${status}${status >= 400 ? `: ${response}` : ''}`);
    if (status >= 400 && contentType === 'text/plain') {
      // Fulcio and Rekor clients look for a JSON {"message"} on errors.
      response = JSON.stringify({ code: status, message: String(response) });
      contentType = 'application/json';
    }
    res.writeHead(status, { 'Content-Type': contentType });
    res.end(response);
  });
}

function listen(server, port) {
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(Number(port), '127.0.0.1', () => ok(server.address().port));
  });
}

const routes = { fulcio: {}, rekor: {} };
const fulcioServer = serve('fulcio', routes.fulcio);
const rekorServer = serve('rekor', routes.rekor);
const fulcioURL = `http://127.0.0.1:${await listen(fulcioServer, args.port)}`;
const rekorURL = `http://127.0.0.1:${await listen(rekorServer, args['rekor-port'])}`;

// Validity starts a minute back (whole seconds) so clock granularity never puts
// the first certificate or log entry before it.
const start = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000).toISOString();
const ctKeys = nodeCrypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const tlogKeys = nodeCrypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const caKeys = nodeCrypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const ctlog = await mock.initializeCTLog(ctKeys);
const ca = await mock.initializeCA(caKeys, ctlog);
const tlog = await mock.initializeTLog(rekorURL, tlogKeys);
routes.fulcio['/api/v2/signingCert'] = {
  handler: mock.fulcioHandler(ca),
  adapt: toMockFulcioBody,
};
routes.rekor['/api/v1/log/entries'] = {
  handler: mock.rekorHandler(tlog),
  adapt: (_req, text) => toMockRekorBody(text),
};

const b64 = (buf) => Buffer.from(buf).toString('base64');
const spki = (key) => key.export({ format: 'der', type: 'spki' });
const logKey = (url, key) => ({
  baseUrl: url,
  hashAlgorithm: 'SHA2_256',
  publicKey: {
    rawBytes: b64(spki(key)),
    keyDetails: 'PKIX_ECDSA_P256_SHA_256',
    validFor: { start },
  },
  logId: { keyId: b64(createHash('sha256').update(spki(key)).digest()) },
});
const trustedRoot = {
  mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  tlogs: [logKey(rekorURL, tlogKeys.publicKey)],
  certificateAuthorities: [
    {
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
      uri: fulcioURL,
      certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
      validFor: { start },
    },
  ],
  // The mock's CT log has no URL of its own; Fulcio embeds its SCTs.
  ctlogs: [logKey(fulcioURL, ctKeys.publicKey)],
  // No TSA: the mock TSA speaks JSON, not RFC 3161.
  timestampAuthorities: [],
};
const service = (url) => ({ url, majorApiVersion: 1, validFor: { start }, operator: OPERATOR });
const signingConfig = {
  mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
  caUrls: [service(fulcioURL)],
  oidcUrls: [],
  rekorTlogUrls: [service(rekorURL)],
  rekorTlogConfig: { selector: 'ANY' },
  tsaUrls: [],
  tsaConfig: { selector: 'ANY' },
};
const clientTrustConfig = {
  mediaType: 'application/vnd.dev.sigstore.clienttrustconfig.v0.1+json',
  trustedRoot,
  signingConfig,
};

const write = (name, doc) => {
  const path = join(args.out, name);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(doc, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
  return path;
};
const ready = {
  fulcio_url: fulcioURL,
  rekor_url: rekorURL,
  trusted_root: write('trusted_root.json', trustedRoot),
  signing_config: write('signing_config.json', signingConfig),
  client_trust_config: write('client_trust_config.json', clientTrustConfig),
  pid: process.pid,
};
write('ready.json', ready);
log(`ready: fulcio ${fulcioURL}, rekor ${rekorURL}`);

const shutdown = () => {
  fulcioServer.close();
  rekorServer.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
