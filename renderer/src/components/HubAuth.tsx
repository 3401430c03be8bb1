/**
 * The Hugging Face token: whether one is stored, a field to store one, and Forget. The token goes
 * to the host once (`hub.setToken`) and never comes back: the field empties on success and the
 * page only ever knows `hasToken`. Gated and private repositories show the form beside their message.
 */
import { useEffect, useId, useState } from 'react';
import type { HearthError, HubAuthState } from '../contract.ts';
import { hubRepoUrl } from '../lib/models.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectHubAuth } from '../state/selectors.ts';
import { buttonStyles, ErrorBox, inputStyles } from './ui.tsx';

const defaultEndpoint = 'https://huggingface.co';

/** The token form, wired to the store; `onSaved` runs after a token was stored. */
export function HubTokenForm(props: { onSaved?: () => void }) {
  const actions = useActions();
  const auth = useHearth(selectHubAuth);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<HearthError | null>(null);
  useEffect(() => {
    if (auth === null) void actions.loadHubAuth();
  }, [auth, actions]);
  const set = async (token: string | null) => {
    setBusy(true);
    const result = await actions.setHubToken(token);
    setBusy(false);
    setError(result.ok ? null : result.error);
    if (result.ok && token !== null) props.onSaved?.();
    return result.ok;
  };
  return <HubTokenFields auth={auth} busy={busy} error={error} onSave={set} onForget={() => void set(null)} />;
}

export interface HubTokenFieldsProps {
  readonly auth: HubAuthState | null;
  readonly busy: boolean;
  readonly error: HearthError | null;
  /** Resolves true when the host stored it (the field then empties). */
  onSave(token: string): Promise<boolean>;
  onForget(): void;
}

/** The fields alone: a password field (never filled from the host), Save, and Forget token when one is stored. */
export function HubTokenFields(props: HubTokenFieldsProps) {
  const [token, setToken] = useState('');
  const id = useId();
  const stored = props.auth?.hasToken === true;
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        const value = token.trim();
        if (value === '') return;
        void props.onSave(value).then((saved) => {
          if (saved) setToken('');
        });
      }}
      className="space-y-2"
    >
      <p data-testid="hub-token-state" className="text-sm">
        {props.auth === null ? 'Checking for a stored token…' : stored ? 'A token is stored.' : 'No token is stored.'}
      </p>
      <label htmlFor={id} className="block text-sm font-medium">
        Hugging Face token
      </label>
      <div className="flex flex-wrap gap-2">
        <input
          id={id}
          type="password"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          placeholder={stored ? 'Paste a new token to replace it' : 'hf_…'}
          autoComplete="off"
          spellCheck={false}
          maxLength={500}
          className={`${inputStyles} min-w-48 flex-1`}
        />
        <button type="submit" disabled={props.busy || token.trim() === ''} className={buttonStyles.primary}>
          Save token
        </button>
        {stored && (
          <button type="button" disabled={props.busy} onClick={props.onForget} className={buttonStyles.secondary}>
            Forget token
          </button>
        )}
      </div>
      <p className="text-xs text-stone-500 dark:text-stone-400">
        A read token from your Hugging Face settings. It is kept {props.auth?.endpoint && props.auth.endpoint !== defaultEndpoint ? `for ${props.auth.endpoint} ` : ''}in the system’s
        keychain where there is one, and is only sent to Hugging Face.
      </p>
      {props.error && <ErrorBox error={props.error} alert />}
    </form>
  );
}

/** Discover's token section: for gated and private repositories. */
export function HubTokenSection() {
  return (
    <section aria-labelledby="hub-token-heading" className="space-y-2 rounded-lg border border-stone-200 p-4 dark:border-stone-800">
      <h2 id="hub-token-heading" className="text-base font-semibold">
        Gated and private models
      </h2>
      <p className="text-sm text-stone-600 dark:text-stone-300">Some repositories need you to accept their terms on Hugging Face, and a token that lets Hearth read them.</p>
      <HubTokenForm />
    </section>
  );
}

/** An AUTH_REQUIRED answer: what it means, where to ask for access, and the token form. */
export function AuthRequired(props: { repo: string; error: HearthError; endpoint: string; onSaved?: () => void }) {
  return (
    <div role="alert" data-testid="hub-auth-required" className="space-y-3 rounded-md border border-amber-300 bg-amber-50 p-4 text-sm text-amber-950 dark:border-amber-800 dark:bg-amber-950 dark:text-amber-50">
      <p className="font-semibold">This repository needs permission.</p>
      <p>{props.error.message}</p>
      <p>
        Request access on{' '}
        <a href={hubRepoUrl(props.endpoint, props.repo)} target="_blank" rel="noreferrer" className="font-medium underline">
          its Hugging Face page
        </a>
        , then store a token of the account that has it.
      </p>
      <HubTokenForm onSaved={props.onSaved} />
    </div>
  );
}

export { defaultEndpoint as hubDefaultEndpoint };
