// Package herald is the shared language of Herald, a realtime notification engine:
// the Notification, the per-user event log Entry, validation of what callers send,
// and the one Error type that every layer returns and the API maps to HTTP statuses.
//
// Everything else builds on these types: stores persist them (package persistence),
// actors move them (package actors/...), the API encodes them (package api).
//
// It starts nothing and holds nothing to close.
package herald
