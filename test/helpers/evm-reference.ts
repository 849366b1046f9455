// Worker thread for test/unit/apps/evm-differential.test.ts: runs signed transactions through a
// plain @ethereumjs/vm (its own Merkle state manager, stock Common, none of Coco's fast paths:
// a worker has its own module instances) and answers what each did, to compare with Coco's app.
import { parentPort, workerData } from "node:worker_threads";
import { createCustomCommon, Hardfork, Mainnet } from "@ethereumjs/common";
import { createBlock } from "@ethereumjs/block";
import { createTxFromRLP } from "@ethereumjs/tx";
import { createVM, runTx } from "@ethereumjs/vm";
import { Account, createAddressFromString } from "@ethereumjs/util";

export interface ReferenceInput {
  chainId: number;
  alloc: { address: string; balanceWei: string }[];
  transactions: { raw: string; number: string; timestamp: string }[];
  baseFeeWei: string;
  gasLimit: string;
  reads: { address: string }[];
}

export interface ReferenceOutcome { status: string; gasUsed: string; contractAddress: string | null; logs: { address: string; topics: string[]; data: string }[] }
export interface ReferenceOutput { outcomes: ReferenceOutcome[]; accounts: { balance: string; nonce: string }[] }

const hex = (bytes: Uint8Array): string => `0x${Buffer.from(bytes).toString("hex")}`;
const quantity = (value: bigint): string => `0x${value.toString(16)}`;

async function run(input: ReferenceInput): Promise<ReferenceOutput> {
  const common = createCustomCommon({ chainId: input.chainId }, Mainnet, { hardfork: Hardfork.Prague });
  const vm = await createVM({ common });
  for (const { address, balanceWei } of input.alloc) await vm.stateManager.putAccount(createAddressFromString(address), new Account(0n, BigInt(balanceWei)));
  const outcomes: ReferenceOutcome[] = [];
  for (const t of input.transactions) {
    const tx = createTxFromRLP(Buffer.from(t.raw.slice(2), "hex"), { common });
    const block = createBlock({ header: { number: BigInt(t.number), timestamp: BigInt(t.timestamp), gasLimit: BigInt(input.gasLimit), baseFeePerGas: BigInt(input.baseFeeWei) } },
      { common, skipConsensusFormatValidation: true });
    const result = await runTx(vm, { tx, block });
    outcomes.push({
      status: result.execResult.exceptionError === undefined ? "0x1" : "0x0",
      gasUsed: quantity(result.totalGasSpent),
      contractAddress: result.createdAddress?.toString() ?? null,
      logs: result.receipt.logs.map(([address, topics, data]) => ({ address: hex(address), topics: topics.map(hex), data: hex(data) })),
    });
  }
  const accounts = [];
  for (const { address } of input.reads) {
    const account = await vm.stateManager.getAccount(createAddressFromString(address));
    accounts.push({ balance: quantity(account?.balance ?? 0n), nonce: quantity(account?.nonce ?? 0n) });
  }
  return { outcomes, accounts };
}

run(workerData as ReferenceInput).then((output) => parentPort!.postMessage(output), (error: unknown) => parentPort!.postMessage({ error: String((error as Error).stack ?? error) }));
