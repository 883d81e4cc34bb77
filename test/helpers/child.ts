import { type ChildProcess, spawn } from 'node:child_process';

/**
 * A server process a test starts: its output tail (for failure messages), whether it has
 * exited, and a stop that sends SIGTERM then SIGKILL after `stopTimeoutMs`. If the test run
 * dies without its afterAll, the process is still killed when this process exits.
 */
export interface TrackedChild {
  child: ChildProcess;
  output(): string;
  hasExited(): boolean;
  exited: Promise<void>;
  /** SIGTERM, SIGKILL after the timeout; resolves once the process is gone. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL at once (start-up failures). */
  kill(): Promise<void>;
}

export function spawnTracked(cmd: string, args: string[], opts: { tailChars: number; stopTimeoutMs: number }): TrackedChild {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const collect = (chunk: Buffer) => {
    out = (out + chunk.toString()).slice(-opts.tailChars);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let hasExited = false;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      hasExited = true;
      resolve();
    });
    child.once('error', (err) => {
      out += `\nspawn error: ${err.message}`;
      hasExited = true;
      resolve();
    });
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  return {
    child,
    output: () => out,
    hasExited: () => hasExited,
    exited,
    async stop() {
      process.removeListener('exit', killOnExit);
      if (hasExited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.stopTimeoutMs);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      process.removeListener('exit', killOnExit);
      if (hasExited) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}
