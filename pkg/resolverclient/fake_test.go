package resolverclient_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/resolverd/resolverd/pkg/resolverclient"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// fakeSecret is the API key the fake server answers with.
const fakeSecret = "sk-fake-secret-0123456789"

// fake is a ResolverService that answers from a script: the i-th call gets script[i] (the last
// entry repeats; nil means success), or blocks until the call ends when block is set.
// errHang in a fake's script makes that call wait for the caller to give up.
var errHang = errors.New("hang")

type fake struct {
	resolverv1.UnimplementedResolverServiceServer
	name   string
	block  bool
	script []error

	mu    sync.Mutex
	calls []fakeCall
}

type fakeCall struct {
	at  time.Time
	md  metadata.MD
	req *resolverv1.ResolveModelRequest
}

func (f *fake) ResolveModel(ctx context.Context, req *resolverv1.ResolveModelRequest) (*resolverv1.ResolveModelResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, fakeCall{at: time.Now(), md: md, req: req})
	f.mu.Unlock()
	if f.block {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if len(f.script) > 0 {
		if err := f.script[min(n, len(f.script)-1)]; err == errHang {
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		} else if err != nil {
			return nil, err
		}
	}
	return fakeAnswer(f.name), nil
}

func (f *fake) Calls() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

func fakeAnswer(model string) *resolverv1.ResolveModelResponse {
	opts, _ := structpb.NewStruct(map[string]any{"temperature": 0.5})
	return &resolverv1.ResolveModelResponse{
		ModelConfig: &resolverv1.ModelConfig{Id: "cfg-1", AiProviderId: "prov-1", Model: model, DisplayName: "Fake", Enabled: true,
			ContextLimit: 1000, CompressionThreshold: 50, Options: opts},
		Provider:   &resolverv1.Provider{Id: "prov-1", Type: "openai", Name: "openai", Enabled: true, ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL},
		Credential: &resolverv1.Credential{Source: resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL, KeyId: "key-1", ApiKey: fakeSecret, Fingerprint: "00112233aabbccdd"},
		Decision:   &resolverv1.Decision{RequestedModelConfigId: "cfg-0", Fallback: true, FallbackReason: "MODEL_CONFIG_DISABLED"},
	}
}

// serve starts f on a loopback port and returns its address; it stops when t ends.
func serve(t *testing.T, f *fake) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	resolverv1.RegisterResolverServiceServer(srv, f)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

// dial returns a plaintext client for addr, closed when t ends.
func dial(t *testing.T, addr string, opts ...resolverclient.Option) *resolverclient.Client {
	t.Helper()
	c, err := resolverclient.Dial(addr, append([]resolverclient.Option{resolverclient.WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// domainStatus builds a status as internal/transport.ToStatus does: the code, an ErrorInfo of domain
// resolver.v1, and optionally BadRequest violations and a RetryInfo.
func domainStatus(code codes.Code, reason, msg string, md map[string]string, retry time.Duration, violations ...*errdetails.BadRequest_FieldViolation) error {
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Domain: "resolver.v1", Reason: reason, Metadata: md}}
	if len(violations) > 0 {
		details = append(details, &errdetails.BadRequest{FieldViolations: violations})
	}
	if retry > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
	}
	st, err := status.New(code, msg).WithDetails(details...)
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func asError(t *testing.T, err error) *resolverclient.Error {
	t.Helper()
	var e *resolverclient.Error
	if err == nil {
		t.Fatal("want an error, got success")
	}
	if !errors.As(err, &e) {
		t.Fatalf("want a *resolverclient.Error, got %T: %v", err, err)
	}
	return e
}
