import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it, vi } from 'vitest';
import { chatPlace, pickerGroups, type PickerOption } from '../lib/engines.ts';
import { hostElements } from '../../../test/support/renderer/element-tree.ts';
import { remoteEngine, messageStats } from '../../../test/support/renderer/fixtures.ts';
import { PickerView, PlaceButton, type PickerViewProps } from './ChatEnginePicker.tsx';
import { StatsReadout } from './MessageItem.tsx';

function text(html: string): string {
  return html.replace(/<[^>]*>/g, '').replace(/&#x27;/g, "'").replace(/&amp;/g, '&');
}

const gpu = remoteEngine('e1');
const lab = remoteEngine('e2', {
  name: 'Lab',
  kind: 'sglang',
  status: { state: 'error', checkedAt: 3, models: [{ id: 'old-model' }], metrics: false, error: { code: 'NETWORK_ERROR', message: 'Cannot reach lab:30000.', hint: 'Is the server running?' } },
});
const groups = pickerGroups([gpu, lab], { name: 'tiny' });

function props(extra: Partial<PickerViewProps> = {}): PickerViewProps {
  return {
    groups,
    current: null,
    removed: false,
    pending: null,
    messages: 0,
    error: null,
    moving: false,
    onPick: () => undefined,
    onConfirm: () => undefined,
    onCancelConfirm: () => undefined,
    onClose: () => undefined,
    ...extra,
  };
}

describe("the chat header's engine", () => {
  it('says where the chat runs: this computer and its model, or the engine and model', () => {
    const local = renderToStaticMarkup(<PlaceButton place={chatPlace(null, [gpu], { name: 'tiny' })} onOpen={() => undefined} />);
    expect(local).toMatch(/^<button type="button" data-testid="chat-engine" data-state="local" aria-haspopup="dialog"/);
    expect(text(local)).toBe('This computer · tiny');
    expect(text(renderToStaticMarkup(<PlaceButton place={chatPlace(null, [], null)} onOpen={() => undefined} />))).toBe('This computer · no model loaded');
    const remote = renderToStaticMarkup(<PlaceButton place={chatPlace({ engineId: 'e1', model: 'qwen-7b' }, [gpu], null)} onOpen={() => undefined} />);
    expect(remote).toContain('data-state="remote"');
    expect(text(remote)).toBe('GPU box · qwen-7b');
  });

  it('an engine in error keeps its name, with its error in the title; a removed engine asks to move, prominently', () => {
    const failing = renderToStaticMarkup(<PlaceButton place={chatPlace({ engineId: 'e2', model: 'old-model' }, [gpu, lab], null)} onOpen={() => undefined} />);
    expect(failing).toContain('data-state="error"');
    expect(failing).toContain("title=\"Change where this chat runs. The engine&#x27;s last check failed: Cannot reach lab:30000.\"");
    expect(text(failing)).toBe('Lab · old-model');
    const onOpen = vi.fn();
    const removed = PlaceButton({ place: chatPlace({ engineId: 'gone', model: 'x' }, [gpu], null), onOpen });
    const html = renderToStaticMarkup(removed);
    expect(html).toContain('data-state="removed"');
    expect(text(html)).toBe('Engine removed — move this chat');
    (removed.props as { onClick: () => void }).onClick();
    expect(onOpen).toHaveBeenCalledTimes(1);
  });
});

describe('the engine picker', () => {
  it('lists this computer, then each engine and its models; the current one is marked; an engine in error shows why and cannot be picked', () => {
    const html = renderToStaticMarkup(<PickerView {...props({ current: { engineId: 'e1', model: 'qwen-7b' } })} />);
    const options = [...html.matchAll(/<button type="button" aria-label="([^"]+)"( aria-current="true")? data-testid="engine-option"( disabled="")?/g)].map((m) => [m[1], Boolean(m[2]), Boolean(m[3])]);
    expect(options).toEqual([
      ['This computer · tiny', false, false],
      ['GPU box · llama-3-70b', false, false],
      ['GPU box · qwen-7b', true, false],
      ['Lab · old-model', false, true],
    ]);
    expect(html).toMatch(/<div role="group" aria-labelledby="engine-pick-e2"[^>]*><h3 id="engine-pick-e2"[^>]*>Lab<span[^>]*>SGLang<\/span><\/h3>/);
    expect(text(html)).toContain('Cannot reach lab:30000.Is the server running?');
    expect(html).toContain('href="#/settings/engines"');
  });

  it("a pick calls back with the option; a pending move asks, with the history's length", () => {
    const onPick = vi.fn<(o: PickerOption) => void>();
    const buttons = hostElements(PickerView(props({ onPick }))).filter((e) => e.props['data-testid'] === 'engine-option');
    (buttons[1]?.props as { onClick: () => void }).onClick();
    expect(onPick).toHaveBeenCalledWith(expect.objectContaining({ target: { engineId: 'e1', model: 'llama-3-70b' }, label: 'GPU box · llama-3-70b' }));

    const onConfirm = vi.fn();
    const pending = groups[1]?.options[0] ?? expect.unreachable('option');
    const asking = PickerView(props({ pending, messages: 6, onConfirm }));
    const html = renderToStaticMarkup(asking);
    expect(text(html)).toContain('Move this chat to GPU box · llama-3-70b? Its history (6 messages) will be read again there.');
    const move = hostElements(asking).find((e) => e.type === 'button' && e.props.children === 'Move') ?? expect.unreachable('Move');
    (move.props as { onClick: () => void }).onClick();
    expect(onConfirm).toHaveBeenCalledTimes(1);
  });

  it('a chat whose engine was removed says so; a refused move shows the error', () => {
    const html = renderToStaticMarkup(<PickerView {...props({ removed: true, current: undefined, error: { code: 'BUSY', message: 'A reply is being written.', hint: 'Stop it first.' } })} />);
    expect(text(html)).toContain('The engine this chat ran on was removed.');
    expect(text(html)).toContain('The chat could not be moved.A reply is being written.Stop it first.');
    expect(html).not.toContain('aria-current');
  });
});

describe("a reply's readout", () => {
  it('a remote reply: engine, model and the server cache in the line; a moved one says it was read again', () => {
    const stats = messageStats({
      tokensPrefilled: 1600,
      tokensGenerated: 8,
      ttftMs: 90,
      engine: { id: 'e1', name: 'GPU box', model: 'llama-3-70b', kind: 'vllm' },
      server: { promptTokens: 1600, cachedTokens: 0 },
      movedFrom: 'This computer · tiny',
    });
    const html = renderToStaticMarkup(<StatsReadout stats={stats} />);
    expect(html).toMatch(/^<p data-testid="reply-moved"[^>]*>Moved from This computer · tiny: the history was read again here \(1,600 tokens\)<\/p>/);
    expect(html).toMatch(/<summary[^>]*>GPU box · llama-3-70b · Server cache: 0 of 1,600 prompt tokens · first token 90 ms · 8 generated<\/summary>/);
    expect(html).toMatch(/<dt>Engine<\/dt><dd[^>]*>GPU box \(vLLM\)<\/dd>/);
    const unknown = renderToStaticMarkup(<StatsReadout stats={{ ...stats, server: { promptTokens: 1600, cachedTokens: null } }} />);
    expect(unknown).toContain('Server cache: the server did not report cached tokens');
  });

  it('a local reply: no moved line and the old summary', () => {
    const html = renderToStaticMarkup(<StatsReadout stats={messageStats({ tokensReused: 120, tokensPrefilled: 14 })} />);
    expect(html).not.toContain('reply-moved');
    expect(html).toMatch(/^<details data-testid="reply-readout"[^>]*><summary[^>]*>reused 120 · prefilled 14 tokens · first token 35 ms · 5 generated<\/summary>/);
  });
});
