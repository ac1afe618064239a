package resolverclient_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/testenv"
	rc "github.com/resolverd/resolverd/pkg/resolverclient"
)

// reasons is docs/CONTRACT.md §4's table plus RATE_LIMITED, with each reason's sentinel.
var reasons = []struct {
	sentinel error
	reason   string
	code     codes.Code
}{
	{rc.ErrInvalidArgument, "INVALID_ARGUMENT", codes.InvalidArgument},
	{rc.ErrUnauthenticated, "UNAUTHENTICATED", codes.Unauthenticated},
	{rc.ErrMissingScope, "MISSING_SCOPE", codes.PermissionDenied},
	{rc.ErrChatNotFound, "CHAT_NOT_FOUND", codes.NotFound},
	{rc.ErrUserNotFound, "USER_NOT_FOUND", codes.NotFound},
	{rc.ErrModelConfigNotFound, "MODEL_CONFIG_NOT_FOUND", codes.NotFound},
	{rc.ErrNotFound, "NOT_FOUND", codes.NotFound},
	{rc.ErrModelConfigDisabled, "MODEL_CONFIG_DISABLED", codes.FailedPrecondition},
	{rc.ErrProviderNotFound, "PROVIDER_NOT_FOUND", codes.FailedPrecondition},
	{rc.ErrProviderDisabled, "PROVIDER_DISABLED", codes.FailedPrecondition},
	{rc.ErrNoUsableModelConfig, "NO_USABLE_MODEL_CONFIG", codes.FailedPrecondition},
	{rc.ErrUserKeyRequired, "USER_KEY_REQUIRED", codes.FailedPrecondition},
	{rc.ErrNoCredentials, "NO_CREDENTIALS", codes.FailedPrecondition},
	{rc.ErrAlreadyExists, "ALREADY_EXISTS", codes.AlreadyExists},
	{rc.ErrDatabaseUnavailable, "DATABASE_UNAVAILABLE", codes.Unavailable},
	{rc.ErrInternal, "INTERNAL", codes.Internal},
	{rc.ErrRateLimited, "RATE_LIMITED", codes.ResourceExhausted},
	{rc.ErrSecretUnreadable, "SECRET_UNREADABLE", codes.DataLoss},
	{rc.ErrProviderHostNotAllowed, "PROVIDER_HOST_NOT_ALLOWED", codes.FailedPrecondition},
	{rc.ErrUnknownIdentity, "UNKNOWN_IDENTITY", codes.Unauthenticated},
	{rc.ErrUserKeyInvalid, "USER_KEY_INVALID", codes.FailedPrecondition},
	{rc.ErrCredentialsCoolingDown, "CREDENTIALS_COOLING_DOWN", codes.ResourceExhausted},
}

