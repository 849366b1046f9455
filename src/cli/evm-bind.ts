// Binds Ethereum addresses to a Coco user (POST /app/evm/addresses): each address's key signs
// the binding message naming the user and the chain. `coco sandbox` binds its development
// accounts to user0 this way, and `coco evm bind` does it for any user and key.
import { createHash, X509Certificate } from "node:crypto";
import { Agent, request } from "undici";
import { addressOfPrivateKey, bindingMessage, personalSign } from "../apps/evm/index.js";

export interface BindAddressesOptions {
  readonly nodeUrl: string;
  readonly caPem: string | Buffer;
  readonly userCertPem: string | Buffer;
  readonly userKeyPem: string | Buffer;
  readonly chainId: number | bigint;
  /** 0x-hex secp256k1 private keys of the addresses to bind. */
  readonly privateKeys: readonly string[];
}

export interface BindingOutcome {
  readonly address: string;
  /** 201 bound now, 200 already the user's, else the refusal's status (409: another user's). */
  readonly status: number;
  /** The node's error message when refused. */
  readonly error?: string;
}

/** Binds each key's address in turn; a refusal is reported in its outcome, a failure to reach the node throws. */
export async function bindAddresses(options: BindAddressesOptions): Promise<BindingOutcome[]> {
  const userId = createHash("sha256").update(new X509Certificate(options.userCertPem).raw).digest("hex");
  const dispatcher = new Agent({ connect: { ca: options.caPem, cert: options.userCertPem, key: options.userKeyPem } });
  const out: BindingOutcome[] = [];
  try {
    for (const privateKey of options.privateKeys) {
      const address = addressOfPrivateKey(Buffer.from(privateKey.replace(/^0x/, ""), "hex")).toLowerCase();
      const signature = personalSign(bindingMessage(address, userId, BigInt(options.chainId)), privateKey);
      const response = await request(new URL("/app/evm/addresses", options.nodeUrl), {
        method: "POST", dispatcher, headers: { "content-type": "application/json" }, body: JSON.stringify({ address, signature }),
      });
      const text = await response.body.text();
      if (response.statusCode === 200 || response.statusCode === 201) out.push({ address, status: response.statusCode });
      else {
        let error = text;
        try {
          error = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
        } catch {
          // Not a CCF error body: keep the text.
        }
        out.push({ address, status: response.statusCode, error });
      }
    }
  } finally {
    await dispatcher.close();
  }
  return out;
}
