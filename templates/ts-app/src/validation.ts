// Shared by the endpoint modules; `coco app build` bundles it into each module that imports it.
import type * as ccfapp from "@microsoft/ccf-app";

export interface Item {
  name: string;
  quantity: number;
}

export function parseItem(value: unknown): Item {
  if (typeof value !== "object" || value === null) throw new Error("expected a JSON object {\"name\": string, \"quantity\": integer}");
  const { name, quantity } = value as Record<string, unknown>;
  if (typeof name !== "string" || name.length === 0) throw new Error("'name' must be a non-empty string");
  if (typeof quantity !== "number" || !Number.isInteger(quantity) || quantity < 0) throw new Error("'quantity' must be a non-negative integer");
  return { name, quantity };
}

export function badRequest(message: string): ccfapp.Response<{ error: { code: string; message: string } }> {
  return { statusCode: 400, body: { error: { code: "InvalidInput", message } } };
}
