export type { EngineFactory, EngineStatus, RaftEngine } from './engine.js';
export { type GroupStatus, RaftHost, type RaftHostOptions, raftFrame } from './raft-host.js';
export type { StateMachine } from './state-machine.js';
