/**
 * Everything the UI asks of Hearth, as functions over the transport and the store. Components
 * call these and read the store; they never touch the transport. Every action returns the call's
 * `Result` (never throws), so a component can keep its local state (e.g. the composer's text)
 * when an action fails.
 */
import type {
  ApiServerState,
  CallInput,
  CallOutputs,
  Chat,
  ChatCache,
  ChatEngineRef,
  ChatExport,
  DownloadItem,
  HearthError,
  HubAuthState,
  HubSort,
  KvPlan,
  KvQuality,
  KvStoreInfo,
  LocalEngineState,
  ModelKvUsage,
  ModelProfileView,
  OverflowPolicy,
  RemoteEngine,
  RemoteEngineStatus,
  Result,
  Sampling,
  Settings,
  SpeedProfile,
} from '../contract.ts';
import { latestLeafUnder, resolveLeaf } from '../lib/tree.ts';
import type { Route } from '../lib/route.ts';
import type { Transport } from '../transport/types.ts';
import { planKey, type PlanTarget } from './profile-slice.ts';
import type { HearthStore } from './store.ts';

export interface Actions {
  /** Fetches app state, the chat list and the open chat; run at start and after every reconnect. */
  resync(): Promise<void>;
  navigate(route: Route): void;
  openChat(chatId: string, options?: { force?: boolean }): Promise<void>;
  /** A new chat, opened; on this computer unless `engine` names a remote engine's model. */
  newChat(engine?: ChatEngineRef): Promise<Result<Chat>>;
  /**
   * Runs the chat's next replies elsewhere (`chats.move`; null: this computer). The history is not
   * copied: the next reply reads it again there.
   */
  moveChat(chatId: string, engine: ChatEngineRef | null): Promise<Result<Chat>>;
  send(chatId: string, text: string): Promise<Result<unknown>>;
  stop(chatId: string): Promise<Result<unknown>>;
  regenerate(chatId: string, messageId: string): Promise<Result<unknown>>;
  edit(chatId: string, messageId: string, text: string): Promise<Result<unknown>>;
  switchBranch(chatId: string, messageId: string): Promise<Result<unknown>>;
  rename(chatId: string, title: string): Promise<Result<unknown>>;
  remove(chatId: string): Promise<Result<unknown>>;
  /** Writes more of the reply `messageId` (the branch's last), in the same message. */
  continueReply(chatId: string, messageId: string): Promise<Result<unknown>>;
  /** `overflowPolicy` null follows the loaded model's profile. */
  configure(chatId: string, config: { systemPrompt?: string; sampling?: Partial<Sampling>; overflowPolicy?: OverflowPolicy | null }): Promise<Result<unknown>>;
  /** After a turn stopped at the end of the context: this chat drops its oldest messages from now on, and the reply is written again. */
  dropOldestAndRetry(chatId: string, messageId: string): Promise<Result<unknown>>;
  /**
   * After a turn stopped at the end of the context: the model's profile gets a larger context (the
   * host reloads the model before it answers), and once the model is ready the reply is written again.
   */
  raiseContextAndRetry(chatId: string, messageId: string, path: string, contextSize: number): Promise<Result<unknown>>;
  /** The planner's answer for one model and context, kept out of the store (the Settings planner owns the store's). */
  planContext(path: string, contextSize: number): Promise<Result<KvPlan>>;
  refreshModels(): Promise<void>;
  loadModel(path: string): Promise<Result<unknown>>;
  pickAndLoadModel(): Promise<Result<unknown>>;
  unloadModel(): Promise<Result<unknown>>;
  /** Loads a model, then opens a new chat on it (a finished download's "Load and chat"). */
  loadAndChat(path: string): Promise<Result<unknown>>;
  /** Shows a model's file in the system's file manager (Electron); NOT_SUPPORTED elsewhere. */
  revealModel(path: string): Promise<Result<unknown>>;
  /** The stored KV computed with a model, for the delete confirmation. */
  modelKvUsage(path: string): Promise<Result<ModelKvUsage>>;
  /** Deletes one of Hearth's models (and with `deleteKv` its stored KV), then lists the library again. */
  deleteModel(path: string, deleteKv: boolean): Promise<Result<CallOutputs['models.delete']>>;
  /** Moves Hearth's models folder (null: back to the default), then lists the library again. */
  setModelsDir(dir: string | null): Promise<Result<Settings>>;
  /**
   * Searches Hugging Face. Searches may overlap (the user types): only the latest one's answer
   * reaches the store.
   */
  searchHub(query: string, sort: HubSort): Promise<Result<CallOutputs['hub.search']>>;
  /**
   * A repository's files and then the planner's verdicts for them, into the store. Answered from
   * the store when it holds them (unless `fresh`); calls already running are joined.
   */
  openHubRepo(repo: string, options?: { fresh?: boolean }): Promise<void>;
  loadHubAuth(): Promise<Result<HubAuthState>>;
  /** Stores (or with null forgets) the Hugging Face token; repositories are read again with it. */
  setHubToken(token: string | null): Promise<Result<HubAuthState>>;
  /** The download queue into the store (at start and after every reconnect). */
  loadDownloads(): Promise<Result<CallOutputs['downloads.list']>>;
  startDownload(input: CallInput<'downloads.start'>): Promise<Result<DownloadItem>>;
  pauseDownload(downloadId: string): Promise<Result<DownloadItem>>;
  resumeDownload(downloadId: string): Promise<Result<DownloadItem>>;
  cancelDownload(downloadId: string): Promise<Result<DownloadItem>>;
  clearDownloads(): Promise<Result<CallOutputs['downloads.clear']>>;
  /** First run: every recommended model's repository and verdicts, for the onboarding panel. */
  loadRecommendations(options?: { fresh?: boolean }): Promise<void>;
  /**
   * First run's one click: downloads `file` of `repo`, and when it is done loads it and opens a
   * new chat (even if the user went elsewhere meanwhile).
   */
  downloadAndChat(repo: string, fileId: string): Promise<Result<DownloadItem>>;
  /** A download ended (`download.progress` done): the library lists it, and "Download and chat" goes on. */
  downloadDone(item: DownloadItem): Promise<void>;
  updateSettings(patch: Partial<Omit<Settings, 'lastModelPath' | 'defaultSampling'>> & { defaultSampling?: Partial<Sampling> }): Promise<Result<Settings>>;
  /** Measures the disk KV store (size, budget, free disk) into the store. */
  refreshKvStats(): Promise<Result<KvStoreInfo>>;
  /** Reads a model's per-model settings and what validation says of them. */
  loadProfile(path: string): Promise<Result<ModelProfileView>>;
  /** Saves a model's profile; the host refuses one with errors (INVALID_INPUT) and reloads the loaded model for a valid one. */
  saveProfile(path: string, profile: CallInput<'models.setProfile'>['profile']): Promise<Result<ModelProfileView>>;
  /**
   * The planner's table for a model and context. Calls may overlap (the user types): only the
   * answer to the latest call reaches the store; an older one returns without touching it.
   */
  planKv(input: CallInput<'models.plan'>): Promise<Result<KvPlan>>;
  /**
   * A model's plan for the Models screen, at the context it would load with (its profile's, else
   * the settings'). Answered from the store when it holds one (unless `fresh`); a call already
   * running is joined, not repeated. A failure is kept as the entry's error, and the next call
   * tries again.
   */
  planModel(target: PlanTarget, options?: { fresh?: boolean }): Promise<Result<KvPlan>>;
  /** The quality meter on the loaded model; `fresh` measures again instead of the cached result. */
  measureQuality(fresh?: boolean): Promise<Result<KvQuality>>;
  /**
   * Measures the speed of the model at `path` on this computer again (the host reloads it to,
   * with progress in `model.status`), and keeps the answer in its profile.
   */
  measureSpeed(path: string): Promise<Result<SpeedProfile>>;
  /** The engine built for this computer into the store. */
  loadLocalEngine(): Promise<Result<LocalEngineState>>;
  /** Starts building an engine for this computer; progress arrives as `engine.local` events. */
  buildLocalEngine(): Promise<Result<LocalEngineState>>;
  cancelLocalBuild(): Promise<Result<LocalEngineState>>;
  /** Deletes the local build: the prebuilt engine runs again. */
  removeLocalEngine(): Promise<Result<LocalEngineState>>;
  /**
   * Asks the host for Cache view ticks for its lease (`cache.watch`); the view renews it while
   * visible. With `engineId`, also that remote engine's `/metrics` readings (`cache.remote`).
   */
  watchCache(engineId?: string): Promise<Result<CallOutputs['cache.watch']>>;
  /** Chats whose title or messages contain `query` (`chats.search`): the sidebar's search. */
  searchChats(query: string): Promise<Result<CallOutputs['chats.search']>>;
  /** The Cache view's history (turns, events, largest chats) into the store. */
  loadCacheOverview(): Promise<Result<CallOutputs['cache.overview']>>;
  /** Only the largest chats (their sizes change with every save), leaving the history as it is. */
  refreshCachedChats(): Promise<Result<CallOutputs['cache.overview']>>;
  /** One chat's cache, for its header's badge. */
  refreshChatCache(chatId: string): Promise<Result<ChatCache>>;
  /** Forgets a chat's KV (its next turn re-reads its history), then refreshes the list and its badge. */
  forgetCache(chatId: string): Promise<Result<CallOutputs['cache.forget']>>;
  /** Verifies the disk store (`kv.verify`); with `repair`, also fixes it, then refreshes the Cache view's list. */
  verifyCache(repair: boolean): Promise<Result<CallOutputs['kv.verify']>>;
  /** The chat's active branch as Markdown or JSON, with a safe file name (`chats.export`); the caller saves it. */
  exportChat(chatId: string, format: 'markdown' | 'json'): Promise<Result<ChatExport>>;
  /** The remote engines into the store (at start and after every reconnect). */
  loadEngines(): Promise<Result<CallOutputs['engines.list']>>;
  /** Adds a remote engine; the host checks it at once and keeps it even when the check fails. */
  addEngine(input: CallInput<'engines.add'>): Promise<Result<RemoteEngine>>;
  /** Changes an engine (`apiKey` null removes its key); the host checks it again. */
  updateEngine(input: CallInput<'engines.update'>): Promise<Result<RemoteEngine>>;
  /** Removes an engine; its chats keep their history and ask to be moved. */
  removeEngine(engineId: string): Promise<Result<CallOutputs['engines.remove']>>;
  /** Asks an engine again what it serves. */
  checkEngine(engineId: string): Promise<Result<RemoteEngine>>;
  /** Checks an address before it is saved (the dialog's Test); nothing is stored. */
  testEngine(input: CallInput<'engines.test'>): Promise<Result<RemoteEngineStatus>>;
  /** The API server's state and request log into the store (`server.state`). */
  loadServer(): Promise<Result<ApiServerState>>;
  /** Changes the API server's settings; the host starts, restarts or stops it to match. */
  configureServer(patch: CallInput<'server.configure'>): Promise<Result<ApiServerState>>;
  /** A new API key: clients holding the old one are refused from then on. */
  rotateServerKey(): Promise<Result<ApiServerState>>;
}

