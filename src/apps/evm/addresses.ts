// Which Ethereum addresses each Coco user controls, and (under the "bound" address policy) what
// that entitles it to: a user binds an address by signing, with that address's key, a message
// naming the user and the chain (EIP-191 personal_sign, as wallets sign); then only that user
// may send transactions from it or run calls as it. See docs/evm.md, "Users and addresses".
import { ecrecover, fromRPCSig, hashPersonalMessage, publicToAddress } from "@ethereumjs/util";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import type { Transaction } from "../../kv/index.js";
import type { EndpointRegistry, HandlerResult } from "../../rpc/index.js";
import type { GovernedChain } from "./genesis.js";
import { RpcError, RpcErrorCodes } from "./errors.js";
import { data } from "./hex.js";

/** Address (20 bytes) -> the id of the Coco user that bound it (UTF-8). */
export const ADDRESS_OWNERS = "evm.address_owners";
/** User id (UTF-8) -> JSON array of its addresses, in the order bound (the first is its default `from`). */
export const USER_ADDRESSES = "evm.user_addresses";
export const ADDRESSES_PATH = "/app/evm/addresses";
/** Addresses one user may bind. */
export const ADDRESSES_PER_USER_MAX = 64;

/**
 * "open": any user may send from any address it holds the key of, call as any address, and see
 * everything (the behaviour before bindings). "bound": only from and as its bound addresses, and
 * it sees only what visibility.ts lets it.
 */
export type AddressPolicy = "open" | "bound";

/** The message an address's key signs to bind it (EIP-191 personal_sign of these UTF-8 bytes). */
export function bindingMessage(address: string, userId: string, chainId: bigint): string {
  return `Coco: bind Ethereum address ${address.toLowerCase()} to Coco user ${userId} on chain ${chainId}`;
}

/** The EIP-191 personal_sign of `message` by a private key (0x-hex), as wallets answer it: r ‖ s ‖ v (27/28). */
export function personalSign(message: string, privateKey: string): string {
  const signature = secp256k1.sign(hashPersonalMessage(Buffer.from(message, "utf8")), Buffer.from(privateKey.replace(/^0x/, ""), "hex"), { prehash: false, format: "recovered" });
  return `0x${Buffer.from(signature.subarray(1)).toString("hex")}${(27 + signature[0]!).toString(16)}`;
}

export function addressesOf(tx: Transaction, userId: string): string[] {
  const raw = tx.get(USER_ADDRESSES, Buffer.from(userId));
  return raw === undefined ? [] : (JSON.parse(raw.toString("utf8")) as string[]);
}

export function ownerOf(tx: Transaction, address: Uint8Array): string | undefined {
  return tx.get(ADDRESS_OWNERS, Buffer.from(address))?.toString("utf8");
}

/** Refuses (JSON-RPC) an address that is not one of the caller's. */
export function requireCallerAddress(tx: Transaction, callerId: string | undefined, address: Uint8Array, role: string): void {
  if (callerId !== undefined && ownerOf(tx, address) === callerId) return;
  throw new RpcError(RpcErrorCodes.ServerError,
    `${role} ${data(address)} is not one of your addresses: bind it to your Coco user first (POST ${ADDRESSES_PATH}, docs/evm.md)`);
}

const error = (status: number, code: string, message: string): HandlerResult => ({ status, body: { error: { code, message } } });

function parseBinding(body: Buffer): { address: string; signature: string } | HandlerResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return error(400, "InvalidInput", "the body must be JSON: {\"address\": \"0x…\", \"signature\": \"0x…\"}");
  }
  const { address, signature, ...rest } = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>;
  if (Object.keys(rest).length > 0) return error(400, "InvalidInput", `unknown field ${Object.keys(rest)[0]}: only "address" and "signature"`);
  if (typeof address !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(address)) return error(400, "InvalidInput", "address must be a 0x-prefixed 20-byte hex address");
  if (typeof signature !== "string" || !/^0x[0-9a-fA-F]{130}$/.test(signature)) return error(400, "InvalidInput", "signature must be a 65-byte 0x-hex signature (personal_sign)");
  return { address: address.toLowerCase(), signature };
}

