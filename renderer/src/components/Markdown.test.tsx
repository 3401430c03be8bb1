import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { MarkdownText, StreamingMarkdown, urlTransform } from './Markdown.tsx';

const render = (text: string) => renderToStaticMarkup(<MarkdownText text={text} />);

/** Any element whose tag name is in `tags`, or any on* attribute, means live HTML leaked. */
function liveTags(html: string, tags: readonly string[]): string[] {
  const found: string[] = [];
  for (const match of html.matchAll(/<([a-zA-Z][a-zA-Z0-9-]*)([^>]*)>/g)) {
    const tag = (match[1] ?? '').toLowerCase();
    if (tags.includes(tag)) found.push(match[0]);
    if (/\son[a-z]+\s*=/i.test(match[2] ?? '')) found.push(match[0]);
  }
  return found;
}

// svg is left out: a code block's copy button carries one (an svg written in the text stays text).
const dangerous = ['script', 'img', 'iframe', 'object', 'embed', 'style', 'form', 'input', 'link', 'meta', 'base'];

describe('MarkdownText sanitation', () => {
  it('shows raw HTML as text, never as elements', () => {
    const html = render('hello <img src=x onerror=alert(1)> and <script>alert(2)</script> <iframe src="http://evil"></iframe>');
    expect(liveTags(html, dangerous)).toEqual([]);
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('&lt;script&gt;');
  });

  it('drops a block of raw HTML as text too', () => {
    const html = render('<div onclick="x()">\n<script>alert(1)</script>\n</div>\n\n<svg onload=alert(1)>');
    expect(liveTags(html, dangerous)).toEqual([]);
    expect(html).not.toMatch(/<div onclick/i);
  });

  it('turns javascript:, data: and relative links into plain text', () => {
    for (const md of ['[x](javascript:alert(1))', '[x](JaVaScRiPt:alert(1))', '[x](data:text/html,<b>hi</b>)', '[x](/etc/passwd)', '[x](file:///etc/passwd)', '<javascript:alert(1)>']) {
      const html = render(md);
      expect(html, md).not.toMatch(/<a\s/);
      expect(html, md).not.toMatch(/javascript:/i.test(md) ? /href="javascript/i : /href=/);
    }
  });

  it('keeps http(s) and mailto links, opening outside the app', () => {
    const html = render('[site](https://example.com/a?b=1) and [mail](mailto:a@example.com)');
    expect(html).toContain('<a href="https://example.com/a?b=1" target="_blank" rel="noreferrer noopener"');
    expect(html).toContain('href="mailto:a@example.com"');
  });

  it('never loads images: shows alt text and URL as text', () => {
    const html = render('![tracker](http://evil/x.png) and ![](https://evil/y.gif)');
    expect(liveTags(html, dangerous)).toEqual([]);
    expect(html).toContain('[image: tracker] (http://evil/x.png)');
    expect(html).toContain('[image] (https://evil/y.gif)');
  });

  it('keeps images out of reference-style and autolinked forms too', () => {
    const html = render('![a][ref]\n\n[ref]: http://evil/z.png');
    expect(html).not.toMatch(/<img/i);
  });

  it('highlights fenced code and adds a copy button', () => {
    const html = render('```js\nconst a = 1;\n```');
    expect(html).toContain('hljs');
    expect(html).toContain('hljs-keyword');
    expect(html).toContain('Copy code');
  });

  it('renders GFM tables and strikethrough', () => {
    const html = render('| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~');
    expect(html).toContain('<table>');
    expect(html).toContain('<del>gone</del>');
  });

  it('streams without highlighting and without leaking HTML', () => {
    const html = renderToStaticMarkup(<StreamingMarkdown text={'para one\n\n<img src=x onerror=alert(1)>\n\n```js\nconst a'} />);
    expect(liveTags(html, dangerous)).toEqual([]);
    expect(html).not.toContain('hljs-keyword');
    expect(html).toContain('para one');
  });
});

describe('urlTransform', () => {
  it('empties unsafe hrefs and keeps safe ones', () => {
    expect(urlTransform('javascript:alert(1)', 'href')).toBe('');
    expect(urlTransform('https://a.example/', 'href')).toBe('https://a.example/');
    expect(urlTransform('http://user:pw@a.example/', 'href')).toBe('');
  });
});
