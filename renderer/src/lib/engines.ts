/**
 * Words and checks for remote engines: the Settings list and its dialog, the chat's engine
 * picker and the Cache view's remote figures. Pure, so the components and their tests say each
 * thing one way.
 */
import { remoteEngineKindNames, type ChatEngineRef, type HearthError, type ModelInfo, type RemoteCacheSample, type RemoteEngine, type RemoteEngineStatus, type RemoteOffloadTier } from '../contract.ts';
import { formatBytes, formatCount, formatPercent } from './format.ts';
import type { Ring } from './ring.ts';

/** What the UI calls this computer's engine (the host's ReplyEngine name for local replies). */
export const localEngineName = 'This computer';

/** "GPU box · Llama-3-70B". */
export function placeText(engineName: string, model: string): string {
  return `${engineName} · ${model}`;
}

/** "This computer · Qwen2.5 0.5B Instruct", or "This computer · no model loaded". */
export function localPlaceText(model: Pick<ModelInfo, 'name'> | null): string {
  return placeText(localEngineName, model ? model.name : 'no model loaded');
}

/** "3 models", "1 model", "no models". */
export function modelCountText(n: number): string {
  return n === 0 ? 'no models' : `${formatCount(n)} ${n === 1 ? 'model' : 'models'}`;
}

/** An engine's state in a few words: "Online · 3 models", "Not checked yet", or the error's message. */
export function engineStatusText(status: RemoteEngineStatus): string {
  switch (status.state) {
    case 'online':
      return `Online · ${modelCountText(status.models.length)}`;
    case 'unknown':
      return 'Not checked yet';
    case 'error':
      return status.error?.message ?? 'The last check failed.';
  }
}

/**
 * Where a chat runs, for its header. `removed`: it names an engine that no longer exists (it
 * keeps its history and must be moved); `error`: its engine's last check failed.
 */
export type ChatPlace =
  | { readonly kind: 'local'; readonly text: string }
  | { readonly kind: 'remote'; readonly text: string; readonly engine: RemoteEngine }
  | { readonly kind: 'error'; readonly text: string; readonly engine: RemoteEngine; readonly error: HearthError | undefined }
  | { readonly kind: 'removed'; readonly text: string }
  /** The engines are not listed yet. */
  | { readonly kind: 'pending'; readonly text: string };

/** `engines` null: not listed yet, so a chat's engine is not taken for removed. */
export function chatPlace(ref: ChatEngineRef | null, engines: readonly RemoteEngine[] | null, loaded: Pick<ModelInfo, 'name'> | null): ChatPlace {
  if (ref === null) return { kind: 'local', text: localPlaceText(loaded) };
  const engine = engines?.find((e) => e.id === ref.engineId);
  if (!engine) {
    if (engines === null) return { kind: 'pending', text: placeText('Remote engine', ref.model) };
    return { kind: 'removed', text: 'Engine removed — move this chat' };
  }
  const text = placeText(engine.name, ref.model);
  return engine.status.state === 'error' ? { kind: 'error', text, engine, error: engine.status.error } : { kind: 'remote', text, engine };
}

/** One choice in the chat's engine picker. */
export interface PickerOption {
  /** Unique in the list: `local`, or `<engineId>/<model>`. */
  readonly key: string;
  /** What `chats.move` gets. */
  readonly target: ChatEngineRef | null;
  readonly label: string;
  /** The model's context length, when the server says. */
  readonly detail?: string;
  readonly disabled: boolean;
}

/** The picker's groups: this computer first, then each engine with its models. */
export interface PickerGroup {
  readonly key: string;
  readonly title: string;
  /** The engine's kind ("vLLM"); absent for this computer. */
  readonly kind?: string;
  /** Why its models cannot be picked now (an engine in error). */
  readonly error?: HearthError;
  /** Said in place of the models when there are none to list. */
  readonly empty?: string;
  readonly options: readonly PickerOption[];
}

export function pickerGroups(engines: readonly RemoteEngine[] | null, loaded: Pick<ModelInfo, 'name'> | null): PickerGroup[] {
  const groups: PickerGroup[] = [
    { key: 'local', title: localEngineName, options: [{ key: 'local', target: null, label: localPlaceText(loaded), disabled: false }] },
  ];
  for (const engine of engines ?? []) {
    const { state, models, error } = engine.status;
    const broken = state === 'error';
    const options = models.map((model) => ({
      key: `${engine.id}/${model.id}`,
      target: { engineId: engine.id, model: model.id },
      label: placeText(engine.name, model.id),
      ...(model.contextLength ? { detail: `${formatCount(model.contextLength)} tokens of context` } : {}),
      disabled: broken,
    }));
    const empty = models.length > 0 ? undefined : state === 'unknown' ? 'Not checked yet: check it in Settings → Engines.' : broken ? undefined : 'It serves no models.';
    groups.push({
      key: engine.id,
      title: engine.name,
      kind: remoteEngineKindNames[engine.kind],
      ...(broken ? { error: error ?? { code: 'ENGINE_UNAVAILABLE', message: 'The last check failed.' } } : {}),
      ...(empty ? { empty } : {}),
      options,
    });
  }
  return groups;
}

