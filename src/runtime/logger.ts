/** How much the runtime logs: nothing, errors, warnings, lifecycle information, or every launch and letter. */
export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug';

/** The log levels, least verbose first. */
export const LOG_LEVELS: readonly LogLevel[] = ['silent', 'error', 'warn', 'info', 'debug'];

/** Where the runtime's log lines go: one function per level, each a no-op below the configured level. */
export interface RuntimeLogger {
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
  debug(message: string): void;
}

/**
 * A logger that writes `ringkernel <level>: message` lines to stderr for the levels at or above `level`. The
 * runtime logs control-plane events only (launches, failures, restarts, degradation, dead letters at `debug`),
 * never per message on the data path.
 *
 * @example
 * const log = createLogger('info');
 * log.info('kernel restarted'); // ringkernel info: kernel restarted
 * log.debug('not shown');
 */
export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => console.error(line),
): RuntimeLogger {
  const rank = LOG_LEVELS.indexOf(level);
  const at =
    (name: Exclude<LogLevel, 'silent'>) =>
    (message: string): void => {
      if (LOG_LEVELS.indexOf(name) <= rank) write(`ringkernel ${name}: ${message}`);
    };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}
