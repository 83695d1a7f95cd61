package node_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/node"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestOpenClose: a node serves, stores and stops without leaving a goroutine behind;
// its rules reload from the file, and a broken file keeps the rules in force.
func TestOpenClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	write := func(s string) {
		if err := os.WriteFile(rules, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("rules: []\n")
	ctx := context.Background()
	n, err := node.Open(ctx, node.Options{DataDir: t.TempDir(), JWTSecret: []byte("node-test-secret-0123456789abcdef"),
		APIKeys: []string{"k"}, RulesFile: rules, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler())
	nt, err := n.Notify(ctx, herald.NewNotification{ReceiverID: "ada", Type: "t"})
	if err != nil || nt.Seq != 1 || nt.SenderID != herald.DefaultSenderID {
		t.Fatalf("notify: %+v %v", nt, err)
	}
	if _, err := n.Notify(ctx, herald.NewNotification{Type: "t"}); herald.ErrorCode(err) != herald.CodeValidation {
		t.Fatalf("notify without a receiver: %v", err)
	}
	if res, err := n.Emit(ctx, node.Event{Name: "project.created"}); err != nil || len(res.Notifications) != 0 {
		t.Fatalf("emit with no rules: %+v %v", res, err)
	}
	write("rules:\n  - name: r\n    match: project.created\n    notify: [{receiver: ownerId, type: project.created}]\n")
	if err := n.Reload(); err != nil || n.RuleCount() != 1 {
		t.Fatalf("reload: %v, %d rules", err, n.RuleCount())
	}
	write("rules:\n  - name: r\n    match: project.created\n    notify: [{receiver: ownerId, typo: x}]\n")
	if err := n.Reload(); err == nil || n.RuleCount() != 1 {
		t.Fatalf("reload of a broken file: %v, %d rules", err, n.RuleCount())
	}
	if res, err := n.Emit(ctx, node.Event{Name: "project.created", Data: map[string]any{"ownerId": "ada"}}); err != nil || len(res.Notifications) != 1 || res.Notifications[0].Seq != 2 {
		t.Fatalf("emit: %+v %v", res, err)
	}
	srv.Close()
	if err := n.CloseSockets(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOptionErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	bad := filepath.Join(t.TempDir(), "rules.yaml")
	_ = os.WriteFile(bad, []byte("rules:\n  - name: r\n    match: x\n    notify: [{receiver: a, type: t, payload: {m: '{{'}}]\n"), 0o600)
	for _, tc := range []struct {
		option string
		o      node.Options
	}{
		{"RulesFile", node.Options{JWTSecret: []byte("node-test-secret-0123456789abcdef"), RulesFile: bad}},
		{"JWTSecret", node.Options{JWTSecret: []byte("short")}},
		{"WebhookSecret", node.Options{JWTSecret: []byte("node-test-secret-0123456789abcdef"), WebhookURLs: []string{"http://127.0.0.1:1/"}, WebhookSecret: "x"}},
	} {
		tc.o.DataDir, tc.o.Log = t.TempDir(), quiet()
		_, err := node.Open(context.Background(), tc.o)
		var oe *node.OptionError
		if !errors.As(err, &oe) || oe.Option != tc.option {
			t.Errorf("%s: got %v", tc.option, err)
		}
	}
}
