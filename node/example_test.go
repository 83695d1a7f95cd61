package node_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"

	"github.com/heraldhq/herald/node"
)

// A Go application runs Herald in its own process and emits domain events without
// HTTP; the notifications are stored, and delivered to the receivers' open sockets by
// the node's handler, exactly as if they had come through POST /events.
func ExampleNode_Emit() {
	dir, err := os.MkdirTemp("", "herald-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	n, err := node.Open(ctx, node.Options{
		DataDir:   dir,
		JWTSecret: []byte("example-secret-0123456789abcdef0123"),
		Rules: []byte(`rules:
  - name: application
    match: project.role.application.created
    notify:
      - receiver: projectOwnerId
        type: project.role.application.created
        payload: {message: '{{.data.applicantName}} applied for {{.data.roleName}} in {{.data.projectTitle}}'}
      - receiver: applicantId
        type: project.role.application.sent
        payload: {message: 'Your application to {{.data.projectTitle}} was sent'}
`),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close(ctx)
	// http.Handle("/", n.Handler()) serves the REST API and the WebSocket.

	res, err := n.Emit(ctx, node.Event{
		Name: "project.role.application.created",
		Data: map[string]any{"projectOwnerId": "olivia", "applicantId": "ada",
			"applicantName": "Ada", "roleName": "Backend", "projectTitle": "Atlas"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, nt := range res.Notifications {
		fmt.Printf("%s #%d: %s\n", nt.ReceiverID, nt.Seq, nt.Payload)
	}
	// Output:
	// olivia #1: {"message":"Ada applied for Backend in Atlas"}
	// ada #1: {"message":"Your application to Atlas was sent"}
}
