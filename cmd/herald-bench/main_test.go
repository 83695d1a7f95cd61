package main

import (
	"context"
	"os"
	"testing"
)

// TestMain lets the test binary stand in for the command when the idle scenario,
// started by a test, re-executes itself to spread connections over processes.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
