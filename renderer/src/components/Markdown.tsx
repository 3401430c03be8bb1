/**
 * Model output as markdown, never as live HTML (README.md, Security checklist):
 * - no rehype-raw: raw HTML in the text is shown as text;
 * - links survive only as http(s)/mailto (lib/url.ts) and open outside the app;
 * - images are never loaded (a remote image is a tracking beacon): their alt text and URL
 *   are shown as text instead.
 */
import { memo, type ComponentProps } from 'react';
import Markdown, { type Components, type ExtraProps } from 'react-markdown';
import rehypeHighlight from 'rehype-highlight';
import remarkGfm from 'remark-gfm';
import type { Element, ElementContent } from 'hast';
import { splitStreaming } from '../lib/markdown-split.ts';
import { safeHref } from '../lib/url.ts';
import { CopyButton } from './ui.tsx';

/** The text of a hast subtree (for a code block's copy button). */
export function hastText(node: Element | ElementContent): string {
  if (node.type === 'text') return node.value;
  if (node.type === 'element') return node.children.map(hastText).join('');
  return '';
}

/**
 * react-markdown runs this on every URL attribute. Links keep only safe URLs; an image's
 * `src` is passed through untouched because `img` below never renders an <img>: it shows the
 * URL as text, and an emptied URL would hide where the beacon pointed.
 */
export function urlTransform(url: string, key: string): string {
  if (key === 'href') return safeHref(url) ?? '';
  if (key === 'src') return url;
  return '';
}

function Link({ href, children }: ComponentProps<'a'> & ExtraProps) {
  const safe = href ? safeHref(href) : null;
  if (!safe) return <span className="underline decoration-dotted">{children}</span>;
  return (
    <a href={safe} target="_blank" rel="noreferrer noopener" className="text-amber-700 underline dark:text-amber-400">
      {children}
    </a>
  );
}

function Image({ src, alt }: ComponentProps<'img'> & ExtraProps) {
  const where = typeof src === 'string' && src !== '' ? src : null;
  return (
    <span className="rounded bg-stone-200 px-1 text-xs text-stone-700 dark:bg-stone-800 dark:text-stone-300">
      [image{alt ? `: ${alt}` : ''}]{where ? ` (${where})` : ''}
    </span>
  );
}

function Pre({ node, children }: ComponentProps<'pre'> & ExtraProps) {
  return (
    <div className="code-block group relative">
      <pre>{children}</pre>
      <CopyButton
        text={node ? hastText(node) : ''}
        label="Copy code"
        className="absolute top-1.5 right-1.5 inline-flex items-center gap-1 rounded bg-stone-700/80 px-1.5 py-0.5 text-xs text-stone-100 opacity-0 group-hover:opacity-100 focus-visible:opacity-100 hover:bg-stone-600"
      />
    </div>
  );
}

function Table({ children }: ComponentProps<'table'> & ExtraProps) {
  return (
    <div className="overflow-x-auto">
      <table>{children}</table>
    </div>
  );
}

const components: Components = { a: Link, img: Image, pre: Pre, table: Table };
const remarkPlugins = [remarkGfm];
const highlightPlugins = [[rehypeHighlight, { detect: false }] as const] as ComponentProps<typeof Markdown>['rehypePlugins'];
const noPlugins: ComponentProps<typeof Markdown>['rehypePlugins'] = [];

/**
 * Renders markdown. `highlight` is off while a reply streams: highlighting is the expensive
 * part, and a half-written code block would be re-highlighted every frame.
 */
export const MarkdownText = memo(function MarkdownText(props: { text: string; highlight?: boolean }) {
  return (
    <div className="markdown">
      <Markdown
        remarkPlugins={remarkPlugins}
        rehypePlugins={props.highlight === false ? noPlugins : highlightPlugins}
        components={components}
        urlTransform={urlTransform}
      >
        {props.text}
      </Markdown>
    </div>
  );
});

/**
 * A reply that is still streaming: finished chunks are parsed once (memoized by their text,
 * keyed by position) and only the text after the last cut is parsed again on each frame.
 */
export function StreamingMarkdown(props: { text: string }) {
  const { chunks, tail } = splitStreaming(props.text);
  return (
    <div className="space-y-3">
      {chunks.map((chunk, i) => (
        <MarkdownText key={i} text={chunk} highlight={false} />
      ))}
      {tail !== '' && <MarkdownText text={tail} highlight={false} />}
    </div>
  );
}
