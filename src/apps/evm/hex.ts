// Ethereum JSON-RPC encodings: QUANTITY (0x-prefixed, no leading zeros) and DATA (0x-prefixed,
// two hex digits per byte), and the parsers that turn client input into typed values or a
// -32602 error naming the parameter.
import { RpcError, RpcErrorCodes } from "./errors.js";

export const quantity = (value: bigint | number): string => `0x${value.toString(16)}`;
export const data = (bytes: Uint8Array): string => `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")}`;
export const ZERO_HASH = `0x${"00".repeat(32)}`;

const DATA = /^0x([0-9a-fA-F]{2})*$/;

function invalid(name: string, expected: string, got: unknown): RpcError {
  return new RpcError(RpcErrorCodes.InvalidParams, `invalid argument '${name}': expected ${expected}, got ${JSON.stringify(got) ?? "nothing"}`);
}

export function parseQuantity(value: unknown, name: string): bigint {
  // Clients send leading zeros more often than the spec allows (e.g. "0x01"); accept them.
  if (typeof value === "string" && /^0x[0-9a-fA-F]{1,64}$/.test(value)) return BigInt(value);
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw invalid(name, "a hex QUANTITY such as 0x1a", value);
}

export function parseData(value: unknown, name: string, byteLength?: number): Buffer {
  if (typeof value !== "string" || !DATA.test(value) || (byteLength !== undefined && value.length !== 2 + 2 * byteLength)) {
    throw invalid(name, byteLength === undefined ? "hex DATA such as 0x00ff" : `${byteLength} bytes of hex DATA`, value);
  }
  return Buffer.from(value.slice(2), "hex");
}

export const parseAddress = (value: unknown, name: string): Buffer => parseData(value, name, 20);
export const parseHash = (value: unknown, name: string): Buffer => parseData(value, name, 32);

export function parseBoolean(value: unknown, name: string): boolean {
  if (typeof value !== "boolean") throw invalid(name, "true or false", value);
  return value;
}
