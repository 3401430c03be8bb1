/**
 * What a reply offers when the context ran out: Continue for one that was cut short, and, for a
 * turn that stopped under the `stop` policy, the ways on (drop the oldest messages, a larger
 * context when the planner says it fits, a new chat). The views take plain props, so their tests
 * render them without a store.
 */
import { useEffect, useState } from 'react';
import type { Message } from '../contract.ts';
import { continueOffer, raiseContextTarget, raiseFits } from '../lib/context-view.ts';
import { formatCount } from '../lib/format.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectIsActiveLeaf, selectLoadedModel, selectStreamingId } from '../state/selectors.ts';
import { buttonStyles } from './ui.tsx';

export function ContinueOffer({ chatId, message }: { chatId: string; message: Message }) {
  const actions = useActions();
  const last = useHearth(selectIsActiveLeaf(chatId, message.id));
  const busy = useHearth(selectStreamingId(chatId)) !== null;
  const [pending, setPending] = useState(false);
  const text = continueOffer(message, { last, busy });
  if (text === null) return null;
  const onContinue = async () => {
    setPending(true);
    await actions.continueReply(chatId, message.id);
    setPending(false);
  };
  return <ContinueOfferView text={text} pending={pending} onContinue={() => void onContinue()} />;
}

export function ContinueOfferView(props: { text: string; pending: boolean; onContinue: () => void }) {
  return (
    <p className="mt-1.5 flex flex-wrap items-center gap-2 text-xs text-stone-600 dark:text-stone-300" data-testid="continue-offer">
      {props.text !== '' && <span>{props.text}</span>}
      <button type="button" disabled={props.pending} onClick={props.onContinue} data-testid="continue-reply" className={buttonStyles.secondary}>
        Continue
      </button>
    </p>
  );
}

/**
 * A turn that stopped at the end of the context. The larger context is offered only once the
 * planner said the loaded model fits there with the K/V pair it runs, so the button never
 * promises a reload that would fail for memory.
 */
export function StopAndAsk({ chatId, messageId }: { chatId: string; messageId: string }) {
  const actions = useActions();
  const model = useHearth(selectLoadedModel);
  const busy = useHearth(selectStreamingId(chatId)) !== null;
  const [pending, setPending] = useState<null | 'drop' | 'raise' | 'new'>(null);
  const [fitsAt, setFitsAt] = useState<{ path: string; contextSize: number } | null>(null);
  const target = raiseContextTarget(model);
  const path = model?.path ?? null;

  useEffect(() => {
    if (path === null || target === null || !model) return;
    let current = true;
    void actions.planContext(path, target).then((result) => {
      if (current) setFitsAt(result.ok && raiseFits(result.value, model) ? { path, contextSize: target } : null);
    });
    return () => {
      current = false;
    };
    // `model` is a new object with each status event; the path and the target are what the plan is for.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [actions, path, target]);

  const raiseTo = fitsAt !== null && fitsAt.path === path && fitsAt.contextSize === target ? target : null;
  const run = async (which: 'drop' | 'raise' | 'new', act: () => Promise<unknown>) => {
    setPending(which);
    await act();
    setPending(null);
  };
  return (
    <StopAndAskView
      raiseTo={raiseTo}
      pending={pending}
      disabled={busy || pending !== null}
      onDropOldest={() => void run('drop', () => actions.dropOldestAndRetry(chatId, messageId))}
      onRaise={() => {
        if (path !== null && raiseTo !== null) void run('raise', () => actions.raiseContextAndRetry(chatId, messageId, path, raiseTo));
      }}
      onNewChat={() => void run('new', () => actions.newChat())}
    />
  );
}

export interface StopAndAskViewProps {
  /** The larger context to offer; null hides that choice. */
  readonly raiseTo: number | null;
  readonly pending: null | 'drop' | 'raise' | 'new';
  readonly disabled: boolean;
  readonly onDropOldest: () => void;
  readonly onRaise: () => void;
  readonly onNewChat: () => void;
}

export function StopAndAskView(props: StopAndAskViewProps) {
  return (
    <div className="mt-2 space-y-1.5" data-testid="stop-and-ask">
      <div role="group" aria-label="What to do about the full context" className="flex flex-wrap gap-2">
        <button type="button" disabled={props.disabled} onClick={props.onDropOldest} data-testid="overflow-drop-oldest" className={buttonStyles.primary}>
          Continue without the oldest messages
        </button>
        {props.raiseTo !== null && (
          <button type="button" disabled={props.disabled} onClick={props.onRaise} data-testid="overflow-raise-context" className={buttonStyles.secondary}>
            Raise the context to {formatCount(props.raiseTo)} tokens
          </button>
        )}
        <button type="button" disabled={props.disabled} onClick={props.onNewChat} data-testid="overflow-new-chat" className={buttonStyles.secondary}>
          New chat
        </button>
      </div>
      {props.pending === 'raise' && props.raiseTo !== null && (
        <p role="status" className="text-xs">
          Reloading the model with {formatCount(props.raiseTo)} tokens of context…
        </p>
      )}
    </div>
  );
}
