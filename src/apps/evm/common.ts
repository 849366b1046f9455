// The ethereumjs Common (chain id, hardfork, parameters, crypto) of a Coco chain: Prague rules,
// libsecp256k1 sender recovery and the memoising keccak of crypto.ts.
import { createCustomCommon, Hardfork, Mainnet, type Common } from "@ethereumjs/common";
import { paramsBlock } from "@ethereumjs/block";
import { paramsTx } from "@ethereumjs/tx";
import { ecrecover, keccak256 } from "./crypto.js";
import { fastEipLookup, memoiseHardforkBlocks } from "./fast-paths.js";

/** A Common for the VM: ethereumjs may copy and change it as it likes. */
export function newChainCommon(chainId: number): Common {
  const common = createCustomCommon({ chainId, name: `coco-${chainId}` }, Mainnet, { hardfork: Hardfork.Prague, customCrypto: { ecrecover, keccak256 } });
  fastEipLookup(common);
  return common;
}

/**
 * The Common given to every decoded transaction and every block header. ethereumjs copies a
 * Common into each transaction and header and merges its params into the copy (JSON
 * round-trips and a params-cache rebuild: ~0.3 ms each, the largest cost per transaction).
 * This one already holds the tx and block params, is never changed (one hardfork, no
 * setHardfork), and hands out itself as its copy.
 */
export function sharedChainCommon(chainId: number): Common {
  const shared = newChainCommon(chainId);
  shared.updateParams(paramsTx);
  shared.updateParams(paramsBlock);
  memoiseHardforkBlocks(shared);
  shared.copy = () => shared;
  shared.updateParams = () => shared;
  return shared;
}
