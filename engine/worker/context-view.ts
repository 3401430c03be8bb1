/**
 * The model's view of a chat under `drop-oldest`: which messages a turn's prompt holds once the
 * conversation has outgrown the context, and how long a reply may be.
 *
 * The view drops the oldest messages in one large step (down to DROP_TARGET of the context)
 * rather than just enough: a view that starts at the same message turn after turn is one stable
 * prefix, so each turn reuses its KV (from the slot, or from the disk store after a restart) and
 * reads only the new message. Dropping just enough every turn would move the start every turn and
 * re-read the whole window each time (the overflow benchmark's `naive` rows measure that).
 *
 * The start is a pure function of the branch: `replayView` replays the branch's turns and moves
 * the start only at a turn that no longer fits, so the host (or an API client) sends the whole
 * history and needs to remember nothing; a regenerated or edited turn replays its own branch.
 */
import type { ChatHistoryItem, ChatModelFunctionCall, ChatModelResponse, Token } from 'node-llama-cpp';
import type { FunctionCallRecord, PromptMessage } from '../protocol.ts';
import { rebuildWindow } from './overflow.ts';

/**
 * The fraction of the context the view is cut down to when it must move. Smaller steps re-read
 * less per turn but leave the model less history; the overflow benchmark's step sweep measures
 * both (docs/benchmarks.md, "Long chats past the context").
 */
export const DROP_TARGET = 0.5;

/** `maxTokens: 0` (automatic) is an eighth of the context, within these bounds. */
export const AUTO_REPLY_MIN = 64;
export const AUTO_REPLY_MAX = 2048;

/** Reply tokens for `maxTokens` (0: automatic, from the context size; never more than half of it). */
export function replyTokens(maxTokens: number, contextSize: number): number {
  if (Number.isFinite(maxTokens) && maxTokens >= 1) return Math.floor(maxTokens);
  const auto = Math.min(AUTO_REPLY_MAX, Math.max(AUTO_REPLY_MIN, Math.floor(contextSize / 8)));
  return Math.max(1, Math.min(auto, Math.floor(contextSize / 2)));
}

/**
 * An assistant message's function calls as node-llama-cpp's response items, after its text. A
 * call the client has not answered has result `undefined`: the type allows anything, and every
 * chat wrapper writes `undefined` as a function that returned nothing ("void"), where an empty
 * string would read as a function that returned "".
 */
export function callItems(calls: readonly FunctionCallRecord[]): ChatModelFunctionCall[] {
  return calls.map((call) => ({ type: 'functionCall', name: call.name, params: call.params, result: call.result }));
}

/** An assistant message as the model's response: its text (when there is any), then its calls. */
function modelResponse(message: PromptMessage): ChatModelResponse['response'] {
  const calls = message.calls ?? [];
  if (calls.length === 0) return [message.text];
  return [...(message.text !== '' ? [message.text] : []), ...callItems(calls)];
}

/**
 * The chat history node-llama-cpp renders, ending with the model turn to generate: an empty one,
 * or the last message when it is the model's (a reply being continued: LlamaChat writes on, after
 * its function calls' results when it has some).
 */
export function toChatHistory(messages: readonly PromptMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((message): ChatHistoryItem => {
    switch (message.role) {
      case 'system': return { type: 'system', text: message.text };
      case 'user': return { type: 'user', text: message.text };
      case 'assistant': return { type: 'model', response: modelResponse(message) };
    }
  });
  if (messages.at(-1)?.role !== 'assistant') history.push({ type: 'model', response: [] });
  return history;
}

export interface ViewBudget {
  readonly contextSize: number;
  /** Room kept free for the reply: a turn whose window plus this exceeds the context moves the view. */
  readonly reserve: number;
  /** Fraction of the context the window is cut down to when it moves, in (0, 1]; 1 drops just enough. */
  readonly target: number;
}

