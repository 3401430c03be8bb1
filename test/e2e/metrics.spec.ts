/**
 * The browser host's gate and /metrics: the token is required, the
 * named Prometheus series are there, and they count real work.
 */
import { assistantMessages, setDefaultSampling, startChat, waitForGrowth, waitIdle } from './app.ts';
import { expect, openApp, test } from './fixtures.ts';

const series = [
  'hearth_prompt_tokens_total{source="prefilled"}',
  'hearth_prompt_tokens_total{source="reused"}',
  'hearth_prompt_tokens_total{source="restored"}',
  'hearth_generated_tokens_total',
  'hearth_ttft_seconds',
  'hearth_kv_cells_used',
  'hearth_kv_cells_capacity',
];

/** The value of the sample `name` (written with its labels, exactly as exposed). */
function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1).trim().split(' ')[0]);
}

test('/metrics returns the named series with the token, and 401 without', async ({ page, host }) => {
  expect((await fetch(`${host.origin}/metrics`)).status).toBe(401);
  expect((await fetch(`${host.origin}/metrics?token=wrong`)).status).toBe(401);

  await setDefaultSampling(host, { maxTokens: 8 });
  await openApp(page, host);
  await startChat(page, 'Count this.');
  // The reply must have started before "idle" means finished: right after sending, the Stop
  // button may not be there yet (a CI run once read the counters before the reply began).
  await waitForGrowth(assistantMessages(page).first(), 0, 30_000);
  await waitIdle(page);

  const byQuery = await fetch(`${host.origin}/metrics?token=${host.token}`);
  expect(byQuery.status).toBe(200);
  expect(byQuery.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await byQuery.text();
  for (const name of series) expect(text, name).toContain(name);
  expect(sample(text, 'hearth_generated_tokens_total')).toBeGreaterThan(0);
  expect(sample(text, 'hearth_prompt_tokens_total{source="prefilled"}')).toBeGreaterThan(0);
  expect(sample(text, 'hearth_prompt_tokens_total{source="restored"}')).toBe(0);
  expect(sample(text, 'hearth_kv_cells_capacity')).toBeGreaterThan(0);

  const byBearer = await fetch(`${host.origin}/metrics`, { headers: { Authorization: `Bearer ${host.token}` } });
  expect(byBearer.status).toBe(200);
});

test('the page needs the token: without it the browser gets a 401 page, not the app', async ({ page, host }) => {
  const response = await page.goto(host.origin + '/');
  expect(response?.status()).toBe(401);
  await expect(page.getByText(/token/i)).toBeVisible();
  await expect(page.getByRole('textbox', { name: 'Message' })).toHaveCount(0);

  // With the token, the cookie lets the page make its own API and WebSocket requests.
  await openApp(page, host);
  const cookies = await page.context().cookies();
  const cookie = cookies.find((c) => c.name === `hearth_token_${host.port}`);
  expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
  // HttpOnly: page scripts cannot read it.
  expect(await page.evaluate('document.cookie')).toBe('');
});
