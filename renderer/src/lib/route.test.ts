import { describe, expect, it } from 'vitest';
import { isHubRepoId } from '../contract.ts';
import { parseHash, routeHash, type Route } from './route.ts';

describe('the Models routes', () => {
  it('round-trips every sub-view, a repository page included', () => {
    const routes: Route[] = [
      { name: 'models' },
      { name: 'models', tab: 'discover' },
      { name: 'models', tab: 'downloads' },
      { name: 'models', tab: 'repo', repo: 'bartowski/Meta-Llama-3.1-8B-Instruct-GGUF' },
      { name: 'models', tab: 'repo', repo: 'Qwen/Qwen2.5-0.5B-Instruct-GGUF' },
      { name: 'models', tab: 'repo', repo: 'a/b_c.d-e' },
    ];
    for (const route of routes) expect(parseHash(routeHash(route))).toEqual(route);
    expect(routeHash({ name: 'models', tab: 'repo', repo: 'org/name' })).toBe('#/models/repo/org/name');
    expect(parseHash('#/models/discover/')).toEqual({ name: 'models', tab: 'discover' });
  });

  it('a repository id that the contract would refuse never becomes a repository route', () => {
    const refused = [
      '#/models/repo/org',
      '#/models/repo/org/name/extra',
      '#/models/repo/../name',
      '#/models/repo/org/..',
      '#/models/repo/org/a..b',
      '#/models/repo/org%2Fname/x',
      '#/models/repo/org/na%2Fme',
      '#/models/repo/-org/name',
      '#/models/repo/org/name%20x',
      '#/models/repo/org/%E0%A4%A',
      `#/models/repo/org/${'n'.repeat(200)}`,
    ];
    for (const hash of refused) {
      const route = parseHash(hash);
      expect(route.name === 'models' && route.tab === 'repo', hash).toBe(false);
    }
    // A malformed repository address lands on Discover, where the user can search instead.
    expect(parseHash('#/models/repo/org/..')).toEqual({ name: 'models', tab: 'discover' });
    expect(parseHash('#/models/nope')).toEqual({ name: 'home' });
  });

  it('isHubRepoId follows the contract: owner/name, no dot segments', () => {
    expect(isHubRepoId('owner/name')).toBe(true);
    expect(isHubRepoId('owner/name.v2')).toBe(true);
    expect(isHubRepoId('owner')).toBe(false);
    expect(isHubRepoId('owner/.')).toBe(false);
    expect(isHubRepoId('owner/x..y')).toBe(false);
    expect(isHubRepoId('a/b/c')).toBe(false);
  });
});

describe('the engines routes', () => {
  it("Settings' Engines section and a remote engine's Cache view round-trip", () => {
    const routes: Route[] = [{ name: 'settings' }, { name: 'settings', section: 'engines' }, { name: 'cache' }, { name: 'cache', engineId: 'e_1-X' }];
    for (const route of routes) expect(parseHash(routeHash(route))).toEqual(route);
    expect(routeHash({ name: 'cache', engineId: 'abc' })).toBe('#/cache/engine/abc');
    expect(routeHash({ name: 'settings', section: 'engines' })).toBe('#/settings/engines');
  });

  it('an engine id the contract would refuse falls back to this computer', () => {
    for (const hash of ['#/cache/engine/a%2Fb', '#/cache/engine/..', `#/cache/engine/${'e'.repeat(65)}`, '#/cache/engine/%E0%A4%A']) expect(parseHash(hash)).toEqual({ name: 'cache' });
  });
});
