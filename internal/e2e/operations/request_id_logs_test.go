package operations_test

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestTheCauseOfAFailureCarriesItsRequestID: a call that fails with DATABASE_UNAVAILABLE (or
// INTERNAL) answers with a generic message and says the cause is in the server log; the line that
// holds the cause must carry the call's request id, or the id the caller was given finds only the
// generic "call" line (docs/CONTRACT.md §14: the request id is in every log line of the call).
func TestTheCauseOfAFailureCarriesItsRequestID(t *testing.T) {
	e := testenv.New(t, testenv.Options{Configure: func(c *server.Config) { c.CallTimeout = 300 * time.Millisecond }})
	chat, _ := seedChat(t, e, "sk-request-id-cause")
	bg := context.Background()
	tx, err := e.Pool.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(bg) }()
	if _, err := tx.Exec(bg, `LOCK TABLE chats IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	const rid = "rid-cause-4f2a"
	ctx := metadata.AppendToOutgoingContext(e.AsWorker(), "x-request-id", rid)
	_, err = e.Resolver.ResolveModel(ctx, &resolverv1.ResolveModelRequest{ChatId: chat, Purpose: resolverv1.Purpose_PURPOSE_CHAT})
	testenv.WantReason(t, err, codes.Unavailable, "DATABASE_UNAVAILABLE")
	_ = tx.Rollback(bg)

	causes, calls := 0, 0
	sc := bufio.NewScanner(strings.NewReader(e.Logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch {
		case line["msg"] == "call" && line["method"] == resolverv1.ResolverService_ResolveModel_FullMethodName:
			calls++
			if line["request_id"] != rid {
				t.Errorf("the call's line has request_id %v, want %q: %s", line["request_id"], rid, sc.Text())
			}
		case line["msg"] == "request failed" || line["msg"] == "internal error":
			causes++
			if line["request_id"] != rid {
				t.Errorf("the line with the failure's cause has request_id %v, want %q: %s", line["request_id"], rid, sc.Text())
			}
		}
	}
	if calls == 0 || causes == 0 {
		t.Fatalf("%d call lines, %d cause lines: the checks above proved nothing\n%s", calls, causes, e.Logs.String())
	}
}
