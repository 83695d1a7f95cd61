package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestMain(m *testing.M) { Main(m) }

func query(t *testing.T, url, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(context.Background())
	res, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		return ""
	}
	return string(res[0].Rows[0][0])
}

func TestSharedDatabases(t *testing.T) {
	srv := Shared(t)
	if Shared(t) != srv {
		t.Fatal("Shared returned two servers")
	}
	a, b := srv.NewDatabase(t), srv.NewDatabase(t)
	if a == b {
		t.Fatalf("NewDatabase returned %s twice", a)
	}
	for _, u := range []string{a, b} {
		got := query(t, u, "SELECT current_database()")
		if !strings.Contains(u, "/"+got+"?") && !strings.HasSuffix(u, "/"+got) {
			t.Errorf("connected to %s through %s", got, u)
		}
	}
	if srv.External() {
		return
	}
	if v := query(t, a, "SHOW fsync"); v != "off" {
		t.Errorf("fsync = %s, want off for tests", v)
	}
	if v := query(t, a, "SHOW server_encoding"); v != "UTF8" {
		t.Errorf("server_encoding = %s", v)
	}
}

func TestOwnStopStart(t *testing.T) {
	srv := OwnWith(t, Options{Fsync: true})
	u := srv.NewDatabase(t)
	query(t, u, "CREATE TABLE x AS SELECT 42 AS v")
	if v := query(t, u, "SHOW fsync"); v != "on" {
		t.Errorf("fsync = %s, want on", v)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if conn, err := pgconn.Connect(ctx, u); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if v := query(t, u, "SELECT v FROM x"); v != "42" {
		t.Errorf("after restart v = %s", v)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err == nil {
		t.Fatal("started a closed server")
	}
}

func TestDBName(t *testing.T) {
	n := dbName("TestSomething/with spaces/and-a-very-long-name-that-goes-on-and-on-and-on")
	if len(n) > 63 || strings.ContainsAny(n, " /-") || !strings.HasPrefix(n, "t_testsomething_with_spaces") {
		t.Errorf("dbName = %q", n)
	}
}
