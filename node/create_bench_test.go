package node_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/node"
)

// BenchmarkCreateRequest is the path most host applications take: one POST
// /notifications per notification, many in flight (64 goroutines on any GOMAXPROCS),
// through the node's real handler (API-key auth, decoding, validation, the persistence
// actor, the store's commit) on both stores (PostgreSQL: a throwaway cluster, fsync on).
// Its allocs/op and B/op are those of one create, every layer included; ns/op is wall
// time per create at that concurrency.
func BenchmarkCreateRequest(b *testing.B) {
	stores := []struct {
		name string
		opts func(b *testing.B) node.Options
	}{
		{"embedded", func(b *testing.B) node.Options { return node.Options{DataDir: b.TempDir()} }},
		{"postgres", func(b *testing.B) node.Options {
			return node.Options{DatabaseURL: pgtest.OwnWith(b, pgtest.Options{Fsync: true}).NewDatabase(b)}
		}},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			o := st.opts(b)
			o.JWTSecret, o.APIKeys, o.Log = []byte(httpSecret), []string{"bench-key"}, quiet()
			o.ServiceRate = math.Inf(1)
			ctx := context.Background()
			n, err := node.Open(ctx, o)
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close(ctx)
			h := n.Handler()
			var seq atomic.Int64
			bodies := make([]string, 1000)
			for i := range bodies {
				bodies[i] = fmt.Sprintf(`{"receiverId":"user-%d","senderId":"svc","type":"project.role.application.created",`+
					`"payload":{"message":"Ada applied for Backend in Atlas","project":"atlas"}}`, i)
			}
			target, _ := url.Parse("/notifications")
			header := http.Header{"Authorization": {"Bearer bench-key"}, "Content-Type": {"application/json"}}
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// The request is built by hand and the answer discarded, so that what is
				// counted is the node's: a client's parsing and a recorder's buffer are not.
				var rw answer
				for pb.Next() {
					body := bodies[seq.Add(1)%int64(len(bodies))]
					req := (&http.Request{
						Method: http.MethodPost, URL: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
						Header: header, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
						Host: "127.0.0.1", RemoteAddr: "127.0.0.1:40000", RequestURI: "/notifications",
					}).WithContext(ctx)
					rw.reset()
					h.ServeHTTP(&rw, req)
					if rw.code != http.StatusCreated {
						b.Fatalf("POST /notifications: %d %s", rw.code, rw.body)
					}
				}
			})
		})
	}
}

// answer is a ResponseWriter that keeps the status and the start of the body.
type answer struct {
	header http.Header
	code   int
	body   []byte
}

func (a *answer) reset() {
	if a.header == nil {
		a.header = http.Header{}
	}
	clear(a.header)
	a.code, a.body = 0, a.body[:0]
}

func (a *answer) Header() http.Header { return a.header }

func (a *answer) WriteHeader(code int) {
	if a.code == 0 {
		a.code = code
	}
}

func (a *answer) Write(p []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	if len(a.body) < 512 {
		a.body = append(a.body, p[:min(len(p), 512-len(a.body))]...)
	}
	return len(p), nil
}