func TestEveryReasonMapsToItsSentinel(t *testing.T) {
	if len(reasons) != len(rc.Sentinels()) {
		t.Fatalf("the table has %d reasons, the package %d sentinels", len(reasons), len(rc.Sentinels()))
	}
	for _, r := range reasons {
		t.Run(r.reason, func(t *testing.T) {
			var violations []*errdetails.BadRequest_FieldViolation
			if r.code == codes.InvalidArgument {
				violations = append(violations, &errdetails.BadRequest_FieldViolation{Field: "chat_id", Description: "not a UUID"})
			}
			var retry time.Duration
			if r.code == codes.ResourceExhausted {
				retry = 1500 * time.Millisecond
			}
			f := &fake{script: []error{domainStatus(r.code, r.reason, "scripted "+r.reason, map[string]string{"chat_id": "c1"}, retry, violations...)}}
			c := dial(t, serve(t, f), rc.WithRetry(1, time.Millisecond, time.Millisecond))
			_, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat)
			e := asError(t, err)
			if e.Code != r.code || e.Reason != r.reason || e.Message != "scripted "+r.reason || e.Metadata["chat_id"] != "c1" || e.Attempts != 1 {
				t.Fatalf("got %+v", e)
			}
			for _, other := range reasons {
				if got := errors.Is(err, other.sentinel); got != (other.reason == r.reason) {
					t.Errorf("errors.Is(%s, %v) = %v", r.reason, other.sentinel, got)
				}
			}
			if got := errors.Is(err, rc.ErrUnavailable); got != (r.code == codes.Unavailable) {
				t.Errorf("errors.Is(%s, ErrUnavailable) = %v", r.reason, got)
			}
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s matches a context error", r.reason)
			}
			if !strings.HasPrefix(err.Error(), r.reason+": scripted") || strings.Contains(err.Error(), "\n") {
				t.Errorf("Error() = %q", err.Error())
			}
			if r.code == codes.InvalidArgument && (len(e.FieldViolations) != 1 || e.FieldViolations[0] != (rc.FieldViolation{Field: "chat_id", Description: "not a UUID"})) {
				t.Errorf("field violations %+v", e.FieldViolations)
			}
			if r.code == codes.ResourceExhausted && (e.RetryAfter != retry || !e.Temporary() || !strings.Contains(err.Error(), "retry after 1.5s")) {
				t.Errorf("RetryAfter %v, Temporary %v, %q", e.RetryAfter, e.Temporary(), err)
			}
		})
	}
}

func TestStatusesNotFromResolverd(t *testing.T) {
	foreign, _ := status.New(codes.Unavailable, "the proxy has no backend").WithDetails(&errdetails.ErrorInfo{Domain: "envoy", Reason: "CHAT_NOT_FOUND"})
	f := &fake{script: []error{foreign.Err()}}
	c := dial(t, serve(t, f), rc.WithRetry(1, time.Millisecond, time.Millisecond))
	_, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat)
	e := asError(t, err)
	if e.Reason != "" || e.Code != codes.Unavailable || !errors.Is(err, rc.ErrUnavailable) || errors.Is(err, rc.ErrDatabaseUnavailable) || errors.Is(err, rc.ErrChatNotFound) {
		t.Fatalf("a foreign ErrorInfo: %+v", e)
	}
	if err.Error() != "Unavailable: the proxy has no backend" {
		t.Errorf("Error() = %q", err.Error())
	}

	// Nobody listens: the transport's UNAVAILABLE, retried, then returned.
	c = dial(t, testenv.FreeAddr(t), rc.WithRetry(3, time.Millisecond, 2*time.Millisecond))
	_, err = c.Resolve(context.Background(), "c1", "", rc.PurposeChat)
	e = asError(t, err)
	if !errors.Is(err, rc.ErrUnavailable) || e.Reason != "" || e.Attempts != 3 {
		t.Fatalf("no server: %+v", e)
	}
}

