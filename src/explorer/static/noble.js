// @ts-nocheck: the import below is the URL the node serves @noble/curves at (routes.ts), which
// the type checker cannot resolve; the export is typed by its annotation.
// The one check WebCrypto cannot make (see receipt.js): ECDSA P-384 over a digest used as is.
import { p384 } from "/explorer/vendor/noble-curves/nist.js";

/** @type {import("./receipt.js").PrehashedVerifier} */
export const verifyPrehashed = (point, digest, der) => p384.verify(der, digest, point, { prehash: false, format: "der", lowS: false });
