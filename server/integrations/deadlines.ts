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

/**
 * Deadlines for the message hot path, without a promise or a Map entry per call: every call
 * with the same timeout joins the tail of one doubly linked list (so each list is ordered by
 * deadline), leaves it in O(1) when it settles, and the shared ticker expires from the head.
 */
export abstract class DeadlineEntry {
  deadline = 0;
  prev: DeadlineEntry | null = null;
  next: DeadlineEntry | null = null;
  list: DeadlineList | null = null;
  /** Called once when the deadline passes before `untrack`. */
  abstract expire(): void;
}

export class DeadlineList {
  head: DeadlineEntry | null = null;
  tail: DeadlineEntry | null = null;
  add(e: DeadlineEntry): void {
    e.list = this;
    e.prev = this.tail;
    e.next = null;
    if (this.tail) this.tail.next = e;
    else this.head = e;
    this.tail = e;
  }
  remove(e: DeadlineEntry): void {
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = e.next = null;
    e.list = null;
  }
}

const lists = new Map<number, DeadlineList>();
let listTicker: NodeJS.Timeout | undefined;
let tracked = 0;

function tickLists(): void {
  const now = Date.now();
  for (const list of lists.values()) {
    while (list.head && list.head.deadline <= now) {
      const e = list.head;
      list.remove(e);
      tracked--;
      e.expire();
    }
  }
  if (tracked === 0 && listTicker) {
    clearInterval(listTicker);
    listTicker = undefined;
  }
}

/** The list for one timeout value (fetch it once, at compile time). */
export function deadlineList(timeoutMs: number): DeadlineList {
  let list = lists.get(timeoutMs);
  if (!list) {
    list = new DeadlineList();
    lists.set(timeoutMs, list);
  }
  return list;
}

export function track(e: DeadlineEntry, timeoutMs: number): void {
  trackIn(deadlineList(timeoutMs), e, Date.now() + timeoutMs);
}

/** Track `e` until `deadline` (epoch ms) in a list whose entries all share one timeout. */
export function trackIn(list: DeadlineList, e: DeadlineEntry, deadline: number): void {
  e.deadline = deadline;
  list.add(e);
  tracked++;
  if (!listTicker) {
    listTicker = setInterval(tickLists, TICK_MS);
    listTicker.unref();
  }
}

/** Returns false when the entry had already expired (or was never tracked). */
export function untrack(e: DeadlineEntry): boolean {
  if (!e.list) return false;
  e.list.remove(e);
  tracked--;
  return true;
}
