/** Talks to the node that served the page, with the bearer token the operator gave (kept for this tab only). */

const TOKEN_KEY = 'cohort.token';

/** The bearer token given for this tab ('' when none). */
export function getToken(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

/** Keeps `token` for this tab (sessionStorage), or forgets it when ''. */
export function setToken(token: string): void {
  if (token === '') sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

/** An API answer other than 2xx: its status and the API's error code and message. */
export class ApiFailure extends Error {
  override readonly name = 'ApiFailure';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** Calls the API (`path` from the root, e.g. `/v1/members`) and answers its JSON body. */
export async function api<T>(
  path: string,
  init: { method?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  const token = getToken();
  if (token !== '') headers.authorization = `Bearer ${token}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method: init.method ?? 'GET',
      headers,
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      signal: AbortSignal.timeout(init.timeoutMs ?? 10_000),
    });
  } catch (err) {
    throw new ApiFailure(0, 'UNREACHABLE', `the node does not answer: ${(err as Error).message}`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = text === '' ? {} : JSON.parse(text);
  } catch {
    body = { error: { code: 'BAD_ANSWER', message: text.slice(0, 200) } };
  }
  if (!res.ok) {
    const e = (body as { error?: { code?: string; message?: string } & Record<string, unknown> }).error ?? {};
    throw new ApiFailure(res.status, e.code ?? String(res.status), e.message ?? res.statusText, e);
  }
  return body as T;
}
