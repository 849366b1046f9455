// Transaction ids: `view.seqno`, as CCF prints them (e.g. "2.17").
import { CocoError } from "./errors.js";

export interface TxId {
  readonly view: number;
  readonly seqno: number;
}

const TXID_PATTERN = /^(\d{1,15})\.(\d{1,15})$/;

export function formatTxId(view: number, seqno: number): string {
  return `${view}.${seqno}`;
}

/** Parses "view.seqno"; throws a CocoError (400 InvalidInput) naming what is wrong. */
export function parseTxId(text: string): TxId {
  const match = TXID_PATTERN.exec(text);
  if (!match) {
    throw new CocoError(
      "InvalidInput",
      `Invalid transaction id '${text}': expected '<view>.<seqno>' with two non-negative integers, e.g. '2.17'.`,
      400,
    );
  }
  return { view: Number(match[1]), seqno: Number(match[2]) };
}
