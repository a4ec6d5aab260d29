import { MemoryNodeStore } from './memory-node-store.js';

/**
 * A store whose machines' transactions commit on another thread: while held, what was applied is
 * not in the file yet (`settled()` stays pending), as when the writer thread falls behind (with
 * the apply transactions of a backlog, or a large log compaction).
 */
export class SettlingStore extends MemoryNodeStore {
  private gate: { opened: Promise<void>; open: () => void } | undefined;
  /** Times the host asked whether what it queued is in the file, while held. */
  waits = 0;

  hold(): void {
    let open = (): void => {};
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    this.gate = { opened, open };
  }

  release(): void {
    this.gate?.open();
    this.gate = undefined;
  }

  settled(): Promise<void> | undefined {
    if (this.gate === undefined) return undefined;
    this.waits++;
    return this.gate.opened;
  }
}
