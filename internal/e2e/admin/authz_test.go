package admin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/internal/transport"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// azMethod is one RPC registered on the server under test.
type azMethod struct {
	full    string // "/pkg.Service/Method", the name interceptors and MethodScopes use
	service string
	desc    protoreflect.MethodDescriptor
}

// azMethods lists every method of every service registered on the server, sorted by name.
func azMethods(t *testing.T, e *testenv.Env) []azMethod {
	t.Helper()
	var out []azMethod
	for svc, info := range e.Server.GRPC.GetServiceInfo() {
		for _, m := range info.Methods {
			name := protoreflect.FullName(svc + "." + m.Name)
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
			if err != nil {
				t.Fatalf("descriptor of %s: %v", name, err)
			}
			md, ok := d.(protoreflect.MethodDescriptor)
			if !ok {
				t.Fatalf("%s is a %T, not a method", name, d)
			}
			out = append(out, azMethod{full: "/" + svc + "/" + m.Name, service: svc, desc: md})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].full < out[j].full })
	if len(out) == 0 {
		t.Fatal("the server registers no methods")
	}
	return out
}

// azCall calls m with an empty request of its input type and returns the error (nil on success).
func azCall(ctx context.Context, e *testenv.Env, m azMethod) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := dynamicpb.NewMessage(m.desc.Input())
	reply := dynamicpb.NewMessage(m.desc.Output())
	if !m.desc.IsStreamingClient() && !m.desc.IsStreamingServer() {
		return e.Conn.Invoke(ctx, m.full, req, reply)
	}
	desc := &grpc.StreamDesc{StreamName: string(m.desc.Name()),
		ClientStreams: m.desc.IsStreamingClient(), ServerStreams: m.desc.IsStreamingServer()}
	s, err := e.Conn.NewStream(ctx, desc, m.full)
	if err != nil {
		return err
	}
	if err := s.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	return s.RecvMsg(reply)
}

// azAs returns a context whose outgoing metadata carries exactly these authorization values.
func azAs(values ...string) context.Context {
	md := metadata.MD{}
	for _, v := range values {
		md.Append("authorization", v)
	}
	return metadata.NewOutgoingContext(context.Background(), md)
}

// azTokens mints (once) a token per set of scopes through AdminService.
type azTokens struct {
	e     *testenv.Env
	cache map[string]string
}

func (z *azTokens) get(t *testing.T, scopes ...rbac.Scope) string {
	t.Helper()
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	slices.Sort(names)
	key := strings.Join(names, ",")
	if tok, ok := z.cache[key]; ok {
		return tok
	}
	tok := z.e.Token(t, fmt.Sprintf("az-%d", len(z.cache)), scopes...)
	z.cache[key] = tok
	return tok
}

// azAllBut is every named scope except `*` and the one given.
func azAllBut(s rbac.Scope) []rbac.Scope {
	var out []rbac.Scope
	for _, k := range rbac.Known {
		if k != s && k != rbac.All {
			out = append(out, k)
		}
	}
	return out
}

// azStatus returns the status of err, failing the test if err is nil or not a status.
func azStatus(t *testing.T, err error) *status.Status {
	t.Helper()
	if err == nil {
		return status.New(codes.OK, "")
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a gRPC status: %v", err)
	}
	return st
}

