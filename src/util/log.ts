// Minimal structured logging to stderr. Level from RL4QE_LOG (debug|info|warn|error|silent).
// JSON lines when RL4QE_LOG_JSON=1 (servers, CI), human text otherwise.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

function currentLevel(): LogLevel {
  const v = process.env.RL4QE_LOG;
  return v !== undefined && v in ORDER ? (v as LogLevel) : 'info';
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(scope: string): Logger {
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] < ORDER[currentLevel()]) return;
    if (process.env.RL4QE_LOG_JSON === '1') {
      process.stderr.write(
        JSON.stringify({ t: new Date().toISOString(), level, scope, msg, ...fields }) + '\n',
      );
    } else {
      const extra = fields && Object.keys(fields).length > 0 ? ' ' + JSON.stringify(fields) : '';
      process.stderr.write(
        `[rl4qe:${scope}] ${level === 'info' ? '' : level + ': '}${msg}${extra}\n`,
      );
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}
