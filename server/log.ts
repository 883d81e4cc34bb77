/**
 * Tiny structured logger: one JSON object per line on stderr. Level from GATEHOUSE_LOG_LEVEL
 * (debug | info | warn | error | silent; default info). Callers never pass secrets: tokens,
 * API keys and query strings are redacted before they get here.
 */
type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level | 'silent', number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
  child(fields: object): Logger;
}

function parseLevel(v: string | undefined): Level | 'silent' {
  return v && v in ORDER ? (v as Level | 'silent') : 'info';
}

export function createLogger(base: object = {}, level = parseLevel(process.env.GATEHOUSE_LOG_LEVEL)): Logger {
  const min = ORDER[level];
  const write = (lvl: Level, fields: object, msg: string) => {
    if (ORDER[lvl] < min) return;
    const rec = { level: lvl, time: new Date().toISOString(), msg, ...base, ...fields };
    process.stderr.write(`${JSON.stringify(rec, errorReplacer)}\n`);
  };
  return {
    debug: (f, m) => write('debug', f, m),
    info: (f, m) => write('info', f, m),
    warn: (f, m) => write('warn', f, m),
    error: (f, m) => write('error', f, m),
    child: (f) => createLogger({ ...base, ...f }, level),
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  return value;
}
