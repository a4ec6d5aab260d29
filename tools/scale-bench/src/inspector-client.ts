// A client of a Node process's inspector (`node --inspect`): the Chrome DevTools
// protocol's calls over the WebSocket the process prints when it starts
// ("Debugger listening on ws://..."), on Node's own WebSocket.

/** The inspector's address in a line a process printed, if it has one. */
export function inspectorUrl(line: string): string | undefined {
  return /ws:\/\/[0-9.]+:\d+\/[0-9a-f-]+/.exec(line)?.[0];
}

/** One open connection to a process's inspector. */
export class InspectorClient {
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private readonly ws: WebSocket;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.addEventListener('message', (e) => {
      const msg = JSON.parse(String(e.data)) as { id?: number; result?: unknown; error?: { message: string } };
      if (msg.id === undefined) return;
      const w = this.waiting.get(msg.id);
      this.waiting.delete(msg.id);
      if (msg.error) w?.reject(new Error(`inspector: ${msg.error.message}`));
      else w?.resolve(msg.result);
    });
    ws.addEventListener('close', () => {
      for (const w of this.waiting.values()) w.reject(new Error('inspector: the connection closed'));
      this.waiting.clear();
    });
  }

  static connect(url: string): Promise<InspectorClient> {
    const ws = new WebSocket(url);
    return new Promise((resolve, reject) => {
      ws.addEventListener('open', () => resolve(new InspectorClient(ws)));
      ws.addEventListener('error', () => reject(new Error(`inspector: cannot connect to ${url}`)));
    });
  }

  /** Calls `method` with `params`; its result. */
  call<T = unknown>(method: string, params: object = {}): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.ws.close();
  }
}
