import { useState } from 'react';
import type { Chat, HearthError } from '../contract.ts';
import { useActions, useHearth } from '../state/react.tsx';
import { selectChat } from '../state/selectors.ts';
import { SamplingFields, samplingFromForm, type SamplingForm } from './SamplingFields.tsx';
import { buttonStyles, Dialog, ErrorBox, inputStyles } from './ui.tsx';

/** Per-chat system prompt and sampling (chats.configure). */
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
  const [sampling, setSampling] = useState<SamplingForm>({
    temperature: String(chat.sampling.temperature),
    topP: String(chat.sampling.topP),
    maxTokens: String(chat.sampling.maxTokens),
  });
  const [error, setError] = useState<HearthError | null>(null);
  const [saving, setSaving] = useState(false);

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
        const result = await actions.configure(chat.id, { systemPrompt, sampling: parsed.value });
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
