// Public face of node-to-node channels (below node/, above crypto/ and util/): mutually
// authenticated TLS 1.3 connections between the nodes of one service, carrying typed binary
// frames for Raft replication and request forwarding. See docs/channels.md.
export { NodeChannels } from "./channels.js";
export type { ChannelIdentity } from "./identity.js";
export { nodeIdFromCertificateDer } from "./identity.js";
export type { ChannelOptions, ChannelLogger, BackoffOptions, PeerAcceptance, PeerAddress, PeerStats } from "./types.js";
export { CHANNEL_DEFAULTS } from "./types.js";
export { FrameParser, FrameProtocolError, encodeFrame, encodeFrameHeader, FRAME_HEADER_BYTES, FRAME_TYPE_MAX } from "./frame.js";
