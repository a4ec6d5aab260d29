import { useEffect, useRef, useState } from 'preact/hooks';
import { getToken, setToken } from './api.js';
import { Charts } from './components/charts.js';
import { ConfirmDialog, type PendingAction } from './components/confirm-dialog.js';
import { Events } from './components/events.js';
import { Members } from './components/members.js';
import { Partitions } from './components/partitions.js';
import { Poller, type Snapshot } from './poll.js';

/** How often the page asks the node. */
const POLL_MS = 1000;

/** The page: polls the node every second and lays out members, partitions, charts and events. */
export function App() {
  const [snap, setSnap] = useState<Snapshot | undefined>(undefined);
  const [updated, setUpdated] = useState<number | undefined>(undefined);
  const [pending, setPending] = useState<PendingAction | undefined>(undefined);
  const [token, setTokenField] = useState(getToken());
  const poller = useRef(new Poller());

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async (): Promise<void> => {
      const s = await poller.current.round();
      if (stopped) return;
      setSnap(s);
      setUpdated(Date.now());
      timer = setTimeout(() => void tick(), POLL_MS);
    };
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);

  const unauthorized = snap?.errors.some((e) => e.status === 401 || e.status === 403) ?? false;
  const unreachable = snap !== undefined && snap.errors.length > 0 && snap.errors.every((e) => e.status === 0);
  const meta = snap?.meta;
  const metaLeader = meta?.leader !== undefined && meta.leader !== '' ? meta.leader : undefined;

  return (
    <div class="page">
      <header>
        <h1>Cohort</h1>
        <div class="facts">
          {snap?.status && (
            <span data-testid="entry-node">
              node <b>{snap.status.id}</b>
            </span>
          )}
          {meta?.clusterId ? (
            <span>
              cluster <code>{meta.clusterId.slice(0, 8)}</code>
            </span>
          ) : null}
          {meta && (
            <span data-testid="meta-leader">
              meta leader <b>{metaLeader ?? 'none'}</b>
              {metaLeader && meta.term !== undefined ? ` (term ${meta.term})` : ''}
            </span>
          )}
          {snap?.status?.degraded?.length ? <span class="bad">degraded: {snap.status.degraded.join(', ')}</span> : null}
          <span class="muted">{updated ? `updated ${new Date(updated).toLocaleTimeString()}` : 'loading…'}</span>
        </div>
        <form
          class="token"
          onSubmit={(e) => {
            e.preventDefault();
            setToken(token.trim());
          }}
        >
          <input
            type="password"
            placeholder="HTTP token (when auth is on)"
            value={token}
            onInput={(e) => setTokenField((e.target as HTMLInputElement).value)}
            aria-label="bearer token"
          />
          <button type="submit">use token</button>
        </form>
      </header>
      {unauthorized && (
        <p class="banner bad">
          The node asks for a bearer token with admin rights: enter a user's token above (it is kept in this tab only).
        </p>
      )}
      {unreachable && (
        <p class="banner bad">
          This node does not answer. Open the dashboard of another node (its HTTP address is in the members table).
        </p>
      )}
      <section>
        <h2>Members</h2>
        <Members members={snap?.members} partitions={snap?.partitions} metaLeader={metaLeader} />
      </section>
      <section>
        <h2>Partitions</h2>
        <Partitions partitions={snap?.partitions} members={snap?.members} meta={meta} onAction={(a) => setPending(a)} />
      </section>
      <section>
        <h2>This node's metrics (last 5 minutes)</h2>
        <Charts samples={snap?.samples ?? []} />
      </section>
      <section>
        <h2>Recent events seen by this node</h2>
        <Events events={snap?.events ?? []} />
      </section>
      {pending && <ConfirmDialog action={pending} onClose={() => setPending(undefined)} />}
    </div>
  );
}
