/**
 * The host's log: one line per entry in `<dataDir>/logs/hearth.log`; errors also go to stderr
 * so that a developer running the browser host sees them.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import { errorText } from '../contract/index.ts';
import type { LogLevel } from './supervisor.ts';

const rank: Readonly<Record<LogLevel, number>> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Logger {
  (level: LogLevel, message: string): void;
  close(): Promise<void>;
}

export function createLogger(logsDir: string, level: LogLevel, options: { stderr?: boolean } = {}): Logger {
  let stream: WriteStream | null = createWriteStream(path.join(logsDir, 'hearth.log'), { flags: 'a' });
  // A log that cannot be written must not take the app down.
  stream.on('error', () => {
    stream = null;
  });
  const log = (entryLevel: LogLevel, message: string): void => {
    if (rank[entryLevel] > rank[level]) return;
    const line = `${new Date().toISOString()} ${entryLevel.padEnd(5)} ${message}\n`;
    stream?.write(line);
    if (entryLevel === 'error' && options.stderr !== false) process.stderr.write(`Hearth: ${message}\n`);
  };
  return Object.assign(log, {
    close: () =>
      new Promise<void>((resolve) => {
        if (!stream) return resolve();
        stream.end(() => resolve());
        stream = null;
      }),
  });
}

/** For a log line about something unexpected: an Error's stack (it says where), else its text. */
export function errorDetail(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : errorText(error);
}
