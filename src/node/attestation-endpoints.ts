// CCF's attestation endpoints: GET /node/quotes and /node/attestations (the evidence of every
// Trusted node, as recorded when it joined) and their /self forms (this node's). The
// measurement is extracted by the same verifier join uses; evidence that no longer verifies
// (e.g. its certificates expired) is listed without a measurement, as CCF does.
import { CocoError } from "../util/index.js";
import { ErrorCodes, type EndpointRegistry } from "../rpc/index.js";
import { SNP_FORMAT, decodeSnpQuoteInfo, verifySnpReport, type SnpQuoteInfo } from "../attestation/index.js";
import { NODES_INFO_MAP, VIRTUAL_FORMAT, type NodeInfo } from "./join.js";

/** CCF's Quote (node_frontend.h): bytes as base64, measurement as hex. */
export interface QuoteView {
  node_id: string;
  raw: string;
  endorsements: string;
  format: string;
  measurement?: string;
  uvm_endorsements?: string;
}

function measurementOf(quoteInfo: NodeInfo["quote_info"]): string | undefined {
  try {
    if (quoteInfo.format === SNP_FORMAT) {
      const { report, endorsementsPem } = decodeSnpQuoteInfo(quoteInfo as SnpQuoteInfo);
      return verifySnpReport(report, endorsementsPem).measurementHex;
    }
    if (quoteInfo.format === VIRTUAL_FORMAT) {
      // CCF: the virtual measurement's bytes (the string), as hex.
      const report = JSON.parse(Buffer.from(quoteInfo.quote ?? "", "base64").toString("utf8")) as { measurement?: unknown };
      return typeof report.measurement === "string" ? Buffer.from(report.measurement).toString("hex") : undefined;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

export function quoteView(nodeId: string, info: NodeInfo): QuoteView {
  const q = info.quote_info as NodeInfo["quote_info"] & { uvm_endorsements?: string };
  const measurement = measurementOf(q);
  return {
    node_id: nodeId,
    raw: q.quote ?? "",
    endorsements: q.endorsements ?? "",
    format: q.format,
    ...(measurement !== undefined ? { measurement } : {}),
    ...(q.uvm_endorsements !== undefined ? { uvm_endorsements: q.uvm_endorsements } : {}),
  };
}

export function installAttestationEndpoints(registry: EndpointRegistry, nodeId: string): void {
  const all = (tx: Parameters<Parameters<EndpointRegistry["install"]>[0]["handler"]>[0]["tx"]): QuoteView[] => {
    const out: QuoteView[] = [];
    tx.forEach(NODES_INFO_MAP, (value, key) => {
      const info = JSON.parse(value.toString("utf8")) as NodeInfo;
      if (info.status === "Trusted") out.push(quoteView(key.toString("utf8"), info));
    });
    return out;
  };
  const self = (tx: Parameters<typeof all>[0]): QuoteView => {
    const raw = tx.get(NODES_INFO_MAP, Buffer.from(nodeId));
    if (raw === undefined) throw new CocoError(ErrorCodes.ResourceNotFound, "Could not find node quote.", 404);
    const view = quoteView(nodeId, JSON.parse(raw.toString("utf8")) as NodeInfo);
    if (view.measurement === undefined) throw new CocoError("InvalidQuote", "Failed to extract code id from node quote.", 500);
    return view;
  };
  const install = (path: string, summary: string, body: (tx: Parameters<typeof all>[0]) => unknown) => registry.install({
    method: "GET", path, summary, mode: "readonly", authPolicies: ["no_auth"], forwarding: "never",
    handler: (ctx) => ({ body: body(ctx.tx) }),
  });
  install("/node/quotes", "The attestation evidence of every Trusted node, with its measurement", (tx) => ({ quotes: all(tx) }));
  install("/node/attestations", "The attestation evidence of every Trusted node, with its measurement", (tx) => ({ attestations: all(tx) }));
  install("/node/quotes/self", "This node's attestation evidence, with its measurement", self);
  install("/node/attestations/self", "This node's attestation evidence, with its measurement", self);
}
