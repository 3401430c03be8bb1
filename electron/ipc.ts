/**
 * What main does with a call from the renderer: check who sent it, validate it against the
 * contract, and run it. Host-specific calls (the native file dialog) are answered here; the
 * rest go to the engine host. Pure (no `electron` import) so it is unit-tested.
 */
import { err, ok, validateCall, type Result, errorText } from '../engine/contract/index.ts';

export interface CallDeps {
  /** The engine host's entry (engine/index.ts `Hearth.call`). */
  readonly call: (name: unknown, payload: unknown) => Promise<Result<unknown>>;
  /** Shows the native "open model" dialog; null when the user cancels. */
  readonly pickModelFile: () => Promise<string | null>;
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
    return deps.call(checked.name, checked.input);
  };
}
