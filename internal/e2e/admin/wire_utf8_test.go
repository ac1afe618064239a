package admin_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// wireCodec sends and receives raw bytes, so a test can send what no proto library would encode.
type wireCodec struct{}

func (wireCodec) Marshal(v any) ([]byte, error)   { return *(v.(*[]byte)), nil }
func (wireCodec) Unmarshal(b []byte, v any) error { *(v.(*[]byte)) = b; return nil }
func (wireCodec) Name() string                    { return "proto" }

// TestAdminE2EInvalidUTF8OnTheWire pins docs/CONTRACT.md §4.3: a string field that is not valid
// UTF-8 (as a JavaScript client writes a lone surrogate) fails in gRPC's own decoding, before any
// interceptor runs: INTERNAL without an ErrorInfo, token or none, and no row is written.
func TestAdminE2EInvalidUTF8OnTheWire(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendString(req, "openai")
	req = protowire.AppendTag(req, 2, protowire.BytesType)
	req = protowire.AppendString(req, "wire-utf8")
	req = protowire.AppendTag(req, 3, protowire.BytesType)
	req = protowire.AppendBytes(req, []byte{'A', 0xed, 0xa0, 0x80}) // CESU-8 of a lone U+D800
	for name, ctx := range map[string]context.Context{"admin": w.AsAdmin(), "no token": context.Background()} {
		var resp []byte
		err := w.Conn.Invoke(ctx, "/resolver.v1.AdminService/CreateProvider", &req, &resp, grpc.ForceCodec(wireCodec{}))
		st := status.Convert(err)
		if st.Code() != codes.Internal || testenv.ErrorInfo(st) != nil {
			t.Errorf("%s: %v, want INTERNAL without an ErrorInfo (docs/CONTRACT.md §4.3)", name, err)
		}
	}
	providers, err := w.Admin.ListProviders(w.AsAdmin(), &resolverv1.ListProvidersRequest{})
	if err != nil || len(providers.GetProviders()) != 0 {
		t.Fatalf("providers after the refused calls: %v, %v", providers.GetProviders(), err)
	}
}
