// Log-linear latency histogram in integer microseconds (HDR-style): exact below
// 2048 us, then 1024 sub-buckets per power of two (< 0.1% relative error).
// Recording is O(1) and allocation-free; percentiles never sort samples.

const SUB_BITS = 10;
const SUB = 1 << SUB_BITS; // 1024
const MAX_US = 0x7fff_ffff; // ~35 minutes
const BUCKETS = (31 - SUB_BITS) * SUB + 2 * SUB;

function bucketOf(us: number): number {
  if (us < 2 * SUB) return us;
  const exp = 31 - Math.clz32(us); // >= SUB_BITS + 1
  const shift = exp - SUB_BITS;
  return shift * SUB + (us >>> shift);
}

/** Lowest value that falls into bucket `b`. */
function lowestOf(b: number): number {
  if (b < 2 * SUB) return b;
  const shift = Math.floor(b / SUB) - 1;
  return (b - shift * SUB) * 2 ** shift;
}

/** Highest value that falls into bucket `b`. */
function highestOf(b: number): number {
  if (b < 2 * SUB) return b;
  const shift = Math.floor(b / SUB) - 1;
  return lowestOf(b) + 2 ** shift - 1;
}

/** Serialisable form, so child processes can hand histograms to the orchestrator. */
export interface HistogramJson {
  /** [bucketIndex, count] pairs for non-empty buckets. */
  buckets: Array<[number, number]>;
}

export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  count = 0;
  min = Number.POSITIVE_INFINITY;
  max = 0;
  private sum = 0;

  /** Records one value in microseconds (fractions are truncated). */
  record(us: number): void {
    let v = us | 0;
    if (v < 0) v = 0;
    else if (v > MAX_US || us > MAX_US) v = MAX_US;
    this.counts[bucketOf(v)]! += 1;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /** Records `n` values that share the same latency. */
  recordN(us: number, n: number): void {
    if (n <= 0) return;
    let v = us | 0;
    if (v < 0) v = 0;
    else if (v > MAX_US || us > MAX_US) v = MAX_US;
    this.counts[bucketOf(v)]! += n;
    this.count += n;
    this.sum += v * n;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sum = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.max = 0;
  }

  mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  /** Value (us) at percentile p in [0, 100]; upper edge of the bucket, like HdrHistogram. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b]!;
      if (seen >= rank) return Math.min(highestOf(b), this.max);
    }
    return this.max;
  }

  merge(other: Histogram): void {
    for (let b = 0; b < BUCKETS; b++) this.counts[b]! += other.counts[b]!;
    this.count += other.count;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
  }

  toJSON(): HistogramJson {
    const buckets: Array<[number, number]> = [];
    for (let b = 0; b < BUCKETS; b++) {
      const c = this.counts[b]!;
      if (c > 0) buckets.push([b, c]);
    }
    return { buckets };
  }

  static fromJSON(json: HistogramJson): Histogram {
    const h = new Histogram();
    for (const [b, c] of json.buckets) {
      if (b < 0 || b >= BUCKETS) continue;
      h.counts[b]! += c;
      h.count += c;
      const lo = lowestOf(b);
      h.sum += lo * c;
      if (lo < h.min) h.min = lo;
      const hi = highestOf(b);
      if (hi > h.max) h.max = hi;
    }
    return h;
  }
}