/** Whether two places are the same (null: this computer). */
export function samePlace(a: ChatEngineRef | null, b: ChatEngineRef | null): boolean {
  return a === null || b === null ? a === b : a.engineId === b.engineId && a.model === b.model;
}

/**
 * What picking `target` does: `stay` when it is where the chat runs (and that engine exists),
 * `move` at once for a chat with no messages (no history to read again), else `ask` first.
 */
export function pickOutcome(target: ChatEngineRef | null, current: ChatEngineRef | null, removed: boolean, messages: number): 'stay' | 'move' | 'ask' {
  if (!removed && samePlace(target, current)) return 'stay';
  return messages === 0 ? 'move' : 'ask';
}

/** The question before a chat with messages moves. */
export function moveQuestion(target: string, messages: number): string {
  return `Move this chat to ${target}? Its history (${formatCount(messages)} ${messages === 1 ? 'message' : 'messages'}) will be read again there.`;
}

// The add/edit dialog's checks: the contract's rules (api.ts), said beside the field.

/** Why a base URL would be refused, or null. */
export function baseUrlProblem(text: string): string | null {
  const value = text.trim();
  if (value === '') return 'Enter the server’s address, like http://gpu-box:8000.';
  if (value.length > 2000) return 'The address is too long.';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'Enter a full address with http:// or https://, like http://gpu-box:8000.';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'The address must start with http:// or https://.';
  if (url.username !== '' || url.password !== '') return 'Leave the user name and password out of the address; put a key in API key.';
  if (url.search !== '' || url.hash !== '') return 'The address cannot have a query (?…) or a fragment (#…).';
  return null;
}

export function engineNameProblem(text: string): string | null {
  const value = text.trim();
  if (value === '') return 'Give the engine a name.';
  if (value.length > 80) return 'The name can be at most 80 characters.';
  return null;
}

/** An empty key is no problem: it means none (add) or keep the stored one (edit). */
export function apiKeyProblem(text: string): string | null {
  const value = text.trim();
  if (value === '') return null;
  if (value.length > 4096) return 'The key is too long.';
  if (!/^[\x21-\x7e]+$/.test(value)) return 'An API key is printable ASCII without spaces.';
  return null;
}

// The Cache view's remote figures: a null is never a zero.

export const notReported = 'not reported';

export function shareText(value: number | null): string {
  return value === null ? notReported : formatPercent(value);
}

export function figureText(value: number | null): string {
  return value === null ? notReported : formatCount(value);
}

/** What an offload tier holds: bytes (LMCache), or tokens of its capacity (HiCache), as the server counts it. */
export function offloadHeldText(tier: Pick<RemoteOffloadTier, 'usedBytes' | 'usedTokens' | 'capacityTokens'>): string {
  const parts: string[] = [];
  if (tier.usedBytes !== null) parts.push(formatBytes(tier.usedBytes));
  if (tier.usedTokens !== null) parts.push(`${formatCount(tier.usedTokens)}${tier.capacityTokens !== null ? ` of ${formatCount(tier.capacityTokens)}` : ''} tokens`);
  return parts.length > 0 ? parts.join(' · ') : notReported;
}

/**
 * The recent hit rate: null also when the interval had no lookups, which is worth telling apart
 * from a server that reports no hit rate at all.
 */
export function recentHitText(sample: Pick<RemoteCacheSample, 'prefixHitRate' | 'recentPrefixHitRate'>): string {
  if (sample.recentPrefixHitRate !== null) return formatPercent(sample.recentPrefixHitRate);
  return sample.prefixHitRate === null ? notReported : 'no lookups since the last reading';
}

/** The remote chart's columns: time in seconds, KV usage, hit rate since start, recent hit rate (0..1; null where not reported). */
export function remoteSeries(ring: Pick<Ring<RemoteCacheSample>, 'forEach' | 'size'>): [number[], (number | null)[], (number | null)[], (number | null)[]] {
  const xs = new Array<number>(ring.size);
  const usage = new Array<number | null>(ring.size);
  const hit = new Array<number | null>(ring.size);
  const recent = new Array<number | null>(ring.size);
  ring.forEach((sample, i) => {
    xs[i] = sample.at / 1000;
    usage[i] = sample.kvUsage;
    hit[i] = sample.prefixHitRate;
    recent[i] = sample.recentPrefixHitRate;
  });
  return [xs, usage, hit, recent];
}