func TestRetriesOnlyUnavailable(t *testing.T) {
	unavailable := domainStatus(codes.Unavailable, "DATABASE_UNAVAILABLE", "the database is unavailable", nil, 0)
	t.Run("unavailable twice then success", func(t *testing.T) {
		f := &fake{name: "gpt", script: []error{unavailable, unavailable, nil}}
		c := dial(t, serve(t, f))
		res, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat)
		if err != nil || res.ModelConfig.Model != "gpt" {
			t.Fatalf("%v %+v", err, res)
		}
		if n := len(f.Calls()); n != 3 {
			t.Fatalf("%d attempts, want 3", n)
		}
	})
	for _, st := range []error{
		domainStatus(codes.FailedPrecondition, "USER_KEY_REQUIRED", "", nil, 0),
		domainStatus(codes.PermissionDenied, "MISSING_SCOPE", "", map[string]string{"scope": "ai_provider:read"}, 0),
		domainStatus(codes.ResourceExhausted, "RATE_LIMITED", "", nil, 10*time.Millisecond),
		domainStatus(codes.InvalidArgument, "INVALID_ARGUMENT", "", nil, 0),
		domainStatus(codes.NotFound, "CHAT_NOT_FOUND", "", nil, 0),
		domainStatus(codes.Internal, "INTERNAL", "", nil, 0),
		status.Error(codes.Unknown, "something else"),
	} {
		t.Run(status.Code(st).String(), func(t *testing.T) {
			f := &fake{script: []error{st, nil}}
			c := dial(t, serve(t, f))
			_, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat)
			if e := asError(t, err); e.Code != status.Code(st) || e.Attempts != 1 {
				t.Fatalf("%+v", e)
			}
			if n := len(f.Calls()); n != 1 {
				t.Fatalf("%d attempts, want exactly 1", n)
			}
		})
	}
	t.Run("max attempts", func(t *testing.T) {
		f := &fake{script: []error{unavailable}}
		c := dial(t, serve(t, f), rc.WithRetry(4, time.Millisecond, 2*time.Millisecond))
		_, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat)
		if e := asError(t, err); !errors.Is(err, rc.ErrDatabaseUnavailable) || e.Attempts != 4 || len(f.Calls()) != 4 {
			t.Fatalf("%+v, %d calls", e, len(f.Calls()))
		}
	})
	t.Run("backoff waits at least base", func(t *testing.T) {
		const base = 80 * time.Millisecond
		f := &fake{script: []error{unavailable, unavailable, nil}}
		c := dial(t, serve(t, f), rc.WithRetry(3, base, 4*base))
		if _, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat); err != nil {
			t.Fatal(err)
		}
		calls := f.Calls()
		for i := 1; i < len(calls); i++ {
			gap := calls[i].at.Sub(calls[i-1].at)
			if limit := base << (i - 1); gap < base || gap > limit+time.Second {
				t.Errorf("wait before attempt %d: %v, want in [%v, %v+slack]", i+1, gap, base, limit)
			}
		}
	})
	t.Run("RetryInfo's delay is honoured", func(t *testing.T) {
		const delay = 250 * time.Millisecond
		f := &fake{script: []error{domainStatus(codes.Unavailable, "DATABASE_UNAVAILABLE", "", nil, delay), nil}}
		c := dial(t, serve(t, f), rc.WithRetry(3, time.Millisecond, 2*time.Millisecond))
		if _, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat); err != nil {
			t.Fatal(err)
		}
		if calls := f.Calls(); len(calls) != 2 || calls[1].at.Sub(calls[0].at) < delay {
			t.Fatalf("%d calls, want 2 at least %v apart", len(calls), delay)
		}
	})
	t.Run("a delay past the deadline returns the error now", func(t *testing.T) {
		f := &fake{script: []error{domainStatus(codes.Unavailable, "DATABASE_UNAVAILABLE", "down", nil, time.Minute)}}
		c := dial(t, serve(t, f), rc.WithTimeout(2*time.Second))
		start := time.Now()
		_, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat)
		if !errors.Is(err, rc.ErrDatabaseUnavailable) || time.Since(start) > time.Second || len(f.Calls()) != 1 {
			t.Fatalf("%v after %v, %d calls", err, time.Since(start), len(f.Calls()))
		}
	})
	t.Run("cancelled during the backoff", func(t *testing.T) {
		f := &fake{script: []error{unavailable}}
		c := dial(t, serve(t, f), rc.WithRetry(5, 5*time.Second, 5*time.Second), rc.WithTimeout(0))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.Resolve(ctx, "c1", "", rc.PurposeChat)
		e := asError(t, err)
		if !errors.Is(err, context.Canceled) || e.Code != codes.Canceled || time.Since(start) > 2*time.Second || e.Attempts != 1 ||
			!strings.Contains(err.Error(), "DATABASE_UNAVAILABLE") {
			t.Fatalf("%v (%+v) after %v", err, e, time.Since(start))
		}
	})
}

