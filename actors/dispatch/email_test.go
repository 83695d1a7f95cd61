package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/dispatch"
	"github.com/heraldhq/herald/actors/dispatch/deliver"
	"github.com/heraldhq/herald/actors/dispatch/email"
	"github.com/heraldhq/herald/internal/mailtest"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/embedded"
	"github.com/heraldhq/herald/persistence/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// sink is a real SMTP server on loopback that records each message's recipients by
// its Message-ID.
type sink struct {
	mu  sync.Mutex
	rcp map[string][]string // Message-ID → RCPT TO addresses
}

func startSink(t *testing.T) (*sink, string) {
	t.Helper()
	sk := &sink{rcp: map[string][]string{}}
	return sk, mailtest.Serve(t, sk)
}

func (sk *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sk: sk}, nil }

// all returns every recipient of every message received.
func (sk *sink) all() map[string][]string {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	out := make(map[string][]string, len(sk.rcp))
	for id, to := range sk.rcp {
		out[id] = append([]string(nil), to...)
	}
	return out
}

type sinkSession struct {
	sk *sink
	to []string
}

func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	s.sk.mu.Lock()
	defer s.sk.mu.Unlock()
	id := m.Header.Get("Message-ID")
	s.sk.rcp[id] = append(s.sk.rcp[id], s.to...)
	return nil
}
func (s *sinkSession) Reset()        { s.to = nil }
func (s *sinkSession) Logout() error { return nil }

// TestEmailAddressOnlyFromServices: through a real store and a real SMTP server, the
// payload's "email" is the recipient only of a delivery whose row says a service
// created its notification; any other delivery goes to the receiver's contact, and
// with no contact it is a permanent failure that sends nothing, never a mail to the
// payload's address.
func TestEmailAddressOnlyFromServices(t *testing.T) {
	opens := map[string]func(t *testing.T) persistence.Store{
		"embedded": func(t *testing.T) persistence.Store {
			s, err := embedded.Open(t.TempDir(), embedded.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"postgres": func(t *testing.T) persistence.Store {
			s, err := postgres.OpenAndMigrate(context.Background(), pgtest.Shared(t).NewDatabase(t), postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			store := opens[name](t)
			sk, addr := startSink(t)
			sender, err := email.New(email.Options{Addr: addr, From: "Herald <herald@example.com>", StartTLS: email.StartTLSNever, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if res, err := store.Apply(ctx, persistence.Now(), []persistence.Op{{Kind: persistence.OpSetContact, UserID: "dora", Contact: persistence.Contact{Email: "dora@contact.example"}}}); err != nil || res[0].Err != nil {
				t.Fatal(err, res)
			}
			mk := func(receiver, to string, byService bool) herald.NewNotification {
				p, _ := json.Marshal(map[string]string{"email": to, "subject": "hello"})
				n := herald.NewNotification{ReceiverID: receiver, Type: "t", Payload: p, Channels: []herald.Channel{herald.ChannelEmail}}
				if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
					t.Fatal(err)
				}
				// A row that says no service created it: what every row from before the
				// flag reads as (Validate gives no user caller the email channel).
				n.ByService = byService
				return n
			}
			items := []herald.NewNotification{
				mk("dora", "chosen@example.com", true),
				mk("dora", "attacker@evil.example", false),
				mk("nobody", "attacker@evil.example", false),
			}
			if _, err := store.Apply(ctx, persistence.Now(), []persistence.Op{{Kind: persistence.OpCreate, Creates: items}}); err != nil {
				t.Fatal(err)
			}
			ds, err := store.ClaimDeliveries(ctx, persistence.Now(), time.Minute, 10)
			if err != nil || len(ds) != 3 {
				t.Fatalf("claimed %d deliveries (%v), want 3", len(ds), err)
			}
			e := dispatch.Email{Sender: sender, Contacts: store}
			want := map[string]string{} // Message-ID prefix (the delivery id) → recipient
			for _, d := range ds {
				err := e.Send(ctx, d)
				var to string
				_ = json.Unmarshal(d.Notification.Payload, &struct{ Email *string }{&to})
				switch {
				case d.ByService:
					if err != nil {
						t.Fatalf("a service's delivery: %v", err)
					}
					want[d.ID] = to // the payload's address
				case d.UserID == "dora":
					if err != nil {
						t.Fatalf("a delivery to a contact: %v", err)
					}
					want[d.ID] = "dora@contact.example"
				default:
					var p *deliver.Error
					if err == nil || !errors.As(err, &p) || !p.Permanent || !strings.Contains(err.Error(), "no email address") {
						t.Fatalf("a delivery with no contact: %v, want a permanent failure", err)
					}
				}
			}
			got := sk.all()
			if len(got) != 2 || len(want) != 2 {
				t.Fatalf("the SMTP server received %v, want two messages as %v", got, want)
			}
			for id, to := range got {
				d := strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
				if i := strings.IndexByte(d, '@'); i >= 0 {
					d = d[:i]
				}
				if len(to) != 1 || want[d] != to[0] {
					t.Fatalf("message %s went to %v, want %q (all: %v)", id, to, want[d], got)
				}
				if to[0] == "attacker@evil.example" {
					t.Fatalf("a mail went to the payload's address of a delivery no service created: %v", got)
				}
			}
		})
	}
}
