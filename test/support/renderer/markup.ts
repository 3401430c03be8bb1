/** Reading server-rendered markup the way a reader sees it. */

/** The text of `html`: tags dropped, entities read. */
export function visibleText(html: string): string {
  return html
    .replace(/<[^>]*>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#x27;/g, "'")
    .replace(/&amp;/g, '&');
}

/** Each element's markup carrying `data-testid="<id>"` (its opening tag to the matching close of the same tag name, not nested). */
export function byTestIdMarkup(html: string, testId: string, tag: string): string[] {
  const re = new RegExp(`<${tag}[^>]*data-testid="${testId}"[^>]*>([\\s\\S]*?)</${tag}>`, 'g');
  return [...html.matchAll(re)].map((m) => m[0]);
}