func TestCancellationAndDeadlines(t *testing.T) {
	f := &fake{block: true}
	addr := serve(t, f)
	t.Run("cancel", func(t *testing.T) {
		c := dial(t, addr)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.Resolve(ctx, "c1", "", rc.PurposeChat)
		if !errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rc.ErrUnavailable) {
			t.Fatalf("%v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("returned %v after the cancel", d)
		}
		if e := asError(t, err); e.Code != codes.Canceled || e.Attempts != 1 {
			t.Fatalf("%+v", e)
		}
	})
	t.Run("default timeout", func(t *testing.T) {
		c := dial(t, addr, rc.WithTimeout(200*time.Millisecond))
		start := time.Now()
		_, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat)
		if !errors.Is(err, context.DeadlineExceeded) || asError(t, err).Code != codes.DeadlineExceeded {
			t.Fatalf("%v", err)
		}
		if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
			t.Fatalf("took %v with a 200ms default timeout", d)
		}
	})
	t.Run("the caller's deadline wins", func(t *testing.T) {
		c := dial(t, addr, rc.WithTimeout(time.Minute))
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := c.Resolve(ctx, "c1", "", rc.PurposeChat); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("%v after %v", err, time.Since(start))
		}
	})
}

func TestRequestAndToken(t *testing.T) {
	f := &fake{}
	addr := serve(t, f)
	c := dial(t, addr, rc.WithToken("  tok-123\n"))
	for _, p := range []rc.Purpose{rc.PurposeChat, rc.PurposeSubagent, rc.PurposePersonalOverride, rc.PurposeTitle, rc.PurposeCompaction} {
		if _, err := c.Resolve(context.Background(), "chat-1", "cfg-2", p); err != nil {
			t.Fatal(err)
		}
	}
	calls := f.Calls()
	for i, call := range calls {
		if got := call.md.Get("authorization"); len(got) != 1 || got[0] != "Bearer tok-123" {
			t.Errorf("authorization %q", got)
		}
		if call.req.GetChatId() != "chat-1" || call.req.GetModelConfigId() != "cfg-2" || int(call.req.GetPurpose()) != i+1 {
			t.Errorf("request %v", call.req)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, "tok-123") {
		t.Errorf("printing the client shows the token: %s", s)
	}
	if calls[3].req.GetPurpose().String() != "PURPOSE_TITLE" {
		t.Errorf("PurposeTitle went out as %v", calls[3].req.GetPurpose())
	}
	anon := dial(t, addr)
	if _, err := anon.Resolve(context.Background(), "chat-1", "", rc.PurposeChat); err != nil {
		t.Fatal(err)
	}
	if got := f.Calls()[len(calls)].md.Get("authorization"); len(got) != 0 {
		t.Errorf("a client without a token sent %q", got)
	}
}

func TestDialRefusals(t *testing.T) {
	for name, opts := range map[string][]rc.Option{
		"TLS and insecure":       {rc.WithInsecure(), rc.WithTLS(&tls.Config{})},
		"no attempts":            {rc.WithInsecure(), rc.WithRetry(0, time.Millisecond, time.Second)},
		"base above max":         {rc.WithInsecure(), rc.WithRetry(3, time.Second, time.Millisecond)},
		"negative timeout":       {rc.WithInsecure(), rc.WithTimeout(-time.Second)},
		"token with a space":     {rc.WithInsecure(), rc.WithToken("tok en-secret")},
		"token over plaintext":   {rc.WithToken("tok-secret"), rc.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials()))},
		"token with a line feed": {rc.WithInsecure(), rc.WithToken("tok\nen-secret")},
		"token not ASCII":        {rc.WithInsecure(), rc.WithToken("tökén-secret")},
		"empty token":            {rc.WithInsecure(), rc.WithToken(" \n")},
	} {
		c, err := rc.Dial("127.0.0.1:1", opts...)
		if err == nil {
			c.Close()
			t.Errorf("%s: Dial succeeded", name)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the token: %v", name, err)
		}
	}
	if _, err := rc.Dial(" "); err == nil {
		t.Error("an empty target was accepted")
	}
}