/** Where a branch's view starts, as indices into the messages after the system prompt. */
export interface ViewStart {
  /** The first message in the view for the branch's last turn. */
  readonly start: number;
  /** Where it started for the turn before (start − before messages were dropped by this turn). */
  readonly before: number;
}

/**
 * Replays the turns of a branch: `roles` and `costs` (tokens, template included) of the messages
 * after the system prompt, whose own cost (with the reply's opening) is `headCost`. A turn ends at
 * each user message and at the last message. At a turn whose window no longer fits with the
 * reply's room, the start moves to the first user message from which the window is at most
 * `target` of the context, else the first from which it fits, else the last message alone.
 * Deterministic; O(n) while turns are short against the context.
 */
export function replayView(roles: readonly PromptMessage['role'][], costs: readonly number[], headCost: number, budget: ViewBudget): ViewStart {
  const n = roles.length;
  const prefix = [0];
  for (let i = 0; i < n; i++) prefix.push(prefix[i]! + costs[i]!);
  const limit = budget.contextSize - budget.reserve;
  const goal = viewGoal(budget);
  const window = (from: number, to: number) => headCost + prefix[to + 1]! - prefix[from]!;
  let start = 0;
  let before = 0;
  for (let end = 0; end < n; end++) {
    const last = end === n - 1;
    if (roles[end] !== 'user' && !last) continue;
    if (last) before = start;
    if (window(start, end) <= limit) continue;
    // The first start after the current one that begins a turn and brings the window to the goal;
    // failing that (the turn's own messages are longer), the first that fits at all.
    let fitting = end;
    let next = start + 1;
    for (; next <= end; next++) {
      if (roles[next] !== 'user' && next !== end) continue;
      const size = window(next, end);
      if (size <= goal) break;
      if (size <= limit) fitting = Math.min(fitting, next);
    }
    start = next <= end ? next : fitting;
  }
  // The start never moves back, so `before` ≤ `start`.
  return { start, before };
}

/** What a moved view is cut down to: `target` of the context, never more than fits with the reply's room. */
function viewGoal(budget: ViewBudget): number {
  return Math.min(budget.contextSize - budget.reserve, Math.floor(budget.contextSize * Math.min(1, Math.max(0, budget.target))));
}

/** Renders a message list as the chat template does, and tokenizes single texts. */
export interface ViewRenderer {
  render(messages: readonly PromptMessage[]): Token[];
  tokenize(text: string): number;
  /**
   * Tokens of an assistant message's function calls and their results as the template writes
   * them; without it, their JSON is counted as text.
   */
  calls?(calls: readonly FunctionCallRecord[]): number;
}

/** Characters of message text whose token counts are remembered, per loaded model. */
const COST_CACHE_CHARS = 16 * 1024 * 1024;

/**
 * Token costs of messages for `replayView`: each text's tokens plus the template's overhead per
 * role, measured once from the model's own chat template. Texts are remembered, so a turn only
 * tokenizes its new messages (a long chat's replay does not re-read its history).
 */
export class ViewCosts {
  readonly #renderer: ViewRenderer;
  readonly #cache = new Map<string, number>();
  #cachedChars = 0;
  #overhead: { user: number; assistant: number; system: number; open: number } | null = null;

  constructor(renderer: ViewRenderer) {
    this.#renderer = renderer;
  }

  /** The template's tokens around one message of each role, and around an empty prompt. */
  #templateOverhead() {
    if (this.#overhead) return this.#overhead;
    const r = this.#renderer;
    const u = (text: string): PromptMessage => ({ role: 'user', text });
    const open = r.render([]).length;
    const one = r.render([u('a')]).length;
    const three = r.render([u('a'), { role: 'assistant', text: 'b' }, u('c')]).length;
    const system = r.render([{ role: 'system', text: 'a' }]).length;
    const user = Math.max(0, one - open - r.tokenize('a'));
    const assistant = Math.max(0, three - one - r.tokenize('b') - r.tokenize('c') - user);
    this.#overhead = { user, assistant, system: Math.max(0, system - open - r.tokenize('a')), open };
    return this.#overhead;
  }

