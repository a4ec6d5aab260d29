import type { ClusterEvent } from '../types.js';

export function Events(props: { events: ClusterEvent[] }) {
  const shown = [...props.events].reverse().slice(0, 100);
  if (shown.length === 0) return <p class="muted">no event yet</p>;
  return (
    <ol class="events" data-testid="events">
      {shown.map((e) => (
        <li key={e.seq} data-type={e.type}>
          <time>{new Date(e.t).toLocaleTimeString()}</time>
          <span class={`kind ${e.type}`}>{e.type}</span>
          <span>{e.message}</span>
        </li>
      ))}
    </ol>
  );
}
