// JSON-RPC 2.0 errors as Ethereum clients expect them: the standard codes, geth's -32000 for
// rejected transactions with geth's messages (wallets match on them), and code 3 with the
// revert data for reverted calls.

export const RpcErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** geth's code for a rejected transaction or an unavailable resource. */
  ServerError: -32000,
  /** EIP-1474's "limit exceeded" (block range or result count of eth_getLogs). */
  LimitExceeded: -32005,
  /** geth's code for a reverted eth_call / eth_estimateGas; `data` carries the revert data. */
  ExecutionReverted: 3,
} as const;

export class RpcError extends Error {
  constructor(readonly code: number, message: string, readonly data?: string) {
    super(message);
    this.name = "RpcError";
  }
}

/** Decodes Solidity's `Error(string)` revert payload, as geth does in its error message. */
export function revertReason(returnValue: Uint8Array): string | undefined {
  const bytes = Buffer.from(returnValue);
  if (bytes.length < 4 + 64 || bytes.readUInt32BE(0) !== 0x08c379a0) return undefined;
  const length = Number(bytes.readBigUInt64BE(4 + 32 + 24));
  if (4 + 64 + length > bytes.length) return undefined;
  return bytes.subarray(4 + 64, 4 + 64 + length).toString("utf8");
}

export function revertError(returnValue: Uint8Array): RpcError {
  const reason = revertReason(returnValue);
  const data = `0x${Buffer.from(returnValue).toString("hex")}`;
  return new RpcError(RpcErrorCodes.ExecutionReverted, reason === undefined ? "execution reverted" : `execution reverted: ${reason}`, data);
}
