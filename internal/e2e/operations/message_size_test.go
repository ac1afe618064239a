package operations_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestOversizedMessagesAreRefused: a request beyond server.MaxMessageBytes never reaches a handler.
func TestOversizedMessagesAreRefused(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	_, err := e.Admin.AddProviderKey(e.AsAdmin(), &resolverv1.AddProviderKeyRequest{
		ProviderId: "10000000-0000-4000-8000-000000000001", ApiKey: strings.Repeat("k", server.MaxMessageBytes+1)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a %d-byte request: %v, want ResourceExhausted", server.MaxMessageBytes+1, err)
	}
	if strings.Contains(e.Logs.String(), strings.Repeat("k", 64)) {
		t.Fatal("the oversized key reached the log")
	}
}
