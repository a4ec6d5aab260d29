// Summaries of a V8 sampling heap profile (`HeapProfiler.stopSampling` of the
// inspector protocol, or a `.heapprofile` file): the allocation sites of the
// sampled bytes, per request of a load, by function and by the frames that
// called it.

/** A node of a sampling heap profile's call tree: bytes sampled in `callFrame` itself (`selfSize`). */
export interface HeapProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children?: HeapProfileNode[];
}

/** What `HeapProfiler.stopSampling` answers (`samples` left out: the tree has their sizes). */
export interface HeapProfile {
  head: HeapProfileNode;
}

/** A frame as a line of the summary: the function and where it is, paths shortened to the package. */
export function frameName(f: HeapProfileNode['callFrame']): string {
  const where = f.url.replace(/^.*\/(packages|apps|tools|node_modules)\//, '$1/').replace(/^file:\/\//, '');
  return `${f.functionName || '(anonymous)'} ${where === '' ? '(native)' : `${where}:${f.lineNumber + 1}`}`;
}

/** Bytes sampled by allocating frame, and by that frame with `depth - 1` of its callers (innermost first). */
export function heapSites(
  profile: HeapProfile,
  depth = 3,
): { byFrame: Map<string, number>; byStack: Map<string, number> } {
  const byFrame = new Map<string, number>();
  const byStack = new Map<string, number>();
  // Depth first, with each node's path of frame names from the root (the root's own is left out).
  const stack: { node: HeapProfileNode; path: string[] }[] = [{ node: profile.head, path: [] }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { node, path } = item;
    if (node.selfSize > 0) {
      const name = path.at(-1) ?? frameName(node.callFrame);
      byFrame.set(name, (byFrame.get(name) ?? 0) + node.selfSize);
      const site = path.slice(-depth).reverse().join(' < ');
      byStack.set(site, (byStack.get(site) ?? 0) + node.selfSize);
    }
    for (const child of node.children ?? []) stack.push({ node: child, path: [...path, frameName(child.callFrame)] });
  }
  return { byFrame, byStack };
}

/**
 * The `top` allocation sites of `profile` by function, then by function and its callers, in bytes per request
 * over `requests` requests, with the total first.
 */
export function formatHeapTop(profile: HeapProfile, requests: number, top: number): string {
  const { byFrame, byStack } = heapSites(profile);
  let total = 0;
  for (const b of byFrame.values()) total += b;
  const per = (b: number): string => (b / Math.max(1, requests)).toFixed(0).padStart(7);
  const rows = (m: Map<string, number>): string[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, b]) => `${per(b)}  ${name}`);
  return [
    `sampled ${(total / 1e6).toFixed(1)} MB, ${per(total).trim()} B a request over ${requests} requests`,
    'B/request  allocated in',
    ...rows(byFrame),
    '',
    'B/request  allocated in < called from < called from',
    ...rows(byStack),
  ].join('\n');
}