  /** A message's own tokens: its text, and its function calls with their results. */
  #tokens(message: Pick<PromptMessage, 'text' | 'calls'>): number {
    const calls = message.calls ?? [];
    // Keyed on the calls too: the same text with other calls (or results) costs something else.
    // NUL never occurs in JSON, so no text can pass for a text with calls.
    const key = calls.length === 0 ? message.text : `${message.text}\u0000${JSON.stringify(calls)}`;
    const known = this.#cache.get(key);
    if (known !== undefined) return known;
    const r = this.#renderer;
    const count = r.tokenize(message.text) + (calls.length === 0 ? 0 : r.calls ? r.calls(calls) : r.tokenize(JSON.stringify(calls)));
    if (this.#cachedChars + key.length > COST_CACHE_CHARS) {
      this.#cache.clear();
      this.#cachedChars = 0;
    }
    this.#cache.set(key, count);
    this.#cachedChars += key.length;
    return count;
  }

  /**
   * The cost of the system prompt (or none) with the reply's opening, and of each other message.
   * `headExtra`: what else the head carries (the functions' documentation, when a turn offers some).
   */
  of(head: PromptMessage | undefined, body: readonly PromptMessage[], headExtra = 0): { headCost: number; costs: number[] } {
    const overhead = this.#templateOverhead();
    const headCost = overhead.open + headExtra + (head ? overhead.system + this.#tokens(head) : 0);
    const costs = body.map((m) => this.#tokens(m) + (m.role === 'user' ? overhead.user : overhead.assistant));
    return { headCost, costs };
  }
}

/** The prompt a `drop-oldest` turn sends: the view's messages, and how many were left out. */
export interface DropOldestView {
  readonly messages: readonly PromptMessage[];
  readonly tokens: Token[];
  /** Messages after the system prompt outside the view. */
  readonly dropped: number;
  /** Of those, the ones this turn dropped. */
  readonly droppedNow: number;
}

/**
 * The view of `messages` for their last turn. The replay's estimate decides the start; the
 * rendered window is then checked exactly, and in the rare case the estimate was short (or one
 * message is huge) more is dropped until it fits. null when even the last message alone (with the
 * system prompt) leaves no room for `minReply` tokens. `headExtra`: tokens the renderer adds to
 * every window's head beyond what `costs` knows (a turn's function documentation).
 */
export function dropOldestView(messages: readonly PromptMessage[], costs: ViewCosts, renderer: ViewRenderer, budget: ViewBudget, minReply: number, headExtra = 0): DropOldestView | null {
  const head = messages[0]?.role === 'system' ? messages[0] : undefined;
  const body = head ? messages.slice(1) : messages;
  const { headCost, costs: bodyCosts } = costs.of(head, body, headExtra);
  const { start, before } = replayView(body.map((m) => m.role), bodyCosts, headCost, budget);
  const windowFrom = (from: number): PromptMessage[] => (head ? [head, ...body.slice(from)] : body.slice(from));
  let dropped = start;
  let tokens = renderer.render(windowFrom(dropped));
  const { contextSize } = budget;
  if (tokens.length + budget.reserve > contextSize) {
    // Step to the goal again, then settle for a tighter fit: the first turn start that fits.
    const goal = viewGoal(budget);
    const fitsIn = (room: number) => (list: readonly PromptMessage[]) => renderer.render(list).length <= room;
    const window = windowFrom(dropped);
    const found = rebuildWindow(window, fitsIn(goal)) ?? rebuildWindow(window, fitsIn(contextSize - budget.reserve)) ?? rebuildWindow(window, fitsIn(contextSize - minReply));
    if (found === null) return null;
    dropped += found.dropped;
    tokens = renderer.render(found.messages);
  }
  return { messages: windowFrom(dropped), tokens, dropped, droppedNow: Math.max(0, dropped - before) };
}
