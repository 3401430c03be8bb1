import { describe, expect, it } from 'vitest';
import { FakeBuildRunner } from '../../../test/support/fake-build.ts';
import { detectBuildTools } from './tools.ts';

const env = { PATH: '/usr/bin:/bin' };

function without(...missing: string[]): FakeBuildRunner {
  const runner = new FakeBuildRunner();
  for (const command of missing) delete runner.behaviour.versions[command];
  return runner;
}

describe('detectBuildTools', () => {
  it('finds CMake, the compilers, git and ninja, with their versions', async () => {
    const tools = await detectBuildTools({ runner: new FakeBuildRunner(), platform: 'linux', env });
    expect(tools).toMatchObject({ available: true, cmake: 'cmake', git: 'git', cc: 'cc', cxx: 'c++', generator: 'Ninja', makeProgram: 'ninja' });
    expect(tools.available && tools.versions).toMatchObject({ cmake: 'cmake version 3.25.1', ninja: '1.11.1' });
  });

  it('uses make when ninja is missing', async () => {
    const tools = await detectBuildTools({ runner: without('ninja'), platform: 'linux', env });
    expect(tools).toMatchObject({ available: true, generator: 'Unix Makefiles', makeProgram: 'make' });
  });

  it('tries gcc and g++ when cc and c++ are missing, and honours CC and CXX', async () => {
    const runner = without('cc', 'c++');
    runner.behaviour.versions.gcc = 'gcc 12';
    runner.behaviour.versions['g++'] = 'g++ 12';
    expect(await detectBuildTools({ runner, platform: 'linux', env })).toMatchObject({ cc: 'gcc', cxx: 'g++' });
    runner.behaviour.versions['clang-18'] = 'clang 18';
    runner.behaviour.versions['clang++-18'] = 'clang++ 18';
    expect(await detectBuildTools({ runner, platform: 'linux', env: { ...env, CC: 'clang-18', CXX: 'clang++-18' } })).toMatchObject({ cc: 'clang-18', cxx: 'clang++-18' });
  });

  it('is unavailable, naming what is missing and how to install it', async () => {
    const tools = await detectBuildTools({ runner: without('cmake', 'ninja', 'make'), platform: 'linux', env });
    expect(tools.available).toBe(false);
    expect(!tools.available && tools.reason).toBe(
      'Building an engine needs CMake, ninja or make, which are not installed. Install them with your package manager (on Debian or Ubuntu: sudo apt-get install build-essential cmake ninja-build git).',
    );
    const noCompiler = await detectBuildTools({ runner: without('c++'), platform: 'linux', env });
    expect(!noCompiler.available && noCompiler.reason).toMatch(/^Building an engine needs a C and C\+\+ compiler, which is not installed\./);
    const noGit = await detectBuildTools({ runner: without('git'), platform: 'linux', env });
    expect(!noGit.available && noGit.reason).toMatch(/needs git, which is not installed/);
  });

  it('refuses a CMake older than node-llama-cpp asks for', async () => {
    const runner = new FakeBuildRunner();
    runner.behaviour.versions.cmake = 'cmake version 3.16.3';
    const tools = await detectBuildTools({ runner, platform: 'linux', env });
    expect(!tools.available && tools.reason).toBe('CMake is too old (cmake version 3.16.3); building an engine needs CMake 3.19 or newer.');
  });

  it("on macOS needs the command line tools and looks in Homebrew's folders", async () => {
    const noClt = await detectBuildTools({ runner: new FakeBuildRunner(), platform: 'darwin', env });
    expect(!noClt.available && noClt.reason).toMatch(/Xcode command line tools are not installed/);
    const runner = new FakeBuildRunner();
    runner.behaviour.versions['xcode-select'] = '/Library/Developer/CommandLineTools';
    const tools = await detectBuildTools({ runner, platform: 'darwin', env });
    expect(tools.available && tools.pathEnv.split(':')).toEqual(['/usr/bin', '/bin', '/opt/homebrew/bin', '/usr/local/bin', '/opt/local/bin']);
  });

  it('is unavailable on Windows, with the reason', async () => {
    const tools = await detectBuildTools({ runner: new FakeBuildRunner(), platform: 'win32', env });
    expect(!tools.available && tools.reason).toMatch(/not supported on Windows yet/);
  });
});
