import { useEffect, useState } from 'react';
import type { Chat, HearthError, OverflowPolicy } from '../contract.ts';
import { chatPolicyChoices, type PolicyChoice } from '../lib/context-view.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectChat, selectLoadedModel, selectProfile } from '../state/selectors.ts';
import { PolicyRadio } from './ModelProfile.tsx';
import { SamplingFields, samplingFormFrom, samplingFromForm, type SamplingForm } from './SamplingFields.tsx';
import { buttonStyles, Dialog, ErrorBox, inputStyles } from './ui.tsx';

/** Per-chat system prompt, sampling and overflow policy (chats.configure). */
export function ChatSettingsDialog(props: { chatId: string; open: boolean; onClose: () => void }) {
  const chat = useHearth(selectChat(props.chatId));
  return (
    <Dialog open={props.open && chat !== undefined} onClose={props.onClose} title="Chat settings">
      {chat && <ChatSettingsForm key={chat.id} chat={chat} onClose={props.onClose} />}
    </Dialog>
  );
}

function ChatSettingsForm({ chat, onClose }: { chat: Chat; onClose: () => void }) {
  const actions = useActions();
  const [systemPrompt, setSystemPrompt] = useState(chat.systemPrompt);
  const [sampling, setSampling] = useState<SamplingForm>(() => samplingFormFrom(chat.sampling));
  const [policy, setPolicy] = useState<OverflowPolicy | null>(chat.overflowPolicy ?? null);
  const [error, setError] = useState<HearthError | null>(null);
  const [saving, setSaving] = useState(false);
  const model = useHearth(selectLoadedModel);
  const profile = useHearth(selectProfile);
  const modelPath = model?.path ?? null;
  // "Model default" names the loaded model's policy, which lives in its profile.
  const known = modelPath !== null && profile?.path === modelPath;
  const modelPolicy = known ? profile.profile.overflowPolicy : null;
  useEffect(() => {
    if (modelPath !== null && !known) void actions.loadProfile(modelPath);
  }, [actions, modelPath, known]);

  return (
    <form
      noValidate
      onSubmit={async (e) => {
        e.preventDefault();
        const parsed = samplingFromForm(sampling);
        if (!parsed.ok) {
          setError(parsed.error);
          return;
        }
        setSaving(true);
        const result = await actions.configure(chat.id, { systemPrompt, sampling: parsed.value, overflowPolicy: policy });
        setSaving(false);
        if (result.ok) onClose();
        else setError(result.error);
      }}
      className="space-y-4"
    >
      <div>
        <label htmlFor="chat-system-prompt" className="mb-1 block text-sm font-medium">
          System prompt
        </label>
        <textarea id="chat-system-prompt" rows={5} value={systemPrompt} onChange={(e) => setSystemPrompt(e.target.value)} className={inputStyles} />
      </div>
      <SamplingFields idPrefix="chat" value={sampling} onChange={setSampling} />
      <OverflowPolicyChoices choices={chatPolicyChoices(modelPolicy, model)} value={policy} onChange={setPolicy} />
      {error && <ErrorBox error={error} />}
      <div className="flex justify-end gap-2">
        <button type="button" onClick={onClose} className={buttonStyles.secondary}>
          Cancel
        </button>
        <button type="submit" disabled={saving} className={buttonStyles.primary}>
          Save
        </button>
      </div>
    </form>
  );
}

const help = 'mt-0.5 text-xs text-stone-500 dark:text-stone-400';

/** The radio value of a choice: "model" follows the model's profile. */
const choiceId = (value: OverflowPolicy | null) => `chat-overflow-${value ?? 'model'}`;

/** This chat's overflow policy: the model's, or one of its own. */
export function OverflowPolicyChoices(props: { choices: readonly PolicyChoice[]; value: OverflowPolicy | null; onChange: (value: OverflowPolicy | null) => void }) {
  return (
    <fieldset aria-describedby="chat-overflow-help">
      <legend className="mb-1 block text-sm font-medium">When the chat outgrows the context</legend>
      <p id="chat-overflow-help" className={`${help} mb-1.5`}>
        The whole chat stays here either way; this is what the model sees.
      </p>
      <div className="space-y-1.5">
        {props.choices.map((choice) => {
          const id = choiceId(choice.value);
          return (
            <PolicyRadio
              key={id}
              id={id}
              name="chat-overflow"
              value={choice.value ?? 'model'}
              label={choice.label}
              help={choice.disabledReason ?? choice.description}
              checked={props.value === choice.value}
              disabled={choice.disabledReason !== undefined}
              dimmed={choice.disabledReason !== undefined}
              onChange={() => props.onChange(choice.value)}
            />
          );
        })}
      </div>
    </fieldset>
  );
}