/** The address whose key signed `message` (EIP-191), or undefined for a malformed signature. */
function signer(message: string, signature: string): string | undefined {
  try {
    const { v, r, s } = fromRPCSig(signature as `0x${string}`);
    return data(publicToAddress(ecrecover(hashPersonalMessage(Buffer.from(message, "utf8")), v, r, s)));
  } catch {
    return undefined;
  }
}

const isAnswer = (value: unknown): value is HandlerResult => typeof value === "object" && value !== null && "status" in value;

/** Installs POST/GET /app/evm/addresses and DELETE /app/evm/addresses/{address} (users with their certificate). */
export function installAddressEndpoints(registry: EndpointRegistry, chains: GovernedChain): void {
  registry.install({
    method: "POST", path: ADDRESSES_PATH, mode: "readwrite", authPolicies: ["user_cert"],
    summary: "Bind an Ethereum address to the calling user, proven by the address's signature of the binding message",
    handler: ({ caller, request, tx }) => {
      if (caller.policy !== "user_cert") return error(401, "InvalidAuthenticationInfo", "present a user certificate");
      const chain = chains.forTransaction(tx);
      if (chain === undefined) return error(400, "EvmChainNotConfigured", "the EVM chain is not configured yet (set_evm_genesis): bindings name its chain id");
      const binding = parseBinding(request.body);
      if (isAnswer(binding)) return binding;
      const message = bindingMessage(binding.address, caller.id, chain.chainId);
      if (signer(message, binding.signature) !== binding.address) {
        return error(400, "InvalidSignature", `the signature is not the address's personal_sign of: ${message}`);
      }
      const key = Buffer.from(binding.address.slice(2), "hex");
      const owner = ownerOf(tx, key);
      if (owner === caller.id) return { status: 200, body: { address: binding.address, user_id: caller.id } };
      if (owner !== undefined) return error(409, "AddressBound", `${binding.address} is bound to another user: it must unbind it first`);
      const mine = addressesOf(tx, caller.id);
      if (mine.length >= ADDRESSES_PER_USER_MAX) return error(400, "TooManyAddresses", `a user may bind at most ${ADDRESSES_PER_USER_MAX} addresses`);
      tx.set(ADDRESS_OWNERS, key, Buffer.from(caller.id));
      tx.set(USER_ADDRESSES, Buffer.from(caller.id), Buffer.from(JSON.stringify([...mine, binding.address])));
      return { status: 201, body: { address: binding.address, user_id: caller.id } };
    },
  });
  registry.install({
    method: "GET", path: ADDRESSES_PATH, mode: "readonly", authPolicies: ["user_cert"],
    summary: "The calling user's bound Ethereum addresses (the first is its default `from`)",
    handler: ({ caller, tx }) => caller.policy !== "user_cert"
      ? error(401, "InvalidAuthenticationInfo", "present a user certificate")
      : { body: { addresses: addressesOf(tx, caller.id) } },
  });
  registry.install({
    method: "DELETE", path: `${ADDRESSES_PATH}/{address}`, mode: "readwrite", authPolicies: ["user_cert"],
    summary: "Unbind one of the calling user's Ethereum addresses",
    handler: ({ caller, params, tx }) => {
      if (caller.policy !== "user_cert") return error(401, "InvalidAuthenticationInfo", "present a user certificate");
      const address = (params["address"] ?? "").toLowerCase();
      const mine = addressesOf(tx, caller.id);
      if (!mine.includes(address)) return error(404, "ResourceNotFound", `${address} is not bound to the calling user`);
      tx.delete(ADDRESS_OWNERS, Buffer.from(address.slice(2), "hex"));
      tx.set(USER_ADDRESSES, Buffer.from(caller.id), Buffer.from(JSON.stringify(mine.filter((a) => a !== address))));
      return { status: 204 };
    },
  });
}
