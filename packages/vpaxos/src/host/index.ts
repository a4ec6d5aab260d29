export {
  type AcceptorStore,
  type VPaxosHostOptions,
  VPaxosHost,
  type VpObserver,
  type VpStateMachine,
} from './vpaxos-host.js';
export { type MasterInbox, VpTransportMux } from './transport-mux.js';
export {
  VP_SNAPSHOT_PROTOCOL,
  type VpSnapshotLimits,
  type VpSnapshotReader,
  type VpSnapshotWriter,
} from './snapshot-stream.js';
