/** Markdown tables for benchmark output. */

export interface Column<Row> {
  readonly title: string;
  readonly value: (row: Row) => string | number | null;
  /** Right-align (numbers). */
  readonly numeric?: boolean;
}

function cell(value: string | number | null): string {
  if (value === null) return '—';
  if (typeof value === 'number') {
    if (Number.isInteger(value)) return value.toLocaleString('en-US');
    return value.toLocaleString('en-US', { maximumFractionDigits: value >= 100 ? 0 : value >= 10 ? 1 : 2 });
  }
  return value.replace(/\|/g, '\\|');
}

/** A GitHub-flavoured markdown table; `null` shows as "—" (not measured). */
export function markdownTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[]): string {
  const header = `| ${columns.map((c) => c.title).join(' | ')} |`;
  const rule = `|${columns.map((c) => (c.numeric ? '---:' : '---')).join('|')}|`;
  const body = rows.map((row) => `| ${columns.map((c) => cell(c.value(row))).join(' | ')} |`);
  return [header, rule, ...body].join('\n');
}