// TestAuthzMethodCoverage is the method-coverage suite (Coder's dbauthz idea): every RPC the server registers
// has a scope rule, cannot be called without a token, cannot be called without its scopes (nor with
// every other scope), and can be called with exactly its scopes or with `*`.
func TestAuthzMethodCoverage(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	methods := azMethods(t, e)
	tokens := &azTokens{e: e, cache: map[string]string{}}
	noScopes := e.Token(t, "az-none")

	registered := map[string]bool{}
	for _, m := range methods {
		registered[m.full] = true
	}

	t.Run("no stale rules", func(t *testing.T) {
		for name := range transport.MethodScopes {
			if !registered[name] {
				t.Errorf("MethodScopes has a rule for %s, which the server does not register", name)
			}
		}
	})

	t.Run("rules are docs/CONTRACT.md §3", func(t *testing.T) {
		for name, want := range azSpecScopes {
			got := slices.Clone(transport.MethodScopes[name])
			slices.Sort(got)
			want = slices.Clone(want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("MethodScopes[%s] = %v, docs/CONTRACT.md §3 needs %v", name, got, want)
			}
		}
		for name := range transport.MethodScopes {
			if _, ok := azSpecScopes[name]; !ok {
				t.Errorf("MethodScopes has %s, which docs/CONTRACT.md §3 does not name", name)
			}
		}
	})

	t.Run("public services are exactly health and reflection", func(t *testing.T) {
		services := map[string]bool{}
		for _, m := range methods {
			services[m.service] = true
		}
		for svc := range transport.PublicServices {
			if svc != "grpc.health.v1.Health" && !strings.HasPrefix(svc, "grpc.reflection.") {
				t.Errorf("PublicServices lists %s; docs/CONTRACT.md §3 allows only health and reflection without a token", svc)
			}
		}
		for _, want := range []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "resolver.v1.ResolverService", "resolver.v1.AdminService"} {
			if !services[want] {
				t.Errorf("the server does not register %s", want)
			}
		}
	})

	authenticated := 0
	for _, m := range methods {
		if transport.PublicServices[m.service] {
			continue
		}
		authenticated++
		t.Run(strings.TrimPrefix(m.full, "/"), func(t *testing.T) {
			t.Run("no token", func(t *testing.T) {
				testenv.WantReason(t, azCall(context.Background(), e, m), codes.Unauthenticated, "UNAUTHENTICATED")
			})

			rule, ok := transport.MethodScopes[m.full]
			if !ok {
				t.Fatalf("%s has no entry in transport.MethodScopes", m.full)
			}
			if len(rule) == 0 {
				t.Fatalf("%s has an empty scope rule: any authenticated caller could call it", m.full)
			}

			t.Run("token without scopes", func(t *testing.T) {
				info := testenv.WantReason(t, azCall(e.As(noScopes), e, m), codes.PermissionDenied, "MISSING_SCOPE")
				if got := info.GetMetadata()["scope"]; got != string(rule[0]) {
					t.Errorf("metadata[scope] = %q, want %q", got, rule[0])
				}
			})

			t.Run("every scope of the rule is needed", func(t *testing.T) {
				for _, s := range rule {
					// Every other scope, so that no unrelated scope may stand in for s.
					err := azCall(e.As(tokens.get(t, azAllBut(s)...)), e, m)
					info := testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
					if got := info.GetMetadata()["scope"]; got != string(s) {
						t.Errorf("without %s: metadata[scope] = %q, want %q", s, got, s)
					}
				}
			})

			t.Run("exactly the rule's scopes", func(t *testing.T) {
				err := azCall(e.As(tokens.get(t, rule...)), e, m)
				if m.full == resolverv1.ResolverService_ResolveModel_FullMethodName {
					testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
					return
				}
				st := azStatus(t, err)
				if st.Code() == codes.Unauthenticated {
					t.Fatalf("with the rule's scopes %v: %s %s", rule, st.Code(), st.Message())
				}
				if info := testenv.ErrorInfo(st); info.GetReason() == "MISSING_SCOPE" && slices.Contains(rule, rbac.Scope(info.GetMetadata()["scope"])) {
					t.Fatalf("with the rule's scopes %v: MISSING_SCOPE %s", rule, info.GetMetadata()["scope"])
				}
			})

			t.Run("star token", func(t *testing.T) {
				st := azStatus(t, azCall(e.AsAdmin(), e, m))
				if st.Code() == codes.Unauthenticated || st.Code() == codes.PermissionDenied {
					t.Fatalf("with `*`: %s %s", st.Code(), st.Message())
				}
			})

			t.Run("implemented", func(t *testing.T) {
				if st := azStatus(t, azCall(e.AsAdmin(), e, m)); st.Code() == codes.Unimplemented {
					t.Fatalf("%s is registered and has a scope rule but its handler is not implemented: %s", m.full, st.Message())
				}
			})
		})
	}
	if authenticated != len(azSpecScopes) {
		t.Errorf("%d authenticated methods registered, docs/CONTRACT.md §3 names %d", authenticated, len(azSpecScopes))
	}
	for name := range azSpecScopes {
		if !registered[name] {
			t.Errorf("docs/CONTRACT.md §3 names %s, which the server does not register", name)
		}
	}
}

