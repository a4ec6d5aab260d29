export {
  type AcceptorStore,
  type VPaxosHostOptions,
  VPaxosHost,
  type VpObserver,
  type VpStateMachine,
} from './vpaxos-host.js';
export { type MasterInbox, VpTransportMux } from './transport-mux.js';
