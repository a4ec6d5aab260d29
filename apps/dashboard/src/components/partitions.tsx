import { useState } from 'preact/hooks';
import type { Member, Meta, Partition } from '../types.js';
import type { PendingAction } from './confirm-dialog.js';

/** A span of ms as an operator reads it: 850 ms, 12 s, 5 min, 2 h. */
function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

interface Health {
  leaderless: boolean;
  underReplicated: boolean;
  why: string[];
}

/** What is wrong with a partition, as its leader's view and the member list tell. */
function health(p: Partition, alive: (id: string) => boolean, factor: number | undefined): Health {
  const why: string[] = [];
  const leader = p.leader ?? '';
  const leaderless = leader === '' || !alive(leader);
  if (leaderless) why.push(leader === '' ? 'no leader' : `leader ${leader} is not alive`);
  const down = p.replicas.filter((r) => !alive(r));
  if (down.length > 0) why.push(`${down.join(', ')} down`);
  if (factor !== undefined && p.replicas.length < factor) why.push(`${p.replicas.length} of ${factor} replicas`);
  if (p.stuck) why.push('stuck: no commit progress');
  if (p.quorum !== undefined && p.quorum !== 'ok') why.push(`quorum ${p.quorum}`);
  const underReplicated = down.length > 0 || (factor !== undefined && p.replicas.length < factor);
  return { leaderless, underReplicated, why };
}

function Actions(props: { p: Partition; members: Member[]; onAction: (a: PendingAction) => void }) {
  const { p, members, onAction } = props;
  const alive = members.filter((m) => m.state === 'alive').map((m) => m.id);
  const targets = p.replicas.filter((r) => r !== p.leader && alive.includes(r));
  const spare = alive.filter((id) => !p.replicas.includes(id) && !(p.learners ?? []).includes(id));
  const [to, setTo] = useState('');
  const [from, setFrom] = useState('');
  const [dest, setDest] = useState('');
  const target = to || targets[0] || '';
  const source = from || p.replicas[0] || '';
  const destination = dest || spare[0] || '';
  return (
    <div class="actions">
      <span>
        <select value={target} onChange={(e) => setTo((e.target as HTMLSelectElement).value)} aria-label="new leader">
          {targets.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
        <button
          type="button"
          disabled={target === ''}
          onClick={() =>
            onAction({
              title: `Transfer the leadership of p${p.partition}`,
              description: `Moves partition p${p.partition}'s leadership from ${p.leader || 'nobody'} to ${target} and records ${target} as its preferred leader. Writes to p${p.partition} pause for about an election.`,
              method: 'POST',
              // Sent on to the partition's leader by whichever node serves the page.
              path: '/v1/admin/partitions/transfer-leader?follow=true',
              body: { partition: p.partition, node: target },
            })
          }
        >
          transfer leader
        </button>
      </span>
      {spare.length > 0 && (
        <span>
          <select value={source} onChange={(e) => setFrom((e.target as HTMLSelectElement).value)} aria-label="from">
            {p.replicas.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
          →
          <select value={destination} onChange={(e) => setDest((e.target as HTMLSelectElement).value)} aria-label="to">
            {spare.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
          <button
            type="button"
            onClick={() =>
              onAction({
                title: `Move a replica of p${p.partition}`,
                description: `Records the move of p${p.partition}'s replica from ${source} to ${destination} in the meta group: placement adds ${destination} as a learner, promotes it once caught up, then removes ${source}. Its data is copied by snapshot.`,
                method: 'POST',
                path: '/v1/admin/partitions/move',
                body: { partition: p.partition, from: source, to: destination },
              })
            }
          >
            move replica
          </button>
        </span>
      )}
    </div>
  );
}

/** The partitions table as their leaders report them, rows marked when leaderless or short of replicas, with actions. */
export function Partitions(props: {
  partitions?: Partition[] | undefined;
  members?: Member[] | undefined;
  meta?: Meta | undefined;
  onAction: (a: PendingAction) => void;
}) {
  const { partitions, members, meta, onAction } = props;
  if (partitions === undefined) return <p class="muted">no partition list yet</p>;
  const state = new Map((members ?? []).map((m) => [m.id, m.state]));
  // Without a member list, nobody is known dead.
  const alive = (id: string): boolean => members === undefined || state.get(id) === 'alive';
  const factor = meta?.clusterId ? meta.replicationFactor : undefined;
  const engine = (p: Partition): string | undefined => p.engine ?? meta?.partitions[p.partition]?.engine;
  const withEngine = partitions.some((p) => engine(p) !== undefined);
  const withFailover = partitions.some((p) => p.lastFailoverMs !== undefined || p.leaderChanges !== undefined);
  return (
    <table data-testid="partitions">
      <thead>
        <tr>
          <th>partition</th>
          <th>slots</th>
          <th>replicas (lag in entries)</th>
          <th>leader</th>
          <th>term</th>
          <th>epoch</th>
          {withEngine && <th>engine</th>}
          {withFailover && <th>last failover</th>}
          <th>commit</th>
          <th>applied</th>
          <th>health</th>
          <th>actions</th>
        </tr>
      </thead>
      <tbody>
        {partitions.map((p) => {
          const h = health(p, alive, factor);
          const cls = h.leaderless ? 'leaderless' : h.underReplicated ? 'under' : '';
          return (
            <tr
              key={p.partition}
              class={cls}
              data-partition={p.partition}
              data-leader={h.leaderless ? '' : (p.leader ?? '')}
            >
              <td>
                <b>p{p.partition}</b>
              </td>
              <td class="num">
                {p.slots.first}–{p.slots.last}
              </td>
              <td>
                {p.replicas.map((r) => (
                  <span key={r} class={`replica ${alive(r) ? '' : 'down'} ${r === p.leader ? 'lead' : ''}`}>
                    {r}
                    {p.lag?.[r] !== undefined ? <small> · {p.lag[r]}</small> : null}
                  </span>
                ))}
                {(p.learners ?? []).map((r) => (
                  <span key={r} class="replica learner" title="learner: catching up, not voting">
                    {r} (learner)
                    {p.lag?.[r] !== undefined ? <small> · {p.lag[r]}</small> : null}
                  </span>
                ))}
              </td>
              <td data-testid="leader">
                {h.leaderless ? <span class="bad">none</span> : <b>{p.leader}</b>}
                {p.leaderForMs !== undefined && !h.leaderless ? <small> for {duration(p.leaderForMs)}</small> : null}
                {p.leaderlessForMs !== undefined ? <small> for {duration(p.leaderlessForMs)}</small> : null}
              </td>
              <td class="num">{p.term ?? ''}</td>
              <td class="num">{p.epoch ?? ''}</td>
              {withEngine && <td>{engine(p) ?? ''}</td>}
              {withFailover && (
                <td class="num" title={p.leaderChanges !== undefined ? `${p.leaderChanges} leader changes seen` : ''}>
                  {p.lastFailoverMs !== undefined ? `${p.lastFailoverMs} ms` : ''}
                </td>
              )}
              <td class="num">{p.commit ?? ''}</td>
              <td class="num">{p.applied ?? ''}</td>
              <td>{h.why.length === 0 ? <span class="ok">ok</span> : <span class="bad">{h.why.join('; ')}</span>}</td>
              <td>{members && <Actions p={p} members={members} onAction={onAction} />}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