export interface ActionsOptions {
  /** Changes the address (hash routing); the store follows via `hashchange`. */
  readonly navigate: (route: Route) => void;
}

export function createActions(transport: Transport, store: HearthStore, options: ActionsOptions): Actions {
  const state = () => store.getState();
  let resyncs = 0;
  let plans = 0;
  let searches = 0;
  /** `openHubRepo` calls in flight, by repository; a newer (fresh) call replaces an older one's answer. */
  const reposInFlight = new Map<string, { readonly token: object; readonly run: Promise<void> }>();
  /**
   * A download call's answer: kept only for a download the store does not hold yet. Its events
   * say the same and may have overtaken it, so an answer never overwrites a newer event.
   */
  const applyAnswer = (result: Result<DownloadItem>): Result<DownloadItem> => {
    if (result.ok && !state().downloads[result.value.id]) state().applyDownload(result.value);
    return result;
  };
  /** The Models screen's plan calls in flight, by planKey; a forgotten key's answer is dropped. */
  const modelPlansInFlight = new Map<string, Promise<Result<KvPlan>>>();
  const forgetModelPlans = (which?: (key: string) => boolean) => {
    for (const key of [...modelPlansInFlight.keys()]) if (!which || which(key)) modelPlansInFlight.delete(key);
    state().forgetModelPlans(which);
  };

  /** A chat from a call: full detail when we hold the chat, else just its summary. */
  const applyChat = (chat: Chat) => {
    if (state().messages[chat.id]) state().setChat(chat);
    else state().upsertChatSummary(chat);
  };

  /** A chat action failed: tell the user in that chat, and pass the result on. */
  const noticeOnError = <T>(chatId: string, result: Result<T>): Result<T> => {
    if (!result.ok) state().setNotice({ chatId, error: result.error });
    else if (state().notice?.chatId === chatId) state().setNotice(null);
    return result;
  };

  /** A local engine call's answer, unless an `engine.local` event (newer) came while it ran. */
  const localEngineCall = async (name: 'engine.buildLocal' | 'engine.cancelBuild' | 'engine.removeLocal'): Promise<Result<LocalEngineState>> => {
    const seen = state().localEngineEvents;
    const result = await transport.call(name, {});
    if (result.ok && state().localEngineEvents === seen) state().setLocalEngine(result.value);
    return result;
  };

  const actions: Actions = {
    navigate: options.navigate,

    async resync() {
      const first = resyncs === 0;
      resyncs += 1;
      const [app, list] = await Promise.all([transport.call('app.state', {}), transport.call('chats.list', {})]);
      if (!app.ok) {
        state().setBootError(app.error);
        return;
      }
      state().setAppState(app.value);
      if (list.ok) state().setChatList(list.value.chats);
      const route = state().route;
      if (route.name === 'chat') await actions.openChat(route.chatId, { force: true });
      // The queue feeds the sidebar's badge on every screen; a reconnect may have missed changes.
      void actions.loadDownloads();
      // The chat header names its engine, and the picker lists them, on every chat.
      const engines = actions.loadEngines();
      if (route.name === 'models') await actions.refreshModels();
      if (route.name === 'models' && route.tab === 'repo') void actions.openHubRepo(route.repo, { fresh: !first });
      if (route.name === 'cache') await actions.loadCacheOverview();
      if (route.name === 'server') await actions.loadServer();
      // A build may have ended, or been removed, while the connection was down.
      if (route.name === 'settings') void actions.loadLocalEngine();
      // First run, or nothing loaded: the model screen is where the user has to start, unless
      // a remote engine can take the chats.
      if (first && route.name === 'home' && (app.value.model.status === 'idle' || app.value.model.status === 'error')) {
        const listed = await engines;
        if (!listed.ok || listed.value.engines.length === 0) actions.navigate({ name: 'models' });
      }
      // Chats opened earlier may have changed while we were disconnected; refetch when next shown.
      if (!first) {
        for (const chatId of Object.keys(state().messages)) {
          if (route.name !== 'chat' || route.chatId !== chatId) state().removeChatDetail(chatId);
        }
      }
    },

    async openChat(chatId, { force = false } = {}) {
      const load = state().chatLoad[chatId];
      if (!force && (load === 'loaded' || load === 'loading')) return;
      if (load !== 'loaded') state().setChatLoad(chatId, 'loading');
      const result = await transport.call('chats.get', { chatId });
      if (!result.ok) {
        state().setChatLoad(chatId, { error: result.error });
        return;
      }
      state().setChatMessages(chatId, result.value.messages);
      state().setChat(result.value.chat);
      state().setChatLoad(chatId, 'loaded');
    },

    async newChat(engine) {
      const result = await transport.call('chats.create', engine ? { engine } : {});
      if (result.ok) {
        const chat = result.value;
        state().setChatMessages(chat.id, []);
        state().setChat(chat);
        state().setChatLoad(chat.id, 'loaded');
        actions.navigate({ name: 'chat', chatId: chat.id });
        state().requestComposerFocus();
      }
      return result;
    },

    async moveChat(chatId, engine) {
      const result = await transport.call('chats.move', { chatId, engine });
      if (result.ok) applyChat(result.value);
      return result;
    },

    async send(chatId, text) {
      const chat = state().chats[chatId];
      const messages = state().messages[chatId];
      // Explicit, so the reply continues the branch the user is looking at.
      const parentId = chat && messages ? resolveLeaf(messages, chat.activeLeafId) : undefined;
      const result = await transport.call('chats.send', parentId === undefined ? { chatId, text } : { chatId, text, parentId });
      if (result.ok) {
        state().upsertMessages([result.value.userMessage, result.value.assistantMessage]);
        state().setActiveLeaf(chatId, result.value.assistantMessage.id);
      }
      return noticeOnError(chatId, result);
    },

    async stop(chatId) {
      return noticeOnError(chatId, await transport.call('chats.stop', { chatId }));
    },

    async regenerate(chatId, messageId) {
      const result = await transport.call('chats.regenerate', { chatId, messageId });
      if (result.ok) {
        state().upsertMessages([result.value.assistantMessage]);
        state().setActiveLeaf(chatId, result.value.assistantMessage.id);
      }
      return noticeOnError(chatId, result);
    },

    async edit(chatId, messageId, text) {
      const result = await transport.call('chats.edit', { chatId, messageId, text });
      if (result.ok) {
        state().upsertMessages([result.value.userMessage, result.value.assistantMessage]);
        state().setActiveLeaf(chatId, result.value.assistantMessage.id);
      }
      return noticeOnError(chatId, result);
    },

    async switchBranch(chatId, messageId) {
      const messages = state().messages[chatId];
      const before = state().chats[chatId]?.activeLeafId ?? null;
      // Show the branch at once; the server's answer (same rule: newest leaf) confirms it.
      if (messages?.[messageId]) state().setActiveLeaf(chatId, latestLeafUnder(messages, messageId));
      const result = await transport.call('chats.switchBranch', { chatId, messageId });
      if (result.ok) applyChat(result.value);
      else state().setActiveLeaf(chatId, before);
      return noticeOnError(chatId, result);
    },

    async rename(chatId, title) {
      const result = await transport.call('chats.rename', { chatId, title });
      if (result.ok) applyChat(result.value);
      return result;
    },

    async remove(chatId) {
      const result = await transport.call('chats.delete', { chatId });
      if (result.ok) {
        state().removeChat(chatId);
        const route = state().route;
        if (route.name === 'chat' && route.chatId === chatId) actions.navigate({ name: 'home' });
      }
      return result;
    },

    async continueReply(chatId, messageId) {
      // The reply streams again on the host's message.updated that reopens it, sent before the
      // first delta; this answer can land after the continuation ended, and is only a snapshot.
      const result = await transport.call('chats.continue', { chatId, messageId });
      if (result.ok) state().upsertMessages([result.value.assistantMessage]);
      return noticeOnError(chatId, result);
    },

    async configure(chatId, config) {
      const input: CallInput<'chats.configure'> = {
        chatId,
        ...(config.systemPrompt !== undefined ? { systemPrompt: config.systemPrompt } : {}),
        ...(config.sampling !== undefined ? { sampling: config.sampling } : {}),
        ...(config.overflowPolicy !== undefined ? { overflowPolicy: config.overflowPolicy } : {}),
      };
      const result = await transport.call('chats.configure', input);
      if (result.ok) applyChat(result.value);
      return result;
    },

    async dropOldestAndRetry(chatId, messageId) {
      const configured = await actions.configure(chatId, { overflowPolicy: 'drop-oldest' });
      if (!configured.ok) return noticeOnError(chatId, configured);
      return actions.regenerate(chatId, messageId);
    },

    async raiseContextAndRetry(chatId, messageId, path, contextSize) {
      const saved = await actions.saveProfile(path, { contextSize });
      if (!saved.ok) return noticeOnError(chatId, saved);
      // The host answers after its reload, but the events that report it may come later: ask for
      // the model's state, so a reload that failed is not taken for the old model still ready.
      const app = await transport.call('app.state', {});
      if (app.ok) state().setModel(app.value.model);
      const ready = await modelSettled(store);
      if (!ready.ok) return noticeOnError(chatId, ready);
      return actions.regenerate(chatId, messageId);
    },

    planContext(path, contextSize) {
      return transport.call('models.plan', { path, contextSize });
    },

    async refreshModels() {
      const [list, recommended] = await Promise.all([transport.call('models.list', {}), transport.call('models.recommended', {})]);
      if (list.ok) state().setLibrary(list.value);
      else state().setLibrary(state().library, list.error);
      if (recommended.ok) state().setRecommended(recommended.value.models);
      else state().setRecommended(state().recommended, recommended.error);
    },

    async loadModel(path) {
      state().setLoadState(true, null);
      const result = await transport.call('models.load', { path });
      state().setLoadState(false, result.ok ? null : result.error);
      if (result.ok) void actions.refreshModels();
      return result;
    },

    async pickAndLoadModel() {
      const picked = await transport.call('models.pick', {});
      if (!picked.ok) {
        state().setLoadState(false, picked.error);
        return picked;
      }
      if (picked.value.path === null) return picked;
      return actions.loadModel(picked.value.path);
    },

    async unloadModel() {
      const result = await transport.call('models.unload', {});
      if (result.ok) state().setModel(result.value);
      return result;
    },

    async loadAndChat(path) {
      const loaded = await actions.loadModel(path);
      if (!loaded.ok) return loaded;
      return actions.newChat();
    },

    revealModel(path) {
      return transport.call('models.reveal', { path });
    },

    modelKvUsage(path) {
      return transport.call('models.kvUsage', { path });
    },

    async deleteModel(path, deleteKv) {
      const result = await transport.call('models.delete', { path, deleteKv });
      // Listed again either way: a refusal may mean the file was already gone.
      await actions.refreshModels();
      if (result.ok) forgetModelPlans((key) => key === planKey({ path }));
      return result;
    },

    async setModelsDir(dir) {
      const result = await actions.updateSettings({ modelsDir: dir });
      if (result.ok) {
        // Where downloads go and Hearth's models live comes with app.state, not with the settings.
        const app = await transport.call('app.state', {});
        if (app.ok) state().setAppState(app.value);
        await actions.refreshModels();
      }
      return result;
    },

    async searchHub(query, sort) {
      searches += 1;
      const mine = searches;
      state().setHubQuery(query, sort);
      const before = state().hubSearch;
      state().setHubSearch({ value: before.value, error: null, pending: true });
      const result = await transport.call('hub.search', { query, sort });
      if (mine !== searches) return result;
      state().setHubSearch(result.ok ? { value: { query, sort, repos: result.value.repos }, error: null, pending: false } : { value: before.value, error: result.error, pending: false });
      return result;
    },

    openHubRepo(repo, options = {}) {
      const running = reposInFlight.get(repo);
      if (running && !options.fresh) return running.run;
      const held = state().hubRepos[repo];
      const heldFit = state().hubFits[repo];
      if (!options.fresh && held?.value && heldFit?.value) return Promise.resolve();
      // A token per call: a fresh call replaces a running one, whose answers then go nowhere.
      const token = {};
      const current = () => reposInFlight.get(repo)?.token === token;
      const run = (async () => {
        state().setHubRepo(repo, { value: held?.value ?? null, error: null, pending: true });
        const files = await transport.call('hub.repo', { repo });
        if (!current()) return;
        state().setHubRepo(repo, files.ok ? { value: files.value, error: null, pending: false } : { value: held?.value ?? null, error: files.error, pending: false });
        // The verdicts read every file's header: only worth asking for once the files are known.
        if (!files.ok) return;
        state().setHubFit(repo, { value: heldFit?.value ?? null, error: null, pending: true });
        const fit = await transport.call('hub.fit', { repo });
        if (!current()) return;
        state().setHubFit(repo, fit.ok ? { value: fit.value, error: null, pending: false } : { value: heldFit?.value ?? null, error: fit.error, pending: false });
      })().finally(() => {
        if (current()) reposInFlight.delete(repo);
      });
      reposInFlight.set(repo, { token, run });
      return run;
    },

    async loadHubAuth() {
      const result = await transport.call('hub.auth', {});
      if (result.ok) state().setHubAuth(result.value);
      return result;
    },

    async setHubToken(token) {
      const result = await transport.call('hub.setToken', { token });
      if (result.ok) {
        state().setHubAuth(result.value);
        // What was refused may read now (and the reverse): read the open repositories again.
        const open = Object.keys(state().hubRepos);
        reposInFlight.clear();
        state().forgetHubRepos();
        const route = state().route;
        if (route.name === 'models' && route.tab === 'repo') void actions.openHubRepo(route.repo);
        else if (open.length > 0 && state().recommended) void actions.loadRecommendations();
      }
      return result;
    },

    async loadDownloads() {
      const result = await transport.call('downloads.list', {});
      if (result.ok) state().setDownloads(result.value.downloads);
      else state().setDownloadsError(result.error);
      return result;
    },

    async startDownload(input) {
      const result = await transport.call('downloads.start', input);
      return applyAnswer(result);
    },

    async pauseDownload(downloadId) {
      return applyAnswer(await transport.call('downloads.pause', { downloadId }));
    },

    async resumeDownload(downloadId) {
      return applyAnswer(await transport.call('downloads.resume', { downloadId }));
    },

    async cancelDownload(downloadId) {
      return applyAnswer(await transport.call('downloads.cancel', { downloadId }));
    },

    async clearDownloads() {
      const result = await transport.call('downloads.clear', {});
      // Each removal also arrives as an event; the list makes sure none is left behind.
      if (result.ok) await actions.loadDownloads();
      return result;
    },

    async loadRecommendations(options = {}) {
      let models = state().recommended;
      if (models === null || options.fresh) {
        const answer = await transport.call('models.recommended', {});
        if (answer.ok) state().setRecommended(answer.value.models);
        else state().setRecommended(models, answer.error);
        models = state().recommended;
      }
      const repos = [...new Set((models ?? []).map((m) => m.repo))];
      await Promise.all(repos.map((repo) => actions.openHubRepo(repo, options.fresh ? { fresh: true } : {})));
    },

    async downloadAndChat(repo, fileId) {
      const result = await actions.startDownload({ repo, file: fileId });
      if (!result.ok) return result;
      const item = state().downloads[result.value.id] ?? result.value;
      // The file may already be complete (downloaded before): go on at once.
      if (item.status === 'done') void actions.loadAndChat(item.path);
      else state().setChatAfterDownload(item.id);
      return result;
    },

    async downloadDone(item) {
      const chatAfter = state().chatAfterDownload === item.id;
      if (chatAfter) state().setChatAfterDownload(null);
      await actions.refreshModels();
      if (chatAfter) await actions.loadAndChat(item.path);
    },

    async updateSettings(patch) {
      const result = await transport.call('settings.update', patch);
      if (result.ok) state().setSettings(result.value);
      // Models without a profile, and every download address, are planned at these defaults.
      if (result.ok && (patch.contextSize !== undefined || patch.kvSlots !== undefined)) forgetModelPlans();
      return result;
    },

    async refreshKvStats() {
      const result = await transport.call('kv.stats', {});
      if (result.ok) state().setKvStats(result.value);
      else state().setKvStats(null, result.error);
      return result;
    },

    async loadProfile(path) {
      const result = await transport.call('models.getProfile', { path });
      if (result.ok) state().setProfile(result.value);
      else state().setProfile(null, result.error);
      return result;
    },

    async saveProfile(path, profile) {
      const result = await transport.call('models.setProfile', { path, profile });
      // A refusal is the form's business (its issues go beside the fields): the stored
      // profile, and so the store's copy, did not change.
      if (result.ok) state().setProfile(result.value);
      // The model is planned at its profile's context from now on.
      if (result.ok) forgetModelPlans((key) => key === planKey({ path }));
      return result;
    },

    planModel(target, options = {}) {
      const key = planKey(target);
      const cached = state().modelPlans[key];
      if (cached?.plan && !cached.pending && !options.fresh) return Promise.resolve({ ok: true, value: cached.plan });
      const running = modelPlansInFlight.get(key);
      if (running) return running;
      state().setModelPlan(key, { plan: cached?.plan ?? null, error: null, pending: true });
      const call = transport.call('models.plan', { path: target.path }).then((result) => {
        // Forgotten while it ran (its inputs changed): the answer is for the old ones.
        if (modelPlansInFlight.get(key) !== call) return result;
        modelPlansInFlight.delete(key);
        const before = state().modelPlans[key]?.plan ?? null;
        state().setModelPlan(key, result.ok ? { plan: result.value, error: null, pending: false } : { plan: before, error: result.error, pending: false });
        return result;
      });
      modelPlansInFlight.set(key, call);
      return call;
    },

    async planKv(input) {
      plans += 1;
      const mine = plans;
      state().setKvPlanPending();
      const result = await transport.call('models.plan', input);
      if (mine !== plans) return result;
      if (result.ok) state().setKvPlan({ plan: result.value, input });
      else state().setKvPlan(null, result.error);
      return result;
    },

    async measureQuality(fresh = false) {
      const path = state().model.status === 'ready' ? (state().model.model?.path ?? null) : null;
      state().setKvQualityPending();
      const result = await transport.call('models.measureQuality', fresh ? { fresh: true } : {});
      if (result.ok) state().setKvQuality({ quality: result.value, path });
      else state().setKvQuality(null, result.error);
      return result;
    },

    async measureSpeed(path) {
      state().setSpeedPending(path);
      const result = await transport.call('models.measureSpeed', { path });
      if (result.ok) state().setSpeed(path, result.value);
      else state().setSpeed(path, null, result.error);
      return result;
    },

    async loadLocalEngine() {
      const seen = state().localEngineEvents;
      const result = await transport.call('engine.local', {});
      if (result.ok && state().localEngineEvents === seen) state().setLocalEngine(result.value);
      else if (!result.ok) state().setLocalEngineError(result.error);
      return result;
    },

    buildLocalEngine: () => localEngineCall('engine.buildLocal'),
    cancelLocalBuild: () => localEngineCall('engine.cancelBuild'),
    removeLocalEngine: () => localEngineCall('engine.removeLocal'),

    watchCache(engineId) {
      return transport.call('cache.watch', engineId === undefined ? {} : { engineId });
    },

    searchChats(query) {
      return transport.call('chats.search', { query });
    },

    async loadCacheOverview() {
      const result = await transport.call('cache.overview', {});
      if (result.ok) state().setCacheOverview(result.value);
      else state().setCacheOverview(null, result.error);
      return result;
    },

    async refreshCachedChats() {
      const result = await transport.call('cache.overview', {});
      if (result.ok) state().setCachedChats(result.value.chats);
      return result;
    },

    async refreshChatCache(chatId) {
      const result = await transport.call('cache.chat', { chatId });
      if (result.ok) state().setChatCache(result.value);
      return result;
    },

    async forgetCache(chatId) {
      const result = await transport.call('cache.forget', { chatId });
      if (result.ok) await Promise.all([actions.loadCacheOverview(), actions.refreshChatCache(chatId)]);
      return result;
    },
    async verifyCache(repair) {
      const result = await transport.call('kv.verify', { repair });
      if (result.ok && result.value.repaired) await actions.refreshCachedChats();
      return result;
    },

    exportChat(chatId, format) {
      return transport.call('chats.export', { chatId, format });
    },

    async loadEngines() {
      const result = await transport.call('engines.list', {});
      if (result.ok) state().setEngines(result.value.engines);
      else state().setEnginesError(result.error);
      return result;
    },

    async addEngine(input) {
      const result = await transport.call('engines.add', input);
      if (result.ok) state().upsertEngine(result.value);
      return result;
    },

    async updateEngine(input) {
      const result = await transport.call('engines.update', input);
      if (result.ok) state().upsertEngine(result.value);
      return result;
    },

    async removeEngine(engineId) {
      const result = await transport.call('engines.remove', { engineId });
      if (result.ok) state().dropEngine(engineId);
      return result;
    },

    async checkEngine(engineId) {
      const result = await transport.call('engines.check', { engineId });
      if (result.ok) state().upsertEngine(result.value);
      return result;
    },

    testEngine(input) {
      return transport.call('engines.test', input);
    },

    async loadServer() {
      const result = await transport.call('server.state', {});
      if (result.ok) state().setServerState(result.value);
      else state().setServerLoadError(result.error);
      return result;
    },

    async configureServer(patch) {
      const result = await transport.call('server.configure', patch);
      if (result.ok) state().setServerState(result.value);
      return result;
    },

    async rotateServerKey() {
      const result = await transport.call('server.rotateKey', {});
      if (result.ok) state().setServerState(result.value);
      return result;
    },
  };
  return actions;
}

