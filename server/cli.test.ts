import { describe, expect, it } from 'vitest';
import { defaultDataDir, defaultPort, parseCli, usage } from './cli.ts';

describe('parseCli', () => {
  it('parses every option, resolving paths against the working directory', () => {
    const r = parseCli(['--data-dir', 'data', '--model', 'm.gguf', '--port', '0', '--threads', '1'], '/home/u');
    expect(r).toEqual({
      ok: true,
      options: { dataDir: '/home/u/data', modelPath: '/home/u/m.gguf', port: 0, portExplicit: true, threads: 1, help: false, measureSpeed: true },
    });
  });

  it('defaults the port and the data directory', () => {
    const r = parseCli([], '/x');
    if (!r.ok) throw new Error(r.message);
    expect(r.options.port).toBe(defaultPort);
    expect(r.options.portExplicit).toBe(false);
    expect(r.options.dataDir).toBe(defaultDataDir());
    expect(r.options.modelPath).toBeUndefined();
    expect(r.options.threads).toBeUndefined();
    expect(r.options.measureSpeed).toBe(true);
  });

  it('turns the first-load speed measurement off with --no-measure-speed', () => {
    const r = parseCli(['--no-measure-speed']);
    expect(r.ok && r.options.measureSpeed).toBe(false);
  });

  it.each([
    [['--port', 'abc'], /--port must be a whole number/],
    [['--port', '70000'], /--port must be between 0 and 65535/],
    [['--port', '-1'], /--port|argument/],
    [['--threads', '1.5'], /--threads must be a whole number/],
    [['--threads', '999'], /--threads must be between/],
    [['--bogus'], /Unknown option '--bogus'/],
    [['stray'], /positional/],
    [['--model'], /argument missing/],
    [['--data-dir', ''], /--data-dir must not be empty/],
  ])('rejects %j with a clear message', (argv, message) => {
    const r = parseCli(argv);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(message);
  });

  it('parses --api-port and --api-key for this run', () => {
    const key = 'abcDEF123._~+/=-xyz';
    expect(parseCli(['--data-dir', 'd', '--api-port', '0', '--api-key', key], '/h')).toEqual({
      ok: true,
      options: { dataDir: '/h/d', port: defaultPort, portExplicit: false, help: false, measureSpeed: true, apiPort: 0, apiKey: key },
    });
    const portOnly = parseCli(['--api-port', '65535']);
    expect(portOnly.ok && portOnly.options.apiPort).toBe(65535);
    expect(portOnly.ok && 'apiKey' in portOnly.options).toBe(false);
    const neither = parseCli([]);
    expect(neither.ok && ('apiPort' in neither.options || 'apiKey' in neither.options)).toBe(false);
    // The shortest and the longest keys allowed.
    expect(parseCli(['--api-port', '1', '--api-key', 'k'.repeat(16)]).ok).toBe(true);
    expect(parseCli(['--api-port', '1', '--api-key', 'k'.repeat(256)]).ok).toBe(true);
    expect(parseCli(['--api-port', '1', '--api-key=hearth-AbC_dEf-0123456789']).ok).toBe(true);
  });

  it.each([
    [['--api-port', 'abc'], /--api-port must be a whole number/],
    [['--api-port', '4724.5'], /--api-port must be a whole number/],
    [['--api-port', '65536'], /--api-port must be between 0 and 65535, got 65536/],
    [['--api-port', '-1'], /--api-port|argument/],
    [['--api-port', ''], /--api-port must be a whole number/],
    [['--api-port'], /argument missing/],
    [['--api-port', '1', '--api-key', 'k'.repeat(15)], /--api-key must be 16 to 256/],
    [['--api-port', '1', '--api-key', 'k'.repeat(257)], /--api-key must be 16 to 256/],
    [['--api-port', '1', '--api-key', 'has a space in it ok'], /--api-key must be 16 to 256/],
    [['--api-port', '1', '--api-key', 'quote"in-the-key-here'], /--api-key must be 16 to 256/],
    [['--api-port', '1', '--api-key', 'newline\nin-the-key-here'], /--api-key must be 16 to 256/],
    [['--api-port', '1', '--api-key', 'ünïcödé-key-0123456789'], /--api-key must be 16 to 256/],
    [['--api-port', '1', '--api-key', ''], /--api-key must be 16 to 256/],
    [['--api-key', 'k'.repeat(32)], /--api-key needs --api-port/],
  ])('rejects %j with a clear message', (argv, message) => {
    const r = parseCli(argv);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(message);
  });

  it('keeps the API key out of its error messages', () => {
    const r = parseCli(['--api-key', 'secret-value-0123456789']);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).not.toContain('secret-value');
    const bad = parseCli(['--api-port', '1', '--api-key', 'secret value 0123456789']);
    if (!bad.ok) expect(bad.message).not.toContain('secret');
  });

  it('knows --help', () => {
    const r = parseCli(['-h']);
    expect(r.ok && r.options.help).toBe(true);
  });

  it('documents the API options in its usage', () => {
    expect(usage).toMatch(/--api-port N/);
    expect(usage).toMatch(/--api-key KEY/);
  });
});

describe('defaultDataDir', () => {
  it('follows each platform convention', () => {
    expect(defaultDataDir('linux', {}, '/home/u')).toBe('/home/u/.local/share/hearth');
    expect(defaultDataDir('linux', { XDG_DATA_HOME: '/xdg' }, '/home/u')).toBe('/xdg/hearth');
    expect(defaultDataDir('linux', { XDG_DATA_HOME: 'relative' }, '/home/u')).toBe('/home/u/.local/share/hearth');
    expect(defaultDataDir('darwin', {}, '/Users/u')).toBe('/Users/u/Library/Application Support/Hearth');
    expect(defaultDataDir('win32', { APPDATA: '/appdata' }, '/home/u')).toMatch(/appdata.Hearth$/);
  });
});
