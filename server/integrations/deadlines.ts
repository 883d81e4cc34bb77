/**
 * Integration timeouts without a timer per invocation: pending invocations sit in one Map,
 * and a single coarse ticker (25 ms, unref'd, running only while something is pending) fails
 * the ones past their deadline. Settling removes the entry, so nothing outlives the call.
 */
export class IntegrationTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`integration timed out after ${timeoutMs} ms`);
    this.name = 'IntegrationTimeoutError';
  }
}

interface Pending {
  deadline: number;
  timeoutMs: number;
  reject: (err: Error) => void;
}

const TICK_MS = 25;
const pending = new Map<number, Pending>();
let nextKey = 0;
let ticker: NodeJS.Timeout | undefined;

function tick(): void {
  const now = Date.now();
  for (const [key, p] of pending) {
    if (p.deadline <= now) {
      pending.delete(key);
      p.reject(new IntegrationTimeoutError(p.timeoutMs));
    }
  }
  if (pending.size === 0 && ticker) {
    clearInterval(ticker);
    ticker = undefined;
  }
}

/** Resolve with `work`'s value, or reject IntegrationTimeoutError after `timeoutMs`. */
export function withDeadline<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const key = nextKey++;
    pending.set(key, { deadline: Date.now() + timeoutMs, timeoutMs, reject });
    if (!ticker) {
      ticker = setInterval(tick, TICK_MS);
      ticker.unref();
    }
    work.then(
      (v) => {
        if (pending.delete(key)) resolve(v);
      },
      (e: unknown) => {
        if (pending.delete(key)) reject(e);
      },
    );
  });
}
