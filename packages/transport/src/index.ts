/** libp2p (TCP + Noise + Yamux) behind the Transport interface of @cohort/core: persistent peer identity, one protocol per subsystem, length-prefixed frames with a size limit. */
export const PACKAGE = '@cohort/transport';
