import type { CohortConfig } from './config.js';

/** One problem in a configuration: the dotted field and what to do about it. */
export interface ConfigIssue {
  field: string;
  message: string;
}

const MAX_APPEND_BYTES = 8 * 1024 * 1024;

const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

/** The rules that span fields, after the shape is known to be right. */
export function checkConfigRules(config: CohortConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const add = (field: string, message: string): void => {
    issues.push({ field, message });
  };
  const { node, cluster, raft } = config;

  const checkAddress = (field: string, value: string | undefined, allowPortZero: boolean): void => {
    if (value === undefined) return;
    const port = Number(HOST_PORT.exec(value)?.[1] ?? Number.NaN);
    if (Number.isNaN(port)) {
      add(field, `'${value}' is not host:port; use for example 127.0.0.1:7000 or [::1]:7000`);
    } else if (port > 65535 || (port === 0 && !allowPortZero)) {
      add(field, `'${value}' has port ${port}; use a port from 1 to 65535`);
    }
  };
  checkAddress('node.clientAddress', node.clientAddress, true);
  checkAddress('node.httpAddress', node.httpAddress, true);
  checkAddress('node.peerAddress', node.peerAddress, true);
  checkAddress('node.advertiseAddress', node.advertiseAddress, false);
  if (node.advertiseAddress?.startsWith('0.0.0.0:') || node.advertiseAddress?.startsWith('[::]:')) {
    add('node.advertiseAddress', `'${node.advertiseAddress}' is a wildcard; advertise an address peers can dial`);
  }
  const listens = [
    ['node.clientAddress', node.clientAddress],
    ['node.httpAddress', node.httpAddress],
    ['node.peerAddress', node.peerAddress],
  ] as const;
  for (let i = 0; i < listens.length; i++) {
    for (let j = i + 1; j < listens.length; j++) {
      const [fa, a] = listens[i]!;
      const [fb, b] = listens[j]!;
      if (a === b && !a.endsWith(':0')) add(fb, `'${b}' is also ${fa}; give each listener its own port`);
    }
  }

  // Raft §5.2: followers must hear heartbeats well within the election timeout.
  if (raft.electionTimeoutMinMs < 2 * raft.heartbeatIntervalMs) {
    add(
      'raft.electionTimeoutMinMs',
      `${raft.electionTimeoutMinMs} is less than 2 x heartbeatIntervalMs (${raft.heartbeatIntervalMs}); ` +
        `set it to at least ${2 * raft.heartbeatIntervalMs} or lower the heartbeat interval`,
    );
  }
  if (raft.electionTimeoutMaxMs < raft.electionTimeoutMinMs) {
    add(
      'raft.electionTimeoutMaxMs',
      `${raft.electionTimeoutMaxMs} is less than electionTimeoutMinMs (${raft.electionTimeoutMinMs}); ` +
        `set it to at least ${raft.electionTimeoutMinMs} (twice the minimum spreads elections best)`,
    );
  }

  // An append message travels in one transport frame (16 MiB), next to the round's other messages.
  if (raft.maxAppendBytes > MAX_APPEND_BYTES) {
    add(
      'raft.maxAppendBytes',
      `${raft.maxAppendBytes} is over ${MAX_APPEND_BYTES} (8 MiB): an append must fit a transport frame; lower it`,
    );
  }
  if (raft.maxInflightBytes < raft.maxAppendBytes) {
    add(
      'raft.maxInflightBytes',
      `${raft.maxInflightBytes} is less than maxAppendBytes (${raft.maxAppendBytes}); ` +
        `set it to at least ${raft.maxAppendBytes}, or lower maxAppendBytes`,
    );
  }

  const members = cluster.initialMembers;
  if (members.length === 0) {
    add('cluster.initialMembers', 'is empty; list this node alone for a single-node cluster, or 3 or more nodes');
  } else if (members.length === 2) {
    add(
      'cluster.initialMembers',
      'has 2 members: a majority of 2 is 2, so losing either node stops the cluster; use 1 node, or 3 or more',
    );
  }
  const seen = new Map<string, string>();
  members.forEach((m, i) => {
    const at = `cluster.initialMembers[${i}]`;
    checkAddress(`${at}.peerAddress`, m.peerAddress, false);
    checkAddress(`${at}.clientAddress`, m.clientAddress, false);
    checkAddress(`${at}.httpAddress`, m.httpAddress, false);
    const keys: [string, string | undefined][] = [
      ['id', m.id],
      ['peerAddress', m.peerAddress],
      ['clientAddress', m.clientAddress],
      ['httpAddress', m.httpAddress],
    ];
    for (const [name, value] of keys) {
      if (value === undefined) continue;
      const key = `${name === 'id' ? 'id' : 'address'}\u0000${value}`;
      const first = seen.get(key);
      if (first !== undefined) add(`${at}.${name}`, `'${value}' is already used by ${first}; each must be unique`);
      else seen.set(key, `${at}.${name}`);
    }
  });
  if (members.length > 0 && !members.some((m) => m.id === node.id)) {
    add(
      'cluster.initialMembers',
      `does not include this node ('${node.id}'); add {id: '${node.id}', peerAddress: ...} or fix node.id`,
    );
  }
  if (members.length > 0 && cluster.replicationFactor > members.length) {
    add(
      'cluster.replicationFactor',
      `${cluster.replicationFactor} is more than the ${members.length} initial member(s); lower it or add members`,
    );
  }
  if (cluster.partitions > 16384) {
    add('cluster.partitions', `${cluster.partitions} is more than the 16384 slots of the key space; use 1 to 16384`);
  }
  return issues;
}
