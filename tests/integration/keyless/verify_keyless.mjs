// SPDX-License-Identifier: Apache-2.0
// Verify a keyless Sigstore bundle with @sigstore/verify, offline, against a
// given trusted_root.json (the top-level `sigstore.verify` always loads TUF).
// Full keyless checks: Fulcio chain, one SCT, one Rekor entry (SET and
// inclusion proof), one verified time (the entry's integrated time), the
// signature, and the certificate's SAN and OIDC issuer.
//
// usage: node verify_keyless.mjs BUNDLE.json TRUSTED_ROOT.json IDENTITY ISSUER [MODULES_DIR]
// exit 0: verified; exit 1: rejected (reason on stderr); exit 2: usage/IO error.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const [bundlePath, rootPath, identity, issuer, modules] = process.argv.slice(2);
if (!bundlePath || !rootPath || !identity || !issuer) {
  process.stderr.write('usage: node verify_keyless.mjs BUNDLE TRUSTED_ROOT IDENTITY ISSUER\n');
  process.exit(2);
}
// The npm packages live in tests/interop/node_modules.
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(modules || resolve(here, '../../interop'), 'package.json'));
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

let bundleJSON;
let rootJSON;
try {
  bundleJSON = JSON.parse(readFileSync(bundlePath, 'utf8'));
  rootJSON = JSON.parse(readFileSync(rootPath, 'utf8'));
} catch (e) {
  process.stderr.write(`cannot read input: ${e.message}\n`);
  process.exit(2);
}

try {
  const trust = toTrustMaterial(TrustedRoot.fromJSON(rootJSON));
  const verifier = new Verifier(trust, { tlogThreshold: 1, ctlogThreshold: 1, timestampThreshold: 1 });
  const signer = verifier.verify(toSignedEntity(bundleFromJSON(bundleJSON)), {
    // sigstore-js matches the SAN as a regular expression; anchor and escape it
    // so the check is exact, like ours.
    subjectAlternativeName: new RegExp(`^${identity.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`),
    extensions: { issuer },
  });
  process.stdout.write(`verified: ${signer.identity?.subjectAlternativeName}\n`);
} catch (e) {
  const code = e && e.code ? `${e.code}: ` : '';
  process.stderr.write(`rejected: ${code}${e && e.message ? e.message : String(e)}\n`);
  process.exit(1);
}
