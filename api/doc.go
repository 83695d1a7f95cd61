// Package api is Herald's HTTP surface: the REST routes of the wire contract, health and
// metrics endpoints, and the one place where errors become HTTP statuses.
//
// The API stays thin. A handler authenticates the caller (api/auth), decodes and
// validates the request into a persistence.Op or a read, and either asks the store
// directly (reads) or hands the op to the persistence actor and waits for the commit
// (writes). It never writes to the store itself.
package api
