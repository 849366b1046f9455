// A recovery member's step in a disaster recovery, as CCF's tooling does it: fetch the member's
// encrypted share from the recovering service, decrypt it with the member's encryption private
// key (only the member holds it), and submit it, COSE-signed with the member's signing key.
import { rsaOaepDecrypt } from "../crypto/index.js";
import type { GovernanceClient, RecoveryShareResult } from "./gov.js";

/** Decrypts a base64 encrypted recovery share (RSA-OAEP-SHA256) with the member's encryption private key. */
export function decryptRecoveryShare(encryptedShareBase64: string, memberEncryptionPrivateKeyPem: string): Buffer {
  return rsaOaepDecrypt(memberEncryptionPrivateKeyPem, Buffer.from(encryptedShareBase64, "base64"));
}

/** Fetches, decrypts and submits this member's recovery share; the plaintext share is wiped after. */
export async function submitMemberRecoveryShare(client: GovernanceClient, memberEncryptionPrivateKeyPem: string): Promise<RecoveryShareResult> {
  const share = decryptRecoveryShare(await client.encryptedRecoveryShare(), memberEncryptionPrivateKeyPem);
  try {
    return await client.submitRecoveryShare(share);
  } finally {
    share.fill(0);
  }
}