func TestResolutionNeverPrintsTheKey(t *testing.T) {
	c := dial(t, serve(t, &fake{name: "gpt"}))
	res, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat)
	if err != nil {
		t.Fatal(err)
	}
	want := rc.Resolution{
		ModelConfig: rc.ModelConfig{ID: "cfg-1", ProviderID: "prov-1", Model: "gpt", DisplayName: "Fake", Enabled: true, ContextLimit: 1000, CompressionThreshold: 50},
		Provider:    rc.Provider{ID: "prov-1", Type: "openai", Name: "openai", Enabled: true, BYOKPolicy: rc.BYOKOptional},
		Credential:  rc.Credential{Source: rc.CredentialSourceCentral, KeyID: "key-1", Fingerprint: "00112233aabbccdd"},
		Decision:    rc.Decision{RequestedModelConfigID: "cfg-0", Fallback: true, FallbackReason: "MODEL_CONFIG_DISABLED"},
	}
	got := *res
	if got.Credential.APIKey.Reveal() != fakeSecret || got.ModelConfig.Options["temperature"] != 0.5 {
		t.Fatalf("key or options lost: %v", got.ModelConfig.Options)
	}
	got.Credential.APIKey, got.ModelConfig.Options = want.Credential.APIKey, nil
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&out, verb+"\n", res)
		fmt.Fprintf(&out, verb+"\n", *res)
		fmt.Fprintf(&out, verb+"\n", res.Credential)
	}
	j, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	// Enums by name, not number, in JSON (and so in slog's JSON handler).
	if !strings.Contains(string(j), `"Source":"central"`) || !strings.Contains(string(j), `"BYOKPolicy":"optional"`) {
		t.Errorf("JSON shows the enums as numbers: %s", j)
	}
	out.Write(j)
	slog.New(slog.NewTextHandler(&out, nil)).Info("resolved", "resolution", res, "credential", res.Credential)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("resolved", "resolution", res)
	if strings.Contains(out.String(), fakeSecret) || strings.Contains(out.String(), fmt.Sprintf("%x", fakeSecret)) {
		t.Fatalf("the key was printed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "[REDACTED]") {
		t.Fatalf("no redaction shown:\n%s", out.String())
	}
}

func TestRoundRobin(t *testing.T) {
	a, b := &fake{name: "a"}, &fake{name: "b"}
	r := manual.NewBuilderWithScheme("resolverclient-test")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: serve(t, a)}, {Addr: serve(t, b)}}})
	c := dial(t, r.Scheme()+":///resolverd", rc.WithDialOptions(grpc.WithResolvers(r)))
	ctx := context.Background()
	// Until both connections are ready, round_robin sends every call to the ready one.
	for i := 0; len(a.Calls()) == 0 || len(b.Calls()) == 0; i++ {
		if i == 500 {
			t.Fatalf("after 500 calls: %d to a, %d to b", len(a.Calls()), len(b.Calls()))
		}
		if _, err := c.Resolve(ctx, "c1", "", rc.PurposeChat); err != nil {
			t.Fatal(err)
		}
	}
	na, nb := len(a.Calls()), len(b.Calls())
	for range 20 {
		if _, err := c.Resolve(ctx, "c1", "", rc.PurposeChat); err != nil {
			t.Fatal(err)
		}
	}
	if da, db := len(a.Calls())-na, len(b.Calls())-nb; da < 8 || db < 8 {
		t.Fatalf("20 calls over two ready backends: %d to a, %d to b", da, db)
	}
}

