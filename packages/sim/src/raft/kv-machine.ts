import type { KvInput } from '../lin/history.js';
import { decodeText, encodeText } from '../text-codec.js';

/** A client command as it travels through the log: client id and sequence number make it exactly-once. */
export interface KvCommand {
  client: number;
  seq: number;
  input: KvInput;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const SEP = '\x1f';

/** Encodes a command as `client SEP seq SEP op SEP key [SEP value]` (ASCII unit separators; keys and values never hold one). */
export function encodeCommand(c: KvCommand): Uint8Array {
  const i = c.input;
  const tail = i.op === 'get' ? '' : `${SEP}${i.value}`;
  return encodeText(`${c.client}${SEP}${c.seq}${SEP}${i.op}${SEP}${i.key}${tail}`);
}

/** Decodes what {@link encodeCommand} wrote. */
export function decodeCommand(b: Uint8Array): KvCommand {
  return fromFields(decodeText(b).split(SEP));
}

function fromFields(fields: string[]): KvCommand {
  const [client, seq, op, key, value] = fields;
  const k = key ?? '';
  const input: KvInput =
    op === 'get' ? { op, key: k } : { op: op === 'append' ? 'append' : 'put', key: k, value: value ?? '' };
  return { client: Number(client), seq: Number(seq), input };
}

/**
 * The small replicated KV the simulator runs on top of Raft: `put`, `append`
 * and `get` over string keys, with a per-client session (last sequence number
 * and its answer) so a retried command takes effect once.
 */
export class KvMachine {
  private data = new Map<string, string>();
  private sessions = new Map<number, { seq: number; output: string }>();

  /** Applies a committed command; returns its answer, or `undefined` for a stale duplicate. */
  apply(c: KvCommand): string | undefined {
    const s = this.sessions.get(c.client);
    if (s && s.seq === c.seq) return s.output;
    if (s && s.seq > c.seq) return undefined;
    const output = this.run(c.input);
    this.sessions.set(c.client, { seq: c.seq, output });
    return output;
  }

  /** Reads a key without going through the log (served after a ReadIndex). */
  read(key: string): string {
    return this.data.get(key) ?? '';
  }

  private run(input: KvInput): string {
    switch (input.op) {
      case 'put':
        this.data.set(input.key, input.value);
        return 'ok';
      case 'append':
        this.data.set(input.key, (this.data.get(input.key) ?? '') + input.value);
        return 'ok';
      case 'get':
        return this.read(input.key);
      default: {
        const never: never = input;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
  }

  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify({ data: [...this.data], sessions: [...this.sessions] }));
  }

  /** Replaces the state with a snapshot's (an empty one resets it). */
  restore(b: Uint8Array): void {
    if (b.length === 0) {
      this.data = new Map();
      this.sessions = new Map();
      return;
    }
    const s = JSON.parse(dec.decode(b)) as {
      data: [string, string][];
      sessions: [number, { seq: number; output: string }][];
    };
    this.data = new Map(s.data);
    this.sessions = new Map(s.sessions);
  }
}
