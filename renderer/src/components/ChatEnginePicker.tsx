/**
 * Where a chat runs, in its header, and the picker that moves it: this computer (with whichever
 * model is loaded) or a remote engine's model. A move copies nothing: the next reply reads the
 * history again there, so a chat with messages asks first.
 */
import { useState } from 'react';
import type { ChatEngineRef, HearthError } from '../contract.ts';
import { chatPlace, moveQuestion, pickerGroups, pickOutcome, samePlace, type ChatPlace, type PickerGroup, type PickerOption } from '../lib/engines.ts';
import { routeHash } from '../lib/route.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectActivePathLength, selectChat, selectEngines, selectLoadedModel } from '../state/selectors.ts';
import { buttonStyles, Dialog, ErrorBox } from './ui.tsx';

export function ChatEnginePicker({ chatId }: { chatId: string }) {
  const chat = useHearth(selectChat(chatId));
  const engines = useHearth(selectEngines);
  const loaded = useHearth(selectLoadedModel);
  const [open, setOpen] = useState(false);
  if (!chat) return null;
  const place = chatPlace(chat.engine, engines, loaded);
  return (
    <>
      <PlaceButton place={place} onOpen={() => setOpen(true)} />
      <Dialog open={open} onClose={() => setOpen(false)} title="Where this chat runs">
        <PickerBox chatId={chatId} current={chat.engine} place={place} onDone={() => setOpen(false)} />
      </Dialog>
    </>
  );
}

/** The header's control: where the chat runs, and the way to change it. */
export function PlaceButton({ place, onOpen }: { place: ChatPlace; onOpen: () => void }) {
  if (place.kind === 'removed') {
    return (
      <button
        type="button"
        data-testid="chat-engine"
        data-state="removed"
        aria-haspopup="dialog"
        onClick={onOpen}
        className="shrink-0 rounded-md border border-amber-400 bg-amber-100 px-2.5 py-1 text-sm font-semibold text-amber-950 hover:bg-amber-200 dark:border-amber-700 dark:bg-amber-950 dark:text-amber-100 dark:hover:bg-amber-900"
      >
        {place.text}
      </button>
    );
  }
  const error = place.kind === 'error' ? (place.error?.message ?? 'Its last check failed.') : null;
  return (
    <button
      type="button"
      data-testid="chat-engine"
      data-state={place.kind}
      aria-haspopup="dialog"
      title={error ? `Change where this chat runs. The engine's last check failed: ${error}` : 'Change where this chat runs'}
      onClick={onOpen}
      className={`${buttonStyles.ghost} max-w-72 min-w-0 shrink`}
    >
      {error && <span aria-hidden="true" className="inline-block size-2 shrink-0 rounded-full bg-red-500" />}
      <span className="truncate">{place.text}</span>
    </button>
  );
}

function PickerBox(props: { chatId: string; current: ChatEngineRef | null; place: ChatPlace; onDone: () => void }) {
  const actions = useActions();
  const engines = useHearth(selectEngines);
  const loaded = useHearth(selectLoadedModel);
  const messages = useHearth(selectActivePathLength(props.chatId));
  const [pending, setPending] = useState<PickerOption | null>(null);
  const [error, setError] = useState<HearthError | null>(null);
  const [moving, setMoving] = useState(false);

  const move = async (option: PickerOption) => {
    setMoving(true);
    const result = await actions.moveChat(props.chatId, option.target);
    setMoving(false);
    if (!result.ok) {
      setError(result.error);
      setPending(null);
      return;
    }
    props.onDone();
  };

  const pick = (option: PickerOption) => {
    if (moving || option.disabled) return;
    setError(null);
    const outcome = pickOutcome(option.target, props.current, props.place.kind === 'removed', messages);
    if (outcome === 'stay') props.onDone();
    else if (outcome === 'move') void move(option);
    else setPending(option);
  };

  return (
    <PickerView
      groups={pickerGroups(engines, loaded)}
      current={props.place.kind === 'removed' ? undefined : props.current}
      removed={props.place.kind === 'removed'}
      pending={pending}
      messages={messages}
      error={error}
      moving={moving}
      onPick={pick}
      onConfirm={() => pending && void move(pending)}
      onCancelConfirm={() => setPending(null)}
      onClose={props.onDone}
    />
  );
}

