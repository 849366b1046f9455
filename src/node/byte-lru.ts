// A least-recently-used cache bounded by the bytes of what it holds: the node's caches of
// ledger reads (Merkle leaves for old receipts, historical states) stay within a configured
// size however long the ledger grows.
import { assert } from "../util/index.js";

export class ByteLru<K, V> {
  private readonly items = new Map<K, { value: V; bytes: number }>();
  private bytesHeld = 0;

  constructor(private readonly bytesMax: number) {
    assert(Number.isSafeInteger(bytesMax) && bytesMax > 0, "a cache holds a positive number of bytes");
  }

  get bytes(): number { return this.bytesHeld; }
  get size(): number { return this.items.size; }

  get(key: K): V | undefined {
    const item = this.items.get(key);
    if (item === undefined) return undefined;
    // Map keeps insertion order: re-inserting makes it the most recently used.
    this.items.delete(key);
    this.items.set(key, item);
    return item.value;
  }

  /** Keeps `value`, dropping the least recently used until it fits; a value above the limit is not kept. */
  set(key: K, value: V, bytes: number): void {
    assert(bytes >= 0, "an item has a size");
    this.delete(key);
    if (bytes > this.bytesMax) return;
    this.items.set(key, { value, bytes });
    this.bytesHeld += bytes;
    for (const [oldest, item] of this.items) {
      if (this.bytesHeld <= this.bytesMax) break;
      this.items.delete(oldest);
      this.bytesHeld -= item.bytes;
    }
    assert(this.bytesHeld <= this.bytesMax, "the cache stays within its size");
  }

  delete(key: K): void {
    const item = this.items.get(key);
    if (item === undefined) return;
    this.items.delete(key);
    this.bytesHeld -= item.bytes;
  }

  clear(): void {
    this.items.clear();
    this.bytesHeld = 0;
  }
}
