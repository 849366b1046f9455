// The ERC-20 the EVM tests and benchmarks deploy, compiled with solc (npm) at run time.
// Two constructors: one supply to the deployer (tests), or an equal balance to each of a list
// of holders (benchmarks, so that many senders can transfer at once).
import { createRequire } from "node:module";

const BODY = `
  mapping(address => uint256) public balanceOf;
  event Transfer(address indexed from, address indexed to, uint256 value);
  CONSTRUCTOR
  function transfer(address to, uint256 value) external returns (bool) {
    require(balanceOf[msg.sender] >= value, "insufficient balance");
    balanceOf[msg.sender] -= value; balanceOf[to] += value; emit Transfer(msg.sender, to, value); return true;
  }`;

const CONSTRUCTORS = {
  deployer: "constructor(uint256 supply) { balanceOf[msg.sender] = supply; emit Transfer(address(0), msg.sender, supply); }",
  holders: "constructor(address[] memory holders, uint256 each) {\n    for (uint256 i = 0; i < holders.length; i++) { balanceOf[holders[i]] = each; emit Transfer(address(0), holders[i], each); }\n  }",
} as const;

export interface CompiledToken<Abi = unknown[]> {
  abi: Abi;
  /** 0x-prefixed creation bytecode. */
  bytecode: string;
}

export function compileErc20<Abi = unknown[]>(options: {
  constructor: keyof typeof CONSTRUCTORS;
  /** "cancun" by default; "shanghai" for what ganache 7 runs. */
  evmVersion?: string;
  optimize?: boolean;
}): CompiledToken<Abi> {
  const source = `// SPDX-License-Identifier: MIT\npragma solidity ^0.8.20;\ncontract Token {${BODY.replace("CONSTRUCTOR", CONSTRUCTORS[options.constructor])}\n}`;
  const solc = createRequire(import.meta.url)("solc") as { compile(input: string): string };
  const output = JSON.parse(solc.compile(JSON.stringify({
    language: "Solidity", sources: { "T.sol": { content: source } },
    settings: {
      evmVersion: options.evmVersion ?? "cancun",
      ...(options.optimize ? { optimizer: { enabled: true, runs: 200 } } : {}),
      outputSelection: { "*": { Token: ["abi", "evm.bytecode.object"] } },
    },
  }))) as { contracts?: Record<string, Record<string, { abi: Abi; evm: { bytecode: { object: string } } }>>; errors?: { severity: string; formattedMessage: string }[] };
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) throw new Error(`solc: ${errors.map((e) => e.formattedMessage).join("\n")}`);
  const token = output.contracts!["T.sol"]!["Token"]!;
  return { abi: token.abi, bytecode: `0x${token.evm.bytecode.object}` };
}
