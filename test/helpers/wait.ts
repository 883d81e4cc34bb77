/**
 * Polls `fn` until it returns a value other than undefined, null or false, and returns that
 * value. A thrown error counts as "not yet" (the last one is reported on timeout). Tests wait
 * on conditions with this, never on fixed sleeps.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== null && value !== false) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`waitFor timed out after ${timeoutMs} ms: ${opts.message ?? 'condition not met'}${why}`, {
        cause: lastError,
      });
    }
    await new Promise<void>((resolve) => setTimeout(resolve, intervalMs));
  }
}
