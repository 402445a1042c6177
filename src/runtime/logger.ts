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
 * Writes a log line to stderr on a line of its own: on a terminal it first clears the line a progress display
 * (`\r`-redrawn, as the demo's) may have left unfinished, so the two never run together.
 */
function writeLine(line: string): void {
  console.error(process.stderr.isTTY ? `\r\x1b[K${line}` : line);
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
export function createLogger(level: LogLevel, write: (line: string) => void = writeLine): RuntimeLogger {
  const rank = LOG_LEVELS.indexOf(level);
  const at =
    (name: Exclude<LogLevel, 'silent'>) =>
    (message: string): void => {
      if (LOG_LEVELS.indexOf(name) <= rank) write(`ringkernel ${name}: ${message}`);
    };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}