export interface PickerViewProps {
  readonly groups: readonly PickerGroup[];
  /** Where the chat runs now (null: this computer); undefined when that engine was removed. */
  readonly current: ChatEngineRef | null | undefined;
  readonly removed: boolean;
  /** The choice waiting for the user's yes (a chat with messages). */
  readonly pending: PickerOption | null;
  /** Messages on the branch on screen: what the move reads again. */
  readonly messages: number;
  readonly error: HearthError | null;
  readonly moving: boolean;
  readonly onPick: (option: PickerOption) => void;
  readonly onConfirm: () => void;
  readonly onCancelConfirm: () => void;
  readonly onClose: () => void;
}

export function PickerView(props: PickerViewProps) {
  if (props.pending) {
    return (
      <div className="space-y-4">
        <p data-testid="engine-move-question" className="text-sm">
          {moveQuestion(props.pending.label, props.messages)}
        </p>
        <div className="flex justify-end gap-2">
          <button type="button" onClick={props.onCancelConfirm} className={buttonStyles.secondary}>
            Cancel
          </button>
          <button type="button" autoFocus disabled={props.moving} onClick={props.onConfirm} className={buttonStyles.primary}>
            {props.moving ? 'Moving…' : 'Move'}
          </button>
        </div>
      </div>
    );
  }
  return (
    <div className="space-y-4">
      {props.removed && (
        <p className="rounded-md border border-amber-300 bg-amber-50 px-3 py-2 text-sm text-amber-950 dark:border-amber-800 dark:bg-amber-950 dark:text-amber-100">
          The engine this chat ran on was removed. Its history is here: pick where its next replies are written.
        </p>
      )}
      {props.error && <ErrorBox error={props.error} alert title="The chat could not be moved." />}
      <div className="max-h-[60vh] space-y-4 overflow-y-auto">
        {props.groups.map((group) => (
          <PickerGroupView key={group.key} group={group} current={props.current} disabled={props.moving} onPick={props.onPick} />
        ))}
      </div>
      <div className="flex items-center justify-between gap-2">
        <a href={routeHash({ name: 'settings', section: 'engines' })} onClick={props.onClose} className="text-sm text-amber-700 underline hover:text-amber-800 dark:text-amber-400 dark:hover:text-amber-300">
          Add or manage engines
        </a>
        <button type="button" onClick={props.onClose} className={buttonStyles.secondary}>
          Close
        </button>
      </div>
    </div>
  );
}

function PickerGroupView(props: { group: PickerGroup; current: ChatEngineRef | null | undefined; disabled: boolean; onPick: (option: PickerOption) => void }) {
  const { group } = props;
  const headingId = `engine-pick-${group.key}`;
  return (
    <div role="group" aria-labelledby={headingId} className="space-y-1.5">
      <h3 id={headingId} className="text-sm font-semibold">
        {group.title}
        {group.kind && <span className="ml-2 text-xs font-normal text-stone-500 dark:text-stone-400">{group.kind}</span>}
      </h3>
      {group.error && <ErrorBox error={group.error} />}
      {group.empty && <p className="text-sm text-stone-500 dark:text-stone-400">{group.empty}</p>}
      {group.options.length > 0 && (
        <ul className="space-y-1">
          {group.options.map((option) => {
            const current = props.current !== undefined && samePlace(option.target, props.current);
            return (
              <li key={option.key}>
                <button
                  type="button"
                  aria-label={option.label}
                  aria-current={current ? 'true' : undefined}
                  data-testid="engine-option"
                  disabled={option.disabled || props.disabled}
                  onClick={() => props.onPick(option)}
                  className={`flex w-full items-baseline justify-between gap-3 rounded-md border px-3 py-1.5 text-left text-sm disabled:cursor-not-allowed disabled:opacity-50 ${
                    current
                      ? 'border-amber-500 bg-amber-50 dark:border-amber-500 dark:bg-stone-800'
                      : 'border-stone-200 hover:bg-stone-100 dark:border-stone-700 dark:hover:bg-stone-800'
                  }`}
                >
                  <span className="min-w-0 break-all">{option.label}</span>
                  <span aria-hidden="true" className="shrink-0 text-xs text-stone-500 dark:text-stone-400">
                    {current ? 'Current' : (option.detail ?? '')}
                  </span>
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}
