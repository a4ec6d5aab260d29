import type { ProcCluster } from './processes.js';

/** What each node says of the partitions, and how a GET of each account fares through each node. */
export async function diagnose(cluster: ProcCluster, accounts: string[]): Promise<string> {
  const lines: string[] = [];
  for (const n of cluster.nodes) {
    try {
      const res = await fetch(`http://127.0.0.1:${n.http}/v1/partitions`, { signal: AbortSignal.timeout(3000) });
      const ps = (
        (await res.json()) as { partitions: { leader: string; term: number; commit: number; applied: number }[] }
      ).partitions;
      lines.push(
        `${n.id} partitions: ${ps.map((p, i) => `p${i}:${p.leader}@${p.term} ${p.applied}/${p.commit}`).join(' ')}`,
      );
    } catch (err) {
      lines.push(`${n.id} partitions: ${String(err)}`);
    }
    const gets = await Promise.all(
      accounts.map(async (a) => {
        const t = performance.now();
        try {
          const res = await fetch(`http://127.0.0.1:${n.http}/v1/kv/${encodeURIComponent(a)}`, {
            signal: AbortSignal.timeout(5000),
          });
          return `${a}:${res.status}(${Math.round(performance.now() - t)}ms)`;
        } catch (err) {
          return `${a}:${String(err).slice(0, 40)}`;
        }
      }),
    );
    lines.push(`${n.id} gets: ${gets.join(' ')}`);
    lines.push(
      ...n.log
        .split('\n')
        .filter((l) => /"level":(40|50|60)/.test(l) && !/cannot reach peer|valid hello/.test(l))
        .slice(-8),
    );
  }
  return lines.join('\n');
}
