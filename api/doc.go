// Package api is Herald's HTTP surface: the REST routes of the wire contract, health and
// metrics endpoints, and the one place where errors become HTTP statuses.
//
// The API stays thin. A handler authenticates the caller (api/auth), decodes and
// validates the request into a persistence.Op or a read, and either asks the store
// directly (reads) or hands the op to the persistence actor and waits for the commit
// (writes: notifications, mark-read, read-all, events, contacts, preferences and
// dead-letter retries alike). It is handed a persistence.Reader and a persistence.Writer
// (Options.Store, Options.Writer), neither of which can write to the store itself: every
// change a request makes joins a group commit of the persistence actor.
//
// # Stopping
//
// A Server starts no goroutine of its own and has nothing to close. Whoever serves it
// stops it: http.Server.Shutdown for the requests, Hub.Shutdown (at the same time) for the
// WebSockets, which Shutdown cannot see once hijacked; the persistence actor must keep
// running until both have returned, since requests in flight still wait on it.
package api