// azSpecScopes is docs/CONTRACT.md §3, written from the contract and not from auth.go: ResolveModel needs
// chat:read, model_config:read and ai_provider:read on every call (the key scopes only on some
// paths); each AdminService method the matching :write scope, Get* and List* the :read scope; users
// and tokens are read with user:write and token:write (there is no user:read or token:read) and the
// audit trail with audit:read.
var azSpecScopes = map[string][]rbac.Scope{
	"/resolver.v1.ResolverService/ResolveModel": {rbac.ChatRead, rbac.ModelConfigRead, rbac.AIProviderRead},
	// A worker's report on a key writes that key's health and reads nothing (docs/CONTRACT.md §17).
	"/resolver.v1.ResolverService/ReportCredentialOutcome": {rbac.CredentialReport},

	"/resolver.v1.AdminService/CreateProvider": {rbac.AIProviderWrite},
	"/resolver.v1.AdminService/UpdateProvider": {rbac.AIProviderWrite},
	"/resolver.v1.AdminService/DeleteProvider": {rbac.AIProviderWrite},
	"/resolver.v1.AdminService/GetProvider":    {rbac.AIProviderRead},
	"/resolver.v1.AdminService/ListProviders":  {rbac.AIProviderRead},

	"/resolver.v1.AdminService/AddProviderKey":        {rbac.AIProviderKeyWrite},
	"/resolver.v1.AdminService/RotateProviderKey":     {rbac.AIProviderKeyWrite},
	"/resolver.v1.AdminService/SetProviderKeyEnabled": {rbac.AIProviderKeyWrite},
	"/resolver.v1.AdminService/DeleteProviderKey":     {rbac.AIProviderKeyWrite},
	"/resolver.v1.AdminService/ListProviderKeys":      {rbac.AIProviderKeyRead},

	"/resolver.v1.AdminService/CreateModelConfig": {rbac.ModelConfigWrite},
	"/resolver.v1.AdminService/UpdateModelConfig": {rbac.ModelConfigWrite},
	"/resolver.v1.AdminService/DeleteModelConfig": {rbac.ModelConfigWrite},
	"/resolver.v1.AdminService/GetModelConfig":    {rbac.ModelConfigRead},
	"/resolver.v1.AdminService/ListModelConfigs":  {rbac.ModelConfigRead},

	"/resolver.v1.AdminService/PutUser":               {rbac.UserWrite},
	"/resolver.v1.AdminService/DeleteUser":            {rbac.UserWrite},
	"/resolver.v1.AdminService/GetUser":               {rbac.UserWrite}, // there is no user:read
	"/resolver.v1.AdminService/PutUserProviderKey":    {rbac.UserAIProviderKeyWrite},
	"/resolver.v1.AdminService/DeleteUserProviderKey": {rbac.UserAIProviderKeyWrite},
	"/resolver.v1.AdminService/ListUserProviderKeys":  {rbac.UserAIProviderKeyRead},
	"/resolver.v1.AdminService/PutChat":               {rbac.ChatWrite},
	"/resolver.v1.AdminService/GetChat":               {rbac.ChatRead},

	"/resolver.v1.AdminService/CreateToken": {rbac.TokenWrite},
	"/resolver.v1.AdminService/RevokeToken": {rbac.TokenWrite},
	"/resolver.v1.AdminService/GetToken":    {rbac.TokenWrite},
	"/resolver.v1.AdminService/ListTokens":  {rbac.TokenWrite},

	"/resolver.v1.AdminService/PutWorkloadIdentity":    {rbac.TokenWrite},
	"/resolver.v1.AdminService/DeleteWorkloadIdentity": {rbac.TokenWrite},
	"/resolver.v1.AdminService/ListWorkloadIdentities": {rbac.TokenWrite},

	"/resolver.v1.AdminService/ListAuditEvents": {rbac.AuditRead},
}
