// Command herald runs the Herald notification server and its tools.
//
//	herald serve [--dev]              run the server (configured by HERALD_* variables)
//	herald token --user ID [--ttl D] [--tenant T]  print a user JWT signed with HERALD_JWT_SECRET
//	herald migrate                    apply the PostgreSQL schema (HERALD_DATABASE_URL)
//
// The command reads the configuration, builds a node (package node wires the store, the
// actors and the API), serves it over HTTP and owns the shutdown order: on SIGTERM or
// SIGINT it stops accepting, closes the WebSockets with 1001 while the HTTP server lets
// running requests finish, both within the first half of HERALD_SHUTDOWN_TIMEOUT; then
// it closes the node (pending writes committed, deliveries finished, the store closed)
// within the rest. Past the whole budget (a store that does not answer) it exits 1,
// saying what was not done: nothing acknowledged is lost. SIGHUP reloads the rules file.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  herald serve [--dev]                          run the server
  herald token --user ID [--ttl 1h] [--tenant T] print a user JWT
  herald migrate                                apply the PostgreSQL schema

Configuration is read from HERALD_* environment variables; see the README.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ctx.Done()
		stop() // the first signal starts a drain; a second one ends the process at once
	}()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: tests call it with their own context, environment
// and output.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], environ, stdout, stderr)
	case "token":
		err = token(args[1:], environ, stdout, stderr)
	case "migrate":
		err = migrate(ctx, environ, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "herald: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
