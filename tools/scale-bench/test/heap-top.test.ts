import { describe, expect, it } from 'vitest';
import { type HeapProfileNode, formatHeapTop, frameName, heapSites } from '../src/heap-top.ts';
import { inspectorUrl } from '../src/inspector-client.ts';

const node = (
  functionName: string,
  url: string,
  selfSize: number,
  ...children: HeapProfileNode[]
): HeapProfileNode => ({
  callFrame: { functionName, url, lineNumber: 9 },
  selfSize,
  children,
});

// root > apply > put (300 B) > copy (100 B); root > apply > get > copy (50 B); root > (native) Map#set (20 B)
const profile = {
  head: node(
    '(root)',
    '',
    0,
    node(
      'apply',
      'file:///w/packages/kv/dist/apply.js',
      0,
      node(
        'put',
        'file:///w/packages/storage/dist/kv.js',
        300,
        node('copy', 'file:///w/packages/storage/dist/slabs.js', 100),
      ),
      node(
        'get',
        'file:///w/packages/storage/dist/kv.js',
        0,
        node('copy', 'file:///w/packages/storage/dist/slabs.js', 50),
      ),
    ),
    node('set', '', 20),
  ),
};

describe('the heap profile summary', () => {
  it('names a frame by its function and its place in the package, one-based', () => {
    expect(frameName({ functionName: 'put', url: 'file:///w/packages/storage/dist/kv.js', lineNumber: 9 })).toBe(
      'put packages/storage/dist/kv.js:10',
    );
    expect(frameName({ functionName: '', url: '', lineNumber: -1 })).toBe('(anonymous) (native)');
  });

  it('sums the bytes of each allocating frame wherever it was called from, and of each frame with its callers', () => {
    const { byFrame, byStack } = heapSites(profile);
    expect(byFrame.get('copy packages/storage/dist/slabs.js:10')).toBe(150);
    expect(byFrame.get('put packages/storage/dist/kv.js:10')).toBe(300);
    expect(byFrame.get('set (native)')).toBe(20);
    expect([...byFrame.values()].reduce((a, b) => a + b)).toBe(470);
    expect(
      byStack.get(
        'copy packages/storage/dist/slabs.js:10 < put packages/storage/dist/kv.js:10 < apply packages/kv/dist/apply.js:10',
      ),
    ).toBe(100);
    expect(
      byStack.get(
        'copy packages/storage/dist/slabs.js:10 < get packages/storage/dist/kv.js:10 < apply packages/kv/dist/apply.js:10',
      ),
    ).toBe(50);
  });

  it('prints the total and the largest sites in bytes a request', () => {
    const out = formatHeapTop(profile, 10, 2).split('\n');
    expect(out[0]).toBe('sampled 0.0 MB, 47 B a request over 10 requests');
    expect(out[2]).toMatch(/^ +30 {2}put packages\/storage\/dist\/kv\.js:10$/);
    expect(out[3]).toMatch(/^ +15 {2}copy /);
    expect(out).toHaveLength(8);
  });

  it('finds the inspector address in the line a node prints', () => {
    expect(inspectorUrl('Debugger listening on ws://127.0.0.1:40123/3f0c6d1e-1b2a-4c5d-8e9f-0a1b2c3d4e5f')).toBe(
      'ws://127.0.0.1:40123/3f0c6d1e-1b2a-4c5d-8e9f-0a1b2c3d4e5f',
    );
    expect(inspectorUrl('For help, see: https://nodejs.org/en/docs/inspector')).toBeUndefined();
  });
});
