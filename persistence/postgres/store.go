package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// DefaultMaxConns is the pool size when Options.MaxConns is 0.
const DefaultMaxConns = 16

// Options tunes a Store. The zero value means the defaults.
type Options struct {
	// Retention is how long the event log is kept for catching up; 0 means
	// persistence.DefaultRetention. Events resets a cursor whose next entry is older.
	Retention time.Duration
	// MaxConns caps the connection pool; 0 means DefaultMaxConns.
	MaxConns int32
}

// Store is a persistence.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool      *pgxpool.Pool
	retention time.Duration
	// copyMin is the number of new notifications from which a batch inserts them by
	// COPY rather than by an INSERT in its pipeline: COPY writes rows faster but costs
	// extra round trips.
	copyMin int
	// known is the users whose state rows are committed: a batch inserts only the
	// others' before it locks them all.
	known knownUsers
}

// defaultCopyMin is Store.copyMin: below it, COPY's faster rows do not pay for its extra
// round trip (BenchmarkCreatePath compares the two; the README has the figures), and a
// network between Herald and PostgreSQL only makes that round trip dearer, so small
// batches keep the single pipeline.
const defaultCopyMin = 100

var _ persistence.Store = (*Store)(nil)

// Open returns a store on the database at url (a PostgreSQL URL or key=value string).
// It does not migrate, nor connect (connections are made on use, or in the background
// for the URL's pool_min_conns); Migrate (or OpenAndMigrate) brings the schema up to
// date.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "herald"
	}
	cfg.AfterConnect = registerArrays
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, retention: opts.Retention, copyMin: defaultCopyMin}
	if s.retention <= 0 {
		s.retention = persistence.DefaultRetention
	}
	return s, nil
}

// parseURL parses a store's URL. The pool's parameters of pgxpool (pool_min_conns,
// pool_max_conn_lifetime, pool_health_check_period, …) are taken, but for
// pool_max_conns: the pool's size is Options.MaxConns (HERALD_DB_MAX_CONNS), which a
// cluster checks against max_connections, and a second setting would be ignored.
func parseURL(url string) (*pgxpool.Config, error) {
	// pgx leaves the parameters it does not know as the server's settings. Checked
	// first, so that a malformed value too is refused for what it is.
	if plain, err := pgx.ParseConfig(url); err == nil {
		if _, ok := plain.RuntimeParams["pool_max_conns"]; ok {
			return nil, errors.New("postgres: the URL sets pool_max_conns: the pool's size is HERALD_DB_MAX_CONNS (Options.MaxConns); remove the parameter")
		}
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err) // pgx masks the password
	}
	return cfg, nil
}

// OpenAndMigrate migrates the database at url and opens a store on it.
func OpenAndMigrate(ctx context.Context, url string, opts Options) (*Store, error) {
	if err := Migrate(ctx, url); err != nil {
		return nil, err
	}
	return Open(ctx, url, opts)
}

// Ping reports whether the database can be reached.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return herald.Unavailable(err)
	}
	return nil
}

// ConnLimits are the server's connection limits, as a node checks that the pools of
// every node fit them.
type ConnLimits struct {
	Max      int // max_connections
	Reserved int // superuser_reserved_connections (and reserved_connections): not for Herald
	InUse    int // connections open now, every client's
	Pool     int // this store's pool size
}

// Available is how many connections ordinary clients may open in all.
func (l ConnLimits) Available() int { return l.Max - l.Reserved }

// ConnLimits reads the server's connection limits and how many connections are open.
func (s *Store) ConnLimits(ctx context.Context) (ConnLimits, error) {
	l := ConnLimits{Pool: int(s.pool.Config().MaxConns)}
	err := s.pool.QueryRow(ctx, `SELECT current_setting('max_connections')::int,
    current_setting('superuser_reserved_connections')::int
      + coalesce(current_setting('reserved_connections', true), '0')::int,
    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int`).Scan(&l.Max, &l.Reserved, &l.InUse)
	if err != nil {
		return l, herald.Unavailable(err)
	}
	return l, nil
}

// Close closes every connection; it waits for connections in use to be released.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}
