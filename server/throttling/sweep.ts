/**
 * Lazy, incremental reclamation for the per-key tables of the throttling code.
 *
 * There is no timer per key and no timer at all by default: the owner calls `step()` every
 * N-th operation (a bit test on a counter) and it inspects a handful of entries, resuming where
 * the previous step stopped. A full pass over a table of K keys therefore costs about K
 * predicate calls spread over K*N/batch operations, and the hot path allocates nothing in the
 * common case (the iterator result objects are only created on the sweeping calls).
 */
export class IncrementalSweeper<V> {
  private iter: Iterator<[string, V]> | undefined;

  constructor(
    private readonly map: Map<string, V>,
    /** True when the entry can be dropped without changing observable behaviour (or acceptably so). */
    private readonly reclaimable: (value: V, now: number) => boolean,
  ) {}

  /** Inspect at most `budget` entries, deleting the reclaimable ones. Returns how many were deleted. */
  step(budget: number, now: number): number {
    let deleted = 0;
    for (let i = 0; i < budget; i++) {
      if (this.iter === undefined) {
        if (this.map.size === 0) return deleted;
        this.iter = this.map.entries();
      }
      const r = this.iter.next();
      if (r.done === true) {
        this.iter = undefined;
        continue;
      }
      const [key, value] = r.value;
      // Deleting the current entry while iterating a Map is well defined (the iterator moves on).
      if (this.reclaimable(value, now)) {
        this.map.delete(key);
        deleted++;
      }
    }
    return deleted;
  }

  /** One complete pass (for an owner's coarse timer or tests). */
  sweepAll(now: number): number {
    let deleted = 0;
    for (const [key, value] of this.map) {
      if (this.reclaimable(value, now)) {
        this.map.delete(key);
        deleted++;
      }
    }
    this.iter = undefined;
    return deleted;
  }

  /**
   * Make room for one more entry when the table is at its size bound: first try a short sweep,
   * then drop the oldest inserted entry (Map iteration order is insertion order).
   */
  makeRoom(maxSize: number, now: number): void {
    if (this.map.size < maxSize) return;
    this.step(16, now);
    while (this.map.size >= maxSize) {
      const oldest = this.map.keys().next();
      if (oldest.done === true) return;
      this.map.delete(oldest.value);
    }
  }
}
