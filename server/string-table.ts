/**
 * A string-keyed table on two plain arrays (open addressing, linear probing), for entries that
 * come and go at a high rate, such as one per connection.
 *
 * Why not a `Map`: when V8 rebuilds a Map's hash table (it outgrew it, or deleted entries piled
 * up), the old table keeps its entries and a link to the new one until a full GC. Once such a
 * table has been promoted, everything it still points to is kept alive through every scavenge.
 * With ~14,000 inserts and deletes a second and 200 live entries, a Map made each scavenge
 * promote ~1.6 MB and forced a mark-compact every second or so; this table promotes nothing
 * beyond its live entries (measured with --trace-gc-nvp, RESULTS.md "connect storm").
 *
 * Iteration order is not insertion order.
 */
export class StringTable<V> {
  /** undefined: never used; null: deleted (a tombstone, so that probing goes on past it). */
  private keyArray: Array<string | null | undefined>;
  private vals: Array<V | undefined>;
  private count = 0;
  /** Slots that are not undefined (live entries and tombstones). */
  private used = 0;

  constructor() {
    this.keyArray = new Array<string | null | undefined>(16).fill(undefined);
    this.vals = new Array<V | undefined>(16).fill(undefined);
  }

  get size(): number {
    return this.count;
  }

  get(key: string): V | undefined {
    const i = this.slotOf(key);
    return i < 0 ? undefined : this.vals[i];
  }

  has(key: string): boolean {
    return this.slotOf(key) >= 0;
  }

  set(key: string, value: V): void {
    const found = this.slotOf(key);
    if (found >= 0) {
      this.vals[found] = value;
      return;
    }
    // Keep at least half of the slots never used, so that a probe always ends.
    if ((this.used + 1) * 2 > this.keyArray.length) this.rebuild();
    const mask = this.keyArray.length - 1;
    let i = hash(key) & mask;
    for (;;) {
      const k = this.keyArray[i];
      if (k === undefined || k === null) break;
      i = (i + 1) & mask;
    }
    if (this.keyArray[i] === undefined) this.used++;
    this.keyArray[i] = key;
    this.vals[i] = value;
    this.count++;
  }

  delete(key: string): boolean {
    const i = this.slotOf(key);
    if (i < 0) return false;
    this.keyArray[i] = null;
    this.vals[i] = undefined;
    this.count--;
    // After a burst has left, give the memory back (rebuild sizes for 4x the live entries).
    if (this.keyArray.length > 16 && this.count * 16 < this.keyArray.length) this.rebuild();
    return true;
  }

  /** The live keys, as an array (a snapshot). */
  keys(): string[] {
    const out: string[] = [];
    const keys = this.keyArray;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (k !== undefined && k !== null) out.push(k);
    }
    return out;
  }

  clear(): void {
    this.keyArray = new Array<string | null | undefined>(16).fill(undefined);
    this.vals = new Array<V | undefined>(16).fill(undefined);
    this.count = 0;
    this.used = 0;
  }

  /** The live values, as an array (a snapshot: the table may change while the caller iterates). */
  values(): V[] {
    const out: V[] = [];
    const keys = this.keyArray;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (k !== undefined && k !== null) out.push(this.vals[i] as V);
    }
    return out;
  }

  private slotOf(key: string): number {
    const keys = this.keyArray;
    const mask = keys.length - 1;
    let i = hash(key) & mask;
    for (;;) {
      const k = keys[i];
      if (k === undefined) return -1;
      if (k === key) return i;
      i = (i + 1) & mask;
    }
  }

  /** New arrays sized for four times the live entries (at least 16): drops the tombstones. */
  private rebuild(): void {
    const oldKeys = this.keyArray;
    const oldVals = this.vals;
    let cap = 16;
    while (cap < (this.count + 1) * 4) cap *= 2;
    this.keyArray = new Array<string | null | undefined>(cap).fill(undefined);
    this.vals = new Array<V | undefined>(cap).fill(undefined);
    this.count = 0;
    this.used = 0;
    const mask = cap - 1;
    for (let j = 0; j < oldKeys.length; j++) {
      const k = oldKeys[j];
      if (k === undefined || k === null) continue;
      let i = hash(k) & mask;
      while (this.keyArray[i] !== undefined) i = (i + 1) & mask;
      this.keyArray[i] = k;
      this.vals[i] = oldVals[j];
      this.count++;
      this.used++;
    }
  }
}

/** FNV-1a over UTF-16 code units. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
