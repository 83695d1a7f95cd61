package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/actors/dispatch/deliver"
)

var testSecret = []byte("a test secret of at least 32 bytes!")

func newSender(t *testing.T, o Options) *Sender {
	t.Helper()
	if o.Secret == nil {
		o.Secret = testSecret
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// asError returns err as a *deliver.Error of this channel, failing the test when it is
// not one.
func asError(t *testing.T, err error) *deliver.Error {
	t.Helper()
	var e *deliver.Error
	if !errors.As(err, &e) || e.Channel != "webhook" || !strings.HasPrefix(err.Error(), "webhook: ") {
		t.Fatalf("error %v (%T) is not a *deliver.Error of channel webhook", err, err)
	}
	return e
}

// request is what the test server received.
type request struct {
	method string
	header http.Header
	body   []byte
}

func TestSendSigned(t *testing.T) {
	got := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- request{r.Method, r.Header.Clone(), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	s := newSender(t, Options{UserAgent: "herald-test/1"})
	body := []byte(`{"id":"n1","type":"project.updated","payload":{"message":"Zoë was here"}}`)
	before := time.Now()
	if err := s.Send(context.Background(), srv.URL+"/hooks/herald?token=t0ken", "msg_n1", body); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.method != http.MethodPost || string(r.body) != string(body) {
		t.Errorf("got %s %q, want POST %q", r.method, r.body, body)
	}
	for name, want := range map[string]string{
		"Content-Type": "application/json",
		"User-Agent":   "herald-test/1",
		HeaderID:       "msg_n1",
	} {
		if v := r.header.Get(name); v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	if err := Verify(testSecret, r.header, r.body, time.Now(), time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
	ts, err := strconv.ParseInt(r.header.Get(HeaderTimestamp), 10, 64)
	if err != nil || ts < before.Unix() || ts > time.Now().Unix() {
		t.Errorf("%s = %q, want the time of sending", HeaderTimestamp, r.header.Get(HeaderTimestamp))
	}
	if want := Sign(testSecret, "msg_n1", time.Unix(ts, 0), body); r.header.Get(HeaderSignature) != want {
		t.Errorf("%s = %q, want %q", HeaderSignature, r.header.Get(HeaderSignature), want)
	}
	if err := Verify([]byte("another secret of at least 32 bytes"), r.header, r.body, time.Now(), time.Minute); !errors.Is(err, ErrSignature) {
		t.Errorf("Verify with another secret: %v", err)
	}
}

// statusServer answers /<code> with that status, a Retry-After when the query has
// retry=..., and a body naming the status.
func statusServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			http.Error(w, "bad path", http.StatusTeapot)
			return
		}
		if ra := r.URL.Query().Get("retry"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.WriteHeader(code)
		io.WriteString(w, "the body of "+strconv.Itoa(code))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSendStatus(t *testing.T) {
	srv := statusServer(t)
	s := newSender(t, Options{})
	for _, tc := range []struct {
		code      int
		ok        bool
		permanent bool
	}{
		{200, true, false}, {201, true, false}, {202, true, false}, {204, true, false},
		{500, false, false}, {502, false, false}, {503, false, false}, {504, false, false},
		{408, false, false}, {425, false, false}, {429, false, false},
		{400, false, true}, {401, false, true}, {403, false, true}, {404, false, true},
		{405, false, true}, {410, false, true}, {413, false, true}, {422, false, true},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			err := s.Send(context.Background(), srv.URL+"/"+strconv.Itoa(tc.code)+"?token=t0ken", "msg_1", []byte(`{}`))
			if tc.ok {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			e := asError(t, err)
			if e.Permanent != tc.permanent || e.Code != tc.code || e.RetryAfter != 0 {
				t.Errorf("Permanent, Status, RetryAfter = %v, %d, %v; want %v, %d, 0", e.Permanent, e.Code, e.RetryAfter, tc.permanent, tc.code)
			}
			msg := err.Error()
			if !strings.Contains(msg, "HTTP "+strconv.Itoa(tc.code)) || !strings.Contains(msg, `"the body of `+strconv.Itoa(tc.code)+`"`) {
				t.Errorf("error %q does not name the status and quote the body", msg)
			}
			if strings.Contains(msg, "t0ken") {
				t.Errorf("error %q shows the URL's query", msg)
			}
		})
	}
}

func TestSendRetryAfter(t *testing.T) {
	srv := statusServer(t)
	s := newSender(t, Options{})

	err := s.Send(context.Background(), srv.URL+"/429?retry=7", "msg_1", []byte(`{}`))
	if e := asError(t, err); e.Permanent || e.Code != 429 || e.RetryAfter != 7*time.Second {
		t.Errorf("429 with Retry-After 7: %+v", e)
	}

	date := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
	err = s.Send(context.Background(), srv.URL+"/503?retry="+strings.ReplaceAll(date, " ", "+"), "msg_1", []byte(`{}`))
	// The date has whole seconds: between 58s and 60s are left by now.
	if e := asError(t, err); e.Permanent || e.Code != 503 || e.RetryAfter < 58*time.Second || e.RetryAfter > time.Minute {
		t.Errorf("503 with Retry-After %s: %+v", date, e)
	}

	err = s.Send(context.Background(), srv.URL+"/429?retry=soon", "msg_1", []byte(`{}`))
	if e := asError(t, err); e.Permanent || e.RetryAfter != 0 {
		t.Errorf("429 with an unreadable Retry-After: %+v", e)
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/new", http.StatusFound)
	})
	mux.HandleFunc("/old-permanently", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/new", http.StatusPermanentRedirect)
	})
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name   string
		client *http.Client
		path   string
		code   int
	}{
		{"302, default client", nil, "/old", 302},
		{"308, default client", nil, "/old-permanently", 308},
		// A client of the caller's that follows redirects is not allowed to here.
		{"302, redirect-following client", &http.Client{}, "/old", 302},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSender(t, Options{Client: tc.client})
			err := s.Send(context.Background(), srv.URL+tc.path, "msg_1", []byte(`{}`))
			e := asError(t, err)
			if !e.Permanent || e.Code != tc.code || !strings.Contains(err.Error(), `redirect to "/new" not followed`) {
				t.Errorf("got %v (Permanent %v, Status %d), want a permanent %d naming /new", err, e.Permanent, e.Code, tc.code)
			}
		})
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

// hangingServer answers nothing until the request is cancelled or the test ends.
// arrived gets a value for each request (when nobody is waiting, it is dropped).
func hangingServer(t *testing.T) (srv *httptest.Server, arrived <-chan struct{}) {
	release := make(chan struct{})
	arr := make(chan struct{}, 1)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arr <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: srv.Close waits for the handlers
	return srv, arr
}

func TestSendTimeout(t *testing.T) {
	srv, _ := hangingServer(t)
	const timeout = 150 * time.Millisecond
	for _, tc := range []struct {
		name   string
		client *http.Client
	}{
		{"default client", nil},
		{"client without a timeout", &http.Client{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSender(t, Options{Timeout: timeout, Client: tc.client})
			start := time.Now()
			err := s.Send(context.Background(), srv.URL, "msg_1", []byte(`{}`))
			elapsed := time.Since(start)
			e := asError(t, err)
			if e.Permanent || e.Code != 0 || !errors.Is(err, deliver.ErrTimeout) {
				t.Errorf("got %v (Permanent %v, Status %d), want a retryable timeout", err, e.Permanent, e.Code)
			}
			if elapsed < timeout || elapsed > timeout+5*time.Second {
				t.Errorf("Send took %v with a Timeout of %v", elapsed, timeout)
			}
		})
	}
}

func TestSendCancelled(t *testing.T) {
	srv, arrived := hangingServer(t)
	s := newSender(t, Options{Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-arrived
		cancel()
	}()
	err := s.Send(ctx, srv.URL, "msg_1", []byte(`{}`))
	if e := asError(t, err); e.Permanent || !errors.Is(err, context.Canceled) || errors.Is(err, deliver.ErrTimeout) {
		t.Errorf("got %v, want a retryable context.Canceled", err)
	}
	// Already cancelled: nothing is sent.
	err = s.Send(ctx, srv.URL, "msg_1", []byte(`{}`))
	if e := asError(t, err); e.Permanent || !errors.Is(err, context.Canceled) {
		t.Errorf("with a cancelled context: %v", err)
	}
}

func TestSendConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nobody listens there any more
	s := newSender(t, Options{})
	err := s.Send(context.Background(), url+"/x?token=t0ken", "msg_1", []byte(`{}`))
	e := asError(t, err)
	if e.Permanent || e.Code != 0 || errors.Is(err, deliver.ErrTimeout) {
		t.Errorf("got %v, want a retryable connection error", err)
	}
	if strings.Contains(err.Error(), "t0ken") {
		t.Errorf("error %q shows the URL's query", err)
	}
}

func TestSendBoundsTheResponse(t *testing.T) {
	big := strings.Repeat("é", 1<<20) // 2 MiB
	var (
		mu      sync.Mutex
		written []int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.WriteHeader(code)
		n, _ := io.WriteString(w, big)
		mu.Lock()
		written = append(written, n)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s := newSender(t, Options{Timeout: 30 * time.Second})

	if err := s.Send(context.Background(), srv.URL+"?code=200", "msg_1", []byte(`{}`)); err != nil {
		t.Errorf("2xx with a large body: %v", err)
	}
	err := s.Send(context.Background(), srv.URL+"?code=500", "msg_1", []byte(`{}`))
	e := asError(t, err)
	if e.Permanent || e.Code != 500 {
		t.Errorf("500 with a large body: %v", err)
	}
	// The error quotes the start of the body, cut at a character.
	if !strings.HasSuffix(err.Error(), `é"…`) || len(err.Error()) > 400 {
		t.Errorf("error %q does not quote a short start of the body", err)
	}
}

func TestSendRefusesBadInput(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	s := newSender(t, Options{})
	for _, tc := range []struct {
		name, url, id, want string
	}{
		{"no scheme", "example.com/hook", "msg_1", "scheme"},
		{"ftp", "ftp://example.com/hook", "msg_1", "scheme"},
		{"no host", "http:///hook", "msg_1", "no host"},
		{"unparsable", "http://exa mple.com/%zz", "msg_1", "does not parse"},
		{"empty id", srv.URL, "", "msgID is empty"},
		{"id with CRLF", srv.URL, "msg\r\nX-Evil: 1", "visible ASCII"},
		{"id with space", srv.URL, "msg 1", "visible ASCII"},
		{"id too long", srv.URL, strings.Repeat("m", 257), "at most 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Send(context.Background(), tc.url, tc.id, []byte(`{}`))
			if e := asError(t, err); !e.Permanent || e.Code != 0 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want a permanent error containing %q", err, tc.want)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the server got %d requests, want none", n)
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no secret", Options{}, "Secret is empty"},
		{"negative timeout", Options{Secret: testSecret, Timeout: -1}, "Timeout"},
		{"user agent with CRLF", Options{Secret: testSecret, UserAgent: "a\r\nb: c"}, "UserAgent"},
	} {
		if _, err := New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	// The caller's client is left as it was.
	c := &http.Client{}
	newSender(t, Options{Client: c})
	if c.CheckRedirect != nil {
		t.Error("New changed the caller's http.Client")
	}
}
