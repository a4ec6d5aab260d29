import type { ClusterEvent } from '../types.js';

/** The events this node saw, newest first (the last 100 the page holds). */
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
