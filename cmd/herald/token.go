package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/persistence/postgres"
)

func token(args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "user id (the token's sub); required")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	tenant := fs.String("tenant", "", "tenant id (the token's tid); optional")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" {
		return errors.New("--user is required")
	}
	if *ttl <= 0 {
		return errors.New("--ttl must be positive")
	}
	cfg, err := checkConfig(environ)
	if err != nil {
		return err
	}
	secret := cfg.JWTSecret
	if secret == "" {
		// Fall back to the credentials `serve --dev` keeps in the data directory.
		if c, err := loadDevCredentials(cfg.DataDir); err == nil {
			secret = c.JWTSecret
		}
	}
	if secret == "" {
		return errors.New("HERALD_JWT_SECRET is not set (and no --dev credentials in HERALD_DATA_DIR)")
	}
	t, err := auth.SignUserToken([]byte(secret), *user, *tenant, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, t)
	return nil
}

func migrate(ctx context.Context, environ []string, stdout io.Writer) error {
	cfg, err := checkConfig(environ)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return errors.New("HERALD_DATABASE_URL is not set; the embedded store needs no migration")
	}
	if err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "schema is up to date")
	return nil
}
