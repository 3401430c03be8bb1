/**
 * What main does with a call from the renderer: check who sent it, validate it against the
 * contract, and run it. Host-specific calls (the native file dialog, the file manager) are answered here; the
 * rest go to the engine host. Pure (no `electron` import) so it is unit-tested.
 */
import { err, ok, validateCall, type Result, errorText } from '../engine/contract/index.ts';

export interface CallDeps {
  /** The engine host's entry (engine/index.ts `Hearth.call`). */
  readonly call: (name: unknown, payload: unknown) => Promise<Result<unknown>>;
  /** Shows the native "open model" dialog; null when the user cancels. */
  readonly pickModelFile: () => Promise<string | null>;
  /** Shows a file in the system's file manager (Electron's `shell.showItemInFolder`). */
  readonly showInFolder: (path: string) => void;
  /** True when the sending frame is the app's own page. */
  readonly isTrustedSender: (senderUrl: string) => boolean;
}

export function createCallHandler(deps: CallDeps) {
  return async (senderUrl: string, name: unknown, payload: unknown): Promise<Result<unknown>> => {
    if (!deps.isTrustedSender(senderUrl)) {
      return err('FORBIDDEN', 'Calls are accepted only from the app window.');
    }
    // Validated here, where the payload enters main, even though Hearth validates again:
    // a bad payload must not reach host-specific code either.
    const checked = validateCall(name, payload);
    if (!checked.ok) return { ok: false, error: checked.error };
    if (checked.name === 'models.pick') {
      try {
        return ok({ path: await deps.pickModelFile() });
      } catch (e) {
        return err('INTERNAL', `The file dialog failed: ${errorText(e)}`);
      }
    }
    if (checked.name === 'models.reveal') return reveal(deps, (checked.input as { path: string }).path);
    return deps.call(checked.name, checked.input);
  };
}

/**
 * Reveals a model only when the library lists it: the renderer may name a path, but the file
 * manager opens nothing the library did not find.
 */
async function reveal(deps: CallDeps, path: string): Promise<Result<unknown>> {
  const listed = await deps.call('models.list', {});
  if (!listed.ok) return listed;
  const models = (listed.value as { models: readonly { path: string }[] }).models;
  if (!models.some((model) => model.path === path)) return err('NOT_FOUND', `${path} is not a model in the library.`);
  try {
    deps.showInFolder(path);
    return ok({ revealed: true });
  } catch (e) {
    return err('INTERNAL', `The file manager could not be opened: ${errorText(e)}`);
  }
}
