// Items: a private, typed map from string ids to JSON items. The map is private (no "public:"
// prefix), so its contents are encrypted in the ledger and visible only through these endpoints.
import * as ccfapp from "@microsoft/ccf-app";
import { badRequest, type Item, parseItem } from "../validation.js";

const items = ccfapp.typedKv("items", ccfapp.string, ccfapp.json<Item>());

export function putItem(request: ccfapp.Request<Item>): ccfapp.Response {
  const id = request.params["id"]!;
  let item: Item;
  try {
    item = parseItem(request.body.json());
  } catch (error) {
    return badRequest((error as Error).message);
  }
  items.set(id, item);
  return { statusCode: 204 };
}

export function getItem(request: ccfapp.Request): ccfapp.Response<Item | { error: { code: string; message: string } }> {
  const id = request.params["id"]!;
  const item = items.get(id);
  if (item === undefined) {
    return { statusCode: 404, body: { error: { code: "ResourceNotFound", message: `No item with id '${id}'.` } } };
  }
  return { body: item };
}

export function listItems(): ccfapp.Response<{ items: Array<Item & { id: string }> }> {
  const all: Array<Item & { id: string }> = [];
  items.forEach((item, id) => void all.push({ id, ...item }));
  return { body: { items: all } };
}
