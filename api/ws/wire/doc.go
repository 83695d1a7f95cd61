// Package wire is Herald's WebSocket protocol, in one place: the event names of both
// directions, the decoding of client frames, the encoding of every server frame, the
// snapshot's size and the close codes. The error codes an error frame carries are the
// module's (herald.Code: bad_frame and unknown_event are only ever in a frame, the rest
// are the REST contract's).
//
// It holds no state and starts nothing. Both sides of a connection use it: the inbox
// actors (actors/inbox) encode the log entries and snapshots and answer client frames,
// the connection (api/ws) parses what the client sends, answers pings and closes with
// these codes. The contract it implements is the WebSocket section of the API
// document; a change here is a change of the contract.
package wire