/** How long a reload may take before the retry after it gives up: large models load slowly. */
export const modelSettleTimeoutMs = 5 * 60_000;

/**
 * Resolves once the model is no longer loading: ok when it is ready, else the load's error.
 * `models.setProfile` answers after its reload, but the `model.status` events that say so can
 * arrive after the answer.
 */
export function modelSettled(store: HearthStore, timeoutMs = modelSettleTimeoutMs): Promise<Result<void>> {
  const verdict = (): Result<void> | null => {
    const model = store.getState().model;
    if (model.status === 'loading') return null;
    if (model.status === 'ready') return { ok: true, value: undefined };
    return { ok: false, error: model.error ?? { code: 'MODEL_NOT_LOADED', message: 'No model is loaded.' } };
  };
  const now = verdict();
  if (now) return Promise.resolve(now);
  return new Promise((resolve) => {
    const done = (result: Result<void>) => {
      clearTimeout(timer);
      unsubscribe();
      resolve(result);
    };
    const timer = setTimeout(() => done({ ok: false, error: { code: 'ENGINE_UNAVAILABLE', message: 'The model is taking too long to load again.', hint: 'Regenerate the reply once it is ready.' } }), timeoutMs);
    const unsubscribe = store.subscribe(() => {
      const result = verdict();
      if (result) done(result);
    });
  });
}

/** True when the error means "load a model first": the UI then links to the model screen. */
export function needsModel(error: HearthError): boolean {
  return error.code === 'MODEL_NOT_LOADED' || error.code === 'MODEL_INVALID' || error.code === 'MODEL_UNSUPPORTED';
}
