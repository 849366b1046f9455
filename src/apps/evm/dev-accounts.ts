// The development accounts every Ethereum tool knows: the first accounts of the mnemonic
// "test test ... junk" on the path m/44'/60'/0'/0/i, as Hardhat and Anvil fund them. The
// sandbox funds them so that examples and tests written for those tools work unchanged.
import { HDKey } from "@scure/bip32";
import { mnemonicToSeedSync } from "@scure/bip39";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { keccak_256 } from "@noble/hashes/sha3.js";

export const DEV_MNEMONIC = "test test test test test test test test test test test junk";

export interface DevAccount {
  readonly address: string;
  readonly privateKey: string;
}

/** Ethereum address (EIP-55 checksummed) of a secp256k1 private key. */
export function addressOfPrivateKey(privateKey: Uint8Array): string {
  const publicKey = secp256k1.getPublicKey(privateKey, false).subarray(1);
  const hex = Buffer.from(keccak_256(publicKey).subarray(12)).toString("hex");
  const hashHex = Buffer.from(keccak_256(Buffer.from(hex, "ascii"))).toString("hex");
  let out = "0x";
  for (let i = 0; i < 40; i++) out += parseInt(hashHex[i]!, 16) >= 8 ? hex[i]!.toUpperCase() : hex[i]!;
  return out;
}

export function devAccounts(count = 10, mnemonic = DEV_MNEMONIC): DevAccount[] {
  const root = HDKey.fromMasterSeed(mnemonicToSeedSync(mnemonic));
  const accounts: DevAccount[] = [];
  for (let i = 0; i < count; i++) {
    const key = root.derive(`m/44'/60'/0'/0/${i}`).privateKey!;
    accounts.push({ address: addressOfPrivateKey(key), privateKey: `0x${Buffer.from(key).toString("hex")}` });
  }
  return accounts;
}
