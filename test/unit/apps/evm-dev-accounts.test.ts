// The sandbox's funded accounts are exactly the ones Hardhat and Anvil derive from the
// well-known development mnemonic (cross-checked with ethers' own HD wallet).
import { test } from "node:test";
import assert from "node:assert/strict";
import { HDNodeWallet, Mnemonic } from "ethers";
import { DEV_MNEMONIC, devAccounts } from "../../../src/apps/evm/index.js";

test("development account 0 is Hardhat's and Anvil's first account", () => {
  assert.equal(devAccounts(1)[0]!.address, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
});

test("the ten development accounts match ethers' derivation of the same mnemonic", () => {
  const mnemonic = Mnemonic.fromPhrase(DEV_MNEMONIC);
  const ours = devAccounts(10);
  for (let i = 0; i < 10; i++) {
    const wallet = HDNodeWallet.fromMnemonic(mnemonic, `m/44'/60'/0'/0/${i}`);
    assert.equal(ours[i]!.address, wallet.address);
    assert.equal(ours[i]!.privateKey, wallet.privateKey);
  }
});
