/** Shared building blocks: buttons, the error box, progress bars and the modal dialog. */
import { useEffect, useRef, useState, type ReactNode } from 'react';
import type { HearthError } from '../contract.ts';
import { CopyIcon } from './icons.tsx';

const buttonBase =
  'inline-flex items-center justify-center gap-1.5 rounded-md text-sm font-medium transition-colors disabled:cursor-not-allowed disabled:opacity-50';

export const buttonStyles = {
  primary: `${buttonBase} bg-amber-600 px-3 py-1.5 text-white hover:bg-amber-700 dark:bg-amber-500 dark:text-stone-950 dark:hover:bg-amber-400`,
  secondary: `${buttonBase} border border-stone-300 bg-white px-3 py-1.5 text-stone-800 hover:bg-stone-100 dark:border-stone-600 dark:bg-stone-800 dark:text-stone-100 dark:hover:bg-stone-700`,
  danger: `${buttonBase} bg-red-600 px-3 py-1.5 text-white hover:bg-red-700`,
  ghost: `${buttonBase} px-2 py-1 text-stone-600 hover:bg-stone-200 hover:text-stone-900 dark:text-stone-300 dark:hover:bg-stone-700 dark:hover:text-white`,
} as const;

export const inputStyles =
  'w-full rounded-md border border-stone-300 bg-white px-2.5 py-1.5 text-sm text-stone-900 placeholder:text-stone-400 dark:border-stone-600 dark:bg-stone-900 dark:text-stone-100';

/** An error as the user should see it: what happened, and what to do about it. */
export function ErrorBox(props: { error: HearthError; alert?: boolean; title?: string; children?: ReactNode }) {
  return (
    <div
      role={props.alert ? 'alert' : undefined}
      className="rounded-md border border-red-300 bg-red-50 px-3 py-2 text-sm text-red-900 dark:border-red-800 dark:bg-red-950 dark:text-red-100"
    >
      {props.title && <p className="font-semibold">{props.title}</p>}
      <p>{props.error.message}</p>
      {props.error.hint && <p className="mt-1 text-red-800 dark:text-red-200">{props.error.hint}</p>}
      {props.children}
    </div>
  );
}

/**
 * A native <progress>: it is a progressbar to assistive technology, and it needs no inline
 * style (the page's CSP forbids those).
 */
export function ProgressBar(props: { label: string; value: number | null; max?: number }) {
  return (
    <progress
      aria-label={props.label}
      className="progress h-2 w-full"
      max={props.max ?? 1}
      value={props.value === null ? undefined : props.value}
    />
  );
}

/** `describedBy` names what is copied when several Copy buttons share a screen. */
export function CopyButton(props: { text: string; label?: string; className?: string; testId?: string; describedBy?: string }) {
  const label = props.label ?? 'Copy';
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  useEffect(() => {
    if (state === 'idle') return;
    const timer = setTimeout(() => setState('idle'), 1500);
    return () => clearTimeout(timer);
  }, [state]);
  const copy = () => {
    navigator.clipboard.writeText(props.text).then(
      () => setState('copied'),
      () => setState('failed'),
    );
  };
  return (
    <button type="button" onClick={copy} data-testid={props.testId} aria-describedby={props.describedBy} className={props.className ?? buttonStyles.ghost}>
      <CopyIcon className="size-3.5" />
      <span>{state === 'copied' ? 'Copied' : state === 'failed' ? 'Copy failed' : label}</span>
    </button>
  );
}

/**
 * A modal dialog on the native <dialog>: focus is trapped and Esc closes it, for free.
 * `onClose` runs however it closes.
 */
export function Dialog(props: { open: boolean; onClose: () => void; title: string; children: ReactNode }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (props.open && !dialog.open) dialog.showModal();
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  return (
    <dialog
      ref={ref}
      aria-label={props.title}
      onClose={props.onClose}
      className="m-auto w-full max-w-lg rounded-lg border border-stone-300 bg-white p-0 text-stone-900 shadow-xl backdrop:bg-black/40 dark:border-stone-700 dark:bg-stone-900 dark:text-stone-100"
    >
      {props.open && (
        <div className="p-5">
          <h2 className="mb-4 text-lg font-semibold">{props.title}</h2>
          {props.children}
        </div>
      )}
    </dialog>
  );
}

/** A titled region of a screen (the Cache view's, the Server screen's): its heading names it. */
export function Section(props: { id: string; title: string; children: ReactNode }) {
  return (
    <section aria-labelledby={`${props.id}-heading`} className="space-y-3 contain-content">
      <h2 id={`${props.id}-heading`} className="text-base font-semibold">
        {props.title}
      </h2>
      {props.children}
    </section>
  );
}
