import type { Member, Partition } from '../types.js';

/** Tags shown in their own columns, not among the others. */
const OWN_COLUMNS = new Set(['http', 'resp', 'leads']);

/** The members table: SWIM state, incarnation, phi, addresses, partitions led, tags; the meta leader marked. */
export function Members(props: {
  members?: Member[] | undefined;
  partitions?: Partition[] | undefined;
  metaLeader?: string | undefined;
}) {
  const { members, partitions, metaLeader } = props;
  if (members === undefined) return <p class="muted">no member list yet</p>;
  const withPhi = members.some((m) => m.phi !== undefined);
  const leads = (id: string): number[] => (partitions ?? []).filter((p) => p.leader === id).map((p) => p.partition);
  return (
    <table data-testid="members">
      <thead>
        <tr>
          <th>node</th>
          <th>state</th>
          <th>incarnation</th>
          {withPhi && <th>phi</th>}
          <th>peer address</th>
          <th>HTTP</th>
          <th>RESP</th>
          <th>leads</th>
          <th>tags</th>
        </tr>
      </thead>
      <tbody>
        {members.map((m) => {
          const tags = Object.entries(m.tags).filter(([k]) => !OWN_COLUMNS.has(k));
          const led = leads(m.id);
          return (
            <tr key={m.id} data-member={m.id} data-state={m.state} class={`state-${m.state}`}>
              <td>
                <b>{m.id}</b>
                {m.id === metaLeader && (
                  <span class="badge" title="leads the meta group (registry and partition map)">
                    meta leader
                  </span>
                )}
              </td>
              <td>
                <span class={`pill ${m.state}`}>{m.state}</span>
              </td>
              <td class="num">{m.incarnation}</td>
              {withPhi && <td class="num">{m.phi === undefined ? '' : m.phi.toFixed(2)}</td>}
              <td>
                <code>{m.address}</code>
              </td>
              <td>
                {m.tags.http ? (
                  <a href={`//${m.tags.http}/ui/`} title="this node's dashboard">
                    {m.tags.http}
                  </a>
                ) : null}
              </td>
              <td>
                <code>{m.tags.resp ?? ''}</code>
              </td>
              <td>{led.length > 0 ? led.map((p) => `p${p}`).join(' ') : ''}</td>
              <td>
                {tags.map(([k, v]) => (
                  <span key={k} class="tag">
                    {k}={v}
                  </span>
                ))}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
