package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/internal/pgtest"
)

// postgresThrowaway is the value of -postgres that starts a cluster for the run.
const postgresThrowaway = "throwaway"

// Bounds of the throwaway cluster. pgtest bounds its own start (a minute) and stop (a
// minute, then an immediate shutdown); initdb is what it does not bound.
const (
	pgStartBound    = 2 * time.Minute  // initdb and start, when an interrupt cannot cut them short
	pgSetupTimeout  = 30 * time.Second // creating the database and reading its settings
	throwawayDBName = "herald_bench"
	// pgWarmupTimeout bounds the warm-up of the cluster's WAL (see warmWAL).
	pgWarmupTimeout = 2 * time.Minute
	// walWarmup is how much WAL warmWAL writes, and the cluster keeps for reuse.
	walWarmup = "640MB"
)

// throwaway is a PostgreSQL cluster the bench started for one run, with fsync on, and
// the database the server uses in it.
type throwaway struct {
	srv  *pgtest.Server
	url  string // of the database the server uses
	desc string // version and durability settings, for the conditions
	// store is how the conditions name the store: "postgres (throwaway, fsync on)".
	store string
}

// startPostgres initialises and starts a throwaway cluster with fsync on (in a
// temporary directory, on a free port of 127.0.0.1) and creates the server's database
// in it. pgtest.Start cannot be interrupted: when ctx ends first, startPostgres waits
// (at most pgStartBound) for it to finish and removes the cluster before returning.
func startPostgres(ctx context.Context) (*throwaway, error) {
	type started struct {
		srv *pgtest.Server
		err error
	}
	done := make(chan started, 1)
	go func() {
		srv, err := pgtest.Start(pgtest.Options{Fsync: true, Settings: []string{"min_wal_size=" + walWarmup}})
		done <- started{srv, err}
	}()
	var srv *pgtest.Server
	select {
	case st := <-done:
		if st.err != nil {
			return nil, fmt.Errorf("-postgres %s: %w", postgresThrowaway, st.err)
		}
		srv = st.srv
	case <-ctx.Done():
		bound := time.NewTimer(pgStartBound)
		defer bound.Stop()
		select {
		case st := <-done:
			if st.srv != nil {
				_ = st.srv.Close()
			}
		case <-bound.C:
			// Left to its parent-death signal and pgtest's sweep of old directories.
		}
		return nil, fmt.Errorf("-postgres %s: interrupted while starting PostgreSQL: %w", postgresThrowaway, ctx.Err())
	}

	tw := &throwaway{srv: srv, url: srv.URL(throwawayDBName)}
	err := tw.setup(ctx)
	if err == nil {
		err = tw.warmWAL(ctx)
	}
	if err != nil {
		if cerr := srv.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, fmt.Errorf("-postgres %s: %w", postgresThrowaway, err)
	}
	return tw, nil
}

// setup creates the server's database and reads the settings the conditions report.
func (tw *throwaway) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pgSetupTimeout)
	defer cancel()
	if err := tw.srv.CreateDB(ctx, throwawayDBName); err != nil {
		return err
	}
	conn, err := pgconn.Connect(ctx, tw.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	res, err := conn.Exec(ctx, "SELECT current_setting('server_version'), current_setting('fsync'), "+
		"current_setting('synchronous_commit'), current_setting('full_page_writes')").ReadAll()
	if err != nil {
		return err
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 4 {
		return errors.New("reading the server's settings: unexpected answer")
	}
	row := res[0].Rows[0]
	version, fsync, syncCommit, fpw := string(row[0]), string(row[1]), string(row[2]), string(row[3])
	tw.store = fmt.Sprintf("postgres (%s, fsync %s)", postgresThrowaway, fsync)
	tw.desc = fmt.Sprintf("PostgreSQL %s on 127.0.0.1:%d, fsync %s, synchronous_commit %s, full_page_writes %s; "+
		"a throwaway cluster in %s, removed after the run; %s of WAL written and checkpointed before the run, kept for reuse (min_wal_size)",
		version, tw.srv.Port(), fsync, syncCommit, fpw, tw.srv.Dir(), walWarmup)
	return nil
}

// warmWAL makes the new cluster write its WAL as a cluster that has been running does.
// A new cluster has one WAL file: every 16 MB of WAL, a commit waits while the next file
// is created and filled with zeros, which shows as stalls of tens to hundreds of
// milliseconds in a run's tail latency. A running cluster reuses the files its
// checkpoints free (up to min_wal_size). So the warm-up writes walWarmup of WAL (a
// table made and dropped) and checkpoints: the run then writes into reused files.
func (tw *throwaway) warmWAL(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pgWarmupTimeout)
	defer cancel()
	conn, err := pgconn.Connect(ctx, tw.url)
	if err != nil {
		return fmt.Errorf("warming up the WAL: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `CREATE TABLE herald_bench_warmup AS
  SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, (pg_size_bytes('`+walWarmup+`') / 1100)::int) AS g;
DROP TABLE herald_bench_warmup;
CHECKPOINT;`).ReadAll()
	if err != nil {
		return fmt.Errorf("warming up the WAL: %w", err)
	}
	return nil
}

// close stops the cluster and removes its files (bounded by pgtest: a fast shutdown,
// then an immediate one).
func (tw *throwaway) close() error {
	if err := tw.srv.Close(); err != nil {
		return fmt.Errorf("removing the throwaway PostgreSQL: %w", err)
	}
	return nil
}
