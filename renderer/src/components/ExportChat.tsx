/**
 * "Export chat" in the chat header: the active branch as Markdown or JSON (`chats.export`),
 * saved as a file through a Blob download under the safe name the host chose.
 */
import { useState } from 'react';
import type { HearthError } from '../contract.ts';
import { saveExport, type DownloadTarget } from '../lib/download.ts';
import { useActions } from '../state/react.tsx';
import { DownloadIcon } from './icons.tsx';
import { buttonStyles, Dialog, ErrorBox } from './ui.tsx';

const formats = [
  { format: 'markdown', label: 'Download Markdown', note: 'Readable text with headings, for notes or sharing.' },
  { format: 'json', label: 'Download JSON', note: 'Every message with its id and time, for other tools.' },
] as const;

export function ExportChat(props: { chatId: string; target?: DownloadTarget }) {
  const actions = useActions();
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<HearthError | null>(null);
  const [saved, setSaved] = useState<string | null>(null);

  const run = async (format: 'markdown' | 'json') => {
    setBusy(true);
    setError(null);
    const result = await actions.exportChat(props.chatId, format);
    setBusy(false);
    if (!result.ok) {
      setError(result.error);
      return;
    }
    setSaved(saveExport(result.value, props.target));
  };

  return (
    <>
      <button
        type="button"
        className={buttonStyles.ghost}
        onClick={() => {
          setError(null);
          setSaved(null);
          setOpen(true);
        }}
      >
        <DownloadIcon />
        Export chat
      </button>
      <Dialog open={open} onClose={() => setOpen(false)} title="Export chat">
        <p className="mb-3 text-sm text-stone-600 dark:text-stone-300">The conversation as you see it now (the branch on screen), saved as a file.</p>
        <ul className="space-y-2">
          {formats.map((f) => (
            <li key={f.format} className="flex items-center justify-between gap-3">
              <span className="text-sm text-stone-600 dark:text-stone-300">{f.note}</span>
              <button type="button" className={buttonStyles.secondary} disabled={busy} onClick={() => void run(f.format)}>
                {f.label}
              </button>
            </li>
          ))}
        </ul>
        <p role="status" className="mt-3 text-sm">
          {saved ? `Saved as ${saved}.` : ''}
        </p>
        {error && <ErrorBox error={error} title="The chat could not be exported." />}
        <div className="mt-4 flex justify-end">
          <button type="button" className={buttonStyles.secondary} onClick={() => setOpen(false)}>
            Close
          </button>
        </div>
      </Dialog>
    </>
  );
}
