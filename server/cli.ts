/** Command-line arguments of the browser host (`npm run serve -- ...`). */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { errorText } from '../engine/contract/index.ts';

/** Used when `--port` is not given; if it is taken, the host falls back to a free port. */
export const defaultPort = 4723;

export interface CliOptions {
  readonly dataDir: string;
  readonly modelPath?: string;
  readonly port: number;
  /** True when `--port` was given: then a taken port is an error, not a fallback. */
  readonly portExplicit: boolean;
  readonly threads?: number;
  /** `--no-measure-speed`: a model's first load uses the defaults instead of measuring. */
  readonly measureSpeed: boolean;
  /** `--api-port`: the local API server listens on this port for this run. */
  readonly apiPort?: number;
  /** `--api-key`: the key API clients must send, for this run (else the stored one). */
  readonly apiKey?: string;
  readonly help: boolean;
}

export const usage = `Usage: npm run serve -- [options]
       node server/main.ts [options]

Serves Hearth to a browser on 127.0.0.1 and prints the address to open (with its token).

Options:
  --data-dir DIR     where chats, settings and models live (default: ${defaultDataDir()})
  --model FILE.gguf  load this model at start
  --port N           port to listen on, 0 for any free port (default: ${defaultPort})
  --threads N        llama.cpp threads (default: the setting, or the physical core count)
  --no-measure-speed load a model the first time with the default settings instead of measuring
                     which run fastest here (the Model profile can still measure)
  --api-port N       also serve the OpenAI- and Anthropic-compatible API on 127.0.0.1:N for this run
                     (0: any free port; the address is printed)
  --api-key KEY      the key API clients send (Authorization: Bearer KEY); default: the stored one
  -h, --help         show this help
`;

/** The per-user data directory, by platform convention. */
export function defaultDataDir(platform: NodeJS.Platform = process.platform, env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'Hearth');
  if (platform === 'win32') return join(env.APPDATA ?? join(home, 'AppData', 'Roaming'), 'Hearth');
  const xdg = env.XDG_DATA_HOME;
  // The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
  return join(xdg !== undefined && xdg.startsWith('/') ? xdg : join(home, '.local', 'share'), 'hearth');
}

function parseInteger(flag: string, raw: string, min: number, max: number): number | string {
  if (!/^\d+$/.test(raw)) return `${flag} must be a whole number, got ${JSON.stringify(raw)}.`;
  const n = Number(raw);
  if (n < min || n > max) return `${flag} must be between ${min} and ${max}, got ${n}.`;
  return n;
}

/** Parses the arguments after `node server/main.ts`. Never throws: a bad argument is a message. */
export function parseCli(argv: readonly string[], cwd: string = process.cwd()): { ok: true; options: CliOptions } | { ok: false; message: string } {
  let values: { 'data-dir'?: string; model?: string; port?: string; threads?: string; 'no-measure-speed'?: boolean; 'api-port'?: string; 'api-key'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        'data-dir': { type: 'string' },
        model: { type: 'string' },
        port: { type: 'string' },
        threads: { type: 'string' },
        'no-measure-speed': { type: 'boolean' },
        'api-port': { type: 'string' },
        'api-key': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    return { ok: false, message: errorText(e) };
  }
  let port = defaultPort;
  if (values.port !== undefined) {
    const p = parseInteger('--port', values.port, 0, 65535);
    if (typeof p === 'string') return { ok: false, message: p };
    port = p;
  }
  let threads: number | undefined;
  if (values.threads !== undefined) {
    const t = parseInteger('--threads', values.threads, 0, 256);
    if (typeof t === 'string') return { ok: false, message: t };
    threads = t;
  }
  let apiPort: number | undefined;
  if (values['api-port'] !== undefined) {
    const p = parseInteger('--api-port', values['api-port'], 0, 65535);
    if (typeof p === 'string') return { ok: false, message: p };
    apiPort = p;
  }
  const apiKey = values['api-key'];
  if (apiKey !== undefined) {
    // Sent in a header: printable, no spaces; long enough not to be guessed.
    if (!/^[A-Za-z0-9._~+/=-]{16,256}$/.test(apiKey)) return { ok: false, message: '--api-key must be 16 to 256 letters, digits or ._~+/=- characters.' };
    if (apiPort === undefined) return { ok: false, message: '--api-key needs --api-port (the key is for the API server this run starts).' };
  }
  if (values['data-dir'] === '') return { ok: false, message: '--data-dir must not be empty.' };
  if (values.model === '') return { ok: false, message: '--model must not be empty.' };
  const options: CliOptions = {
    dataDir: values['data-dir'] !== undefined ? resolve(cwd, values['data-dir']) : defaultDataDir(),
    port,
    portExplicit: values.port !== undefined,
    help: values.help === true,
    measureSpeed: values['no-measure-speed'] !== true,
    ...(values.model !== undefined ? { modelPath: resolve(cwd, values.model) } : {}),
    ...(threads !== undefined ? { threads } : {}),
    ...(apiPort !== undefined ? { apiPort } : {}),
    ...(apiKey !== undefined ? { apiKey } : {}),
  };
  return { ok: true, options };
}
