import { describe, expect, it } from 'vitest';
import { defaultDataDir, defaultPort, parseCli } from './cli.ts';

describe('parseCli', () => {
  it('parses every option, resolving paths against the working directory', () => {
    const r = parseCli(['--data-dir', 'data', '--model', 'm.gguf', '--port', '0', '--threads', '1'], '/home/u');
    expect(r).toEqual({
      ok: true,
      options: { dataDir: '/home/u/data', modelPath: '/home/u/m.gguf', port: 0, portExplicit: true, threads: 1, help: false },
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

  it('knows --help', () => {
    const r = parseCli(['-h']);
    expect(r.ok && r.options.help).toBe(true);
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
