// Package ws runs Herald's WebSocket connections: Hub.Accept upgrades a request whose
// handshake the api package has checked (authentication, origin, the since parameter),
// and the connection then reads client frames, writes server frames, pings, and closes.
// The protocol itself (event names, frame encodings, close codes) is api/ws/wire's;
// routing and state are the inbox actors' (actors/inbox). A connection is an
// inbox.Socket.
//
// # Goroutines
//
// Hub.Start runs each connection on a goroutine of its own (the handler returns, so
// net/http lets go of the request), which is the connection's reader and ends only
// after every other goroutine of the connection has ended. An idle connection has no
// other goroutine: the writer starts when a frame is queued and ends when the queue is empty,
// and the protocol ping runs from a timer every Options.PingInterval: the connection
// writes it itself (two bytes), and Options.PingTimeout later drops the peer unless a
// frame of its (the pong, or any other) has gone by under the reader since; nothing
// waits for the pong. A connection's
// state shared by the inbox (Send) and its writer — the queue — is guarded by one mutex.
//
// # Client frames
//
// Each connection may send Options.FrameRate frames a second, Options.FrameBurst saved
// up (defaults 50 and 100): a token bucket held by the reader, which takes a token for
// every frame the client sends, valid or not, as its header goes by under the library's
// reader (NetConn.Read, frameCounter): text and binary frames, each fragment of a
// message, and the control frames (ping, pong, close) the library answers itself, so no
// kind of frame makes the node work for free; frames sent with the upgrade request,
// before its answer, count too. The frame that finds none left closes the connection
// with 1008 ("too many frames: at most 50/s"), counted by
// herald_ws_frame_rate_closes_total. Neither it nor anything the client sends after it
// reaches the library (NetConn.Read cuts the stream at its first byte, then discards
// up to the client's close frame), so the library answers no ping over the rate, and
// the reader acts on nothing more.
// The limit is the connection's alone: a new connection of the same user starts with a
// full bucket.
//
// The reader waits for nothing but the network: it answers ping itself, answers a
// frame that does not parse with its error frame, and sends every other frame
// (refresh-unread, mark-read, mark-all-read) to the user's inbox, which answers it
// (actors/inbox, "A client's frames"). The inbox keeps one write of the connection in
// flight and the connection's later frames behind it, in order, at most
// inbox.Options.PendingFrames (128) of them: together with the frame rate, that bounds
// the store transactions one socket can cause. So a pong can overtake the answer to a
// mark-read sent before the ping; a refresh-unread cannot.
//
// # Slow consumers
//
// Each connection queues at most Options.QueueSize frames. When a burst finds the queue
// full, the inbox stops pushing and lets the socket catch up at its own pace (from its
// ring of recent entries or the store, a page whenever the queue has room). A client
// that makes no room for the inbox's read timeout (10 s) is closed with 4008.
//
// A client that stops reading must find that 4008 when it reads again, and a close
// frame can only follow a whole data frame: once a write is stuck in the middle of one
// in a full kernel buffer, there is no way to send it. So on Linux the writer never
// fills the kernel's buffer: it keeps the connection's send queue (SIOCOUTQ) under
// 512 KiB (the send buffer fixed at 512 KiB, which the kernel doubles for its own
// accounting), and a group of frames that finds no room within Options.WriteTimeout is
// not written; the connection is closed with 4008, whose frame fits in what is left.
// The client reads every whole frame written to it, then the close frame (after the
// closing handshake's 5 s the connection is closed, the kernel still delivering what
// it holds). Elsewhere, and for a single frame bigger than 512 KiB (a snapshot of big
// payloads), a write blocks until the client reads; one blocked for longer than
// Options.WriteTimeout is dropped without a close frame (1006). All are counted
// (herald_ws_slow_consumer_closes_total): the inbox never waits for a socket, and the
// client reconnects with since and loses nothing.
//
// # Writes
//
// The writer takes the whole queue at once and writes it as data frames in one
// vectored write to the network (NetConn): one system call per batch (per 64 KiB of a
// burst), no copy, none of the WebSocket library's per-message locking. The library
// still writes its control frames (pongs, the close) through the same NetConn,
// under the same mutex, between those writes, and NetConn refuses data frames once a
// close frame has gone out. The write timeout of a blocked write is one sweep per hub
// (Options.WriteTimeout / 4, at most every second) over the connections whose write has
// been blocked for too long, not a timer per write; a writer waiting for room in the
// send queue polls it (from 1 ms, doubling up to 100 ms) until its own deadline.
//
// # Shutdown
//
// Hub.Shutdown refuses new connections, closes every open one with 1001 (going away) and
// waits for their Serve calls to return; connections still open when its context ends
// are dropped without the closing handshake. Hijacked connections are invisible to
// http.Server.Shutdown: the hub is what tracks them.
package ws
