// SPDX-License-Identifier: Apache-2.0
// Verify a key-based ("managed key") Sigstore bundle with @sigstore/verify,
// offline: empty trust root, the given public key for any hint, no tlog,
// CT log or timestamp required. The top-level `sigstore.verify` cannot do this
// (it always loads TUF).
//
// usage: node verify_bundle.mjs BUNDLE.json PUBLIC_KEY.pem
// exit 0: verified; exit 1: rejected (reason on stderr); exit 2: usage/IO error.
import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { bundleFromJSON } from '@sigstore/bundle';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';

const [bundlePath, keyPath] = process.argv.slice(2);
if (!bundlePath || !keyPath) {
  process.stderr.write('usage: node verify_bundle.mjs BUNDLE.json PUBLIC_KEY.pem\n');
  process.exit(2);
}

let bundleJSON;
let publicKey;
try {
  bundleJSON = JSON.parse(readFileSync(bundlePath, 'utf8'));
  publicKey = createPublicKey(readFileSync(keyPath, 'utf8'));
} catch (e) {
  process.stderr.write(`cannot read input: ${e.message}\n`);
  process.exit(2);
}

try {
  const emptyRoot = { tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] };
  // cosign semantics: the hint (keyid) is not trusted, the given key is used for any hint.
  const trust = toTrustMaterial(emptyRoot, () => ({ publicKey, validFor: () => true }));
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
  verifier.verify(toSignedEntity(bundleFromJSON(bundleJSON)));
} catch (e) {
  const code = e && e.code ? `${e.code}: ` : '';
  process.stderr.write(`rejected: ${code}${e && e.message ? e.message : String(e)}\n`);
  process.exit(1);
}
process.stdout.write('verified\n');