func TestPurposes(t *testing.T) {
	for in, want := range map[string]rc.Purpose{
		"chat": rc.PurposeChat, "SUBAGENT": rc.PurposeSubagent, "personal_override": rc.PurposePersonalOverride,
		"personal-override": rc.PurposePersonalOverride, "PURPOSE_TITLE": rc.PurposeTitle, " Compaction ": rc.PurposeCompaction,
		"purpose_chat": rc.PurposeChat,
	} {
		if got, err := rc.ParsePurpose(in); err != nil || got != want {
			t.Errorf("ParsePurpose(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "unspecified", "PURPOSE_UNSPECIFIED", "chats"} {
		if _, err := rc.ParsePurpose(bad); err == nil {
			t.Errorf("ParsePurpose(%q) accepted", bad)
		}
	}
	if rc.PurposePersonalOverride.String() != "personal_override" || rc.Purpose(0).String() != "Purpose(0)" {
		t.Error("Purpose.String")
	}
	if rc.CredentialSourceAmbient.String() != "ambient" || rc.CredentialSourceUser.String() != "user" || rc.CredentialSourceCentral.String() != "central" {
		t.Error("CredentialSource.String")
	}
}

// TestDeadlineDuringARetryKeepsTheOutage: when the caller's time runs out during a retry, the error
// is DEADLINE_EXCEEDED and still matches the outage that was being retried, so a worker's
// errors.Is(err, ErrDatabaseUnavailable) does not miss a database outage that outlasted its deadline.
func TestDeadlineDuringARetryKeepsTheOutage(t *testing.T) {
	f := &fake{script: []error{domainStatus(codes.Unavailable, "DATABASE_UNAVAILABLE", "down", nil, 0), errHang}}
	c := dial(t, serve(t, f), rc.WithTimeout(500*time.Millisecond), rc.WithRetry(4, 10*time.Millisecond, 20*time.Millisecond))
	_, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat)
	e := asError(t, err)
	if e.Code != codes.DeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) || e.Attempts != 2 {
		t.Fatalf("%v (%+v), want DEADLINE_EXCEEDED on the second attempt", err, e)
	}
	if !errors.Is(err, rc.ErrDatabaseUnavailable) || !errors.Is(err, rc.ErrUnavailable) || e.Previous == nil || e.Previous.Reason != "DATABASE_UNAVAILABLE" {
		t.Fatalf("%v: the outage being retried is lost", err)
	}
}

// TestOnlyTheCallersContextMatchesContextErrors: a CANCELED or DEADLINE_EXCEEDED that did not come
// from the caller's own context (a closed client, a server or proxy status) does not match
// context.Canceled / context.DeadlineExceeded, so workers that ignore those on shutdown do not
// drop real failures.
func TestOnlyTheCallersContextMatchesContextErrors(t *testing.T) {
	f := &fake{script: []error{status.Error(codes.DeadlineExceeded, "a proxy's timeout"), nil}}
	c := dial(t, serve(t, f))
	_, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat)
	if asError(t, err).Code != codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a server-sent DEADLINE_EXCEEDED: %v, matches context.DeadlineExceeded %v", err, errors.Is(err, context.DeadlineExceeded))
	}
	closed := dial(t, serve(t, &fake{}))
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = closed.Resolve(context.Background(), "c1", "", rc.PurposeChat)
	if err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("a call on a closed client: %v, matches context.Canceled %v", err, errors.Is(err, context.Canceled))
	}
}

// TestTemporaryMeansWorthRetrying: RATE_LIMITED and UNAVAILABLE are temporary; a RESOURCE_EXHAUSTED
// from gRPC itself (a message over the size limit) would fail the same way again.
func TestTemporaryMeansWorthRetrying(t *testing.T) {
	f := &fake{script: []error{status.Error(codes.ResourceExhausted, "grpc: received message larger than max"), nil}}
	c := dial(t, serve(t, f))
	_, err := c.Resolve(context.Background(), "c1", "", rc.PurposeChat)
	if e := asError(t, err); e.Code != codes.ResourceExhausted || e.Temporary() {
		t.Fatalf("%v: Temporary %v, want false", err, e.Temporary())
	}
}
