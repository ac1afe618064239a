package admin_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/identity"
	"github.com/resolverd/resolverd/internal/identity/identitytest"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// The subject of a Kubernetes service-account token, and the audience resolverd is configured with.
const (
	idWorker   = "system:serviceaccount:chat:chat-worker"
	idAudience = "resolverd"
)

// idIssuer is a JWT issuer on loopback with an RS256, an ES256 and an EdDSA key.
func idIssuer(t *testing.T) *identitytest.Issuer {
	t.Helper()
	iss, err := identitytest.NewIssuer("RS256", "ES256", "EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	return iss
}

// idJWT turns JWTs of iss on (serve --jwt-issuer ISS --jwt-audience resolverd, keys by discovery).
func idJWT(iss *identitytest.Issuer) func(*server.Config) {
	return func(c *server.Config) {
		c.JWT = &identity.JWTOptions{Issuer: iss.URL, Audience: idAudience, RetryMax: 100 * time.Millisecond}
	}
}

// idFixture is a chat that resolves (a provider with a central key, a default config, an owner).
func idFixture(w *testenv.World) string {
	w.T.Helper()
	p := w.Provider("openai", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	w.CentralKey(p.GetId(), "sk-identity-central")
	c := w.Config(p.GetId(), "gpt-4o", true)
	return w.Chat(w.User("alice").GetId(), c.GetId()).GetId()
}

// idBind binds subject to scopes through AdminService, as the admin.
func idBind(t *testing.T, e *testenv.Env, subject string, scopes ...rbac.Scope) {
	t.Helper()
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	if _, err := e.Admin.PutWorkloadIdentity(e.AsAdmin(), &resolverv1.PutWorkloadIdentityRequest{Subject: subject, Scopes: names}); err != nil {
		t.Fatalf("bind %s: %v", subject, err)
	}
}

func idResolve(e *testenv.Env, bearer, chat string) (*resolverv1.ResolveModelResponse, error) {
	return e.Resolver.ResolveModel(e.As(bearer), &resolverv1.ResolveModelRequest{ChatId: chat, Purpose: resolverv1.Purpose_PURPOSE_CHAT})
}

// TestJWTIdentityResolves: a JWT signed by any key of the issuer's JWK Set (RS256, ES256, EdDSA)
// for a bound subject resolves with the binding's scopes, and the audit trail names the subject;
// an admin change made as a workload identity is recorded with it too.
func TestJWTIdentityResolves(t *testing.T) {
	iss := idIssuer(t)
	w := testenv.NewWorld(t, testenv.Options{Configure: idJWT(iss)})
	chat := idFixture(w)
	idBind(t, w.Env, idWorker, rbac.WorkerScopes...)
	for _, k := range iss.Keys() {
		t.Run(k.Alg, func(t *testing.T) {
			res, err := idResolve(w.Env, k.Sign(iss.Claims(idWorker, idAudience, time.Hour)), chat)
			if err != nil {
				t.Fatal(err)
			}
			if res.GetCredential().GetApiKey() != "sk-identity-central" {
				t.Fatalf("resolved %v", res.GetCredential())
			}
		})
	}
	testenv.Within(t, 5*time.Second, "the awaited state", func() error {
		ev, err := w.Admin.ListAuditEvents(w.AsAdmin(), &resolverv1.ListAuditEventsRequest{Action: "ResolveModel", ChatId: chat})
		if err != nil {
			return err
		}
		if len(ev.GetEvents()) != 3 {
			return fmt.Errorf("%d resolutions recorded, want 3", len(ev.GetEvents()))
		}
		for _, e := range ev.GetEvents() {
			if e.GetSubject() != idWorker || e.GetTokenId() != "" || e.GetOutcome() != "OK" {
				return fmt.Errorf("recorded %v, want the subject and no token", e)
			}
		}
		return nil
	})

	// A workload identity that administers identities: its change is recorded under its subject.
	// It may remove a binding, but not make one: a binding never expires and its JWT does, and
	// through a second identity it controls it would keep its scopes past its own expiry.
	const operator = "system:serviceaccount:ops:identity-admin"
	idBind(t, w.Env, operator, rbac.TokenWrite, rbac.ChatRead)
	idBind(t, w.Env, "cn:reader", rbac.ChatRead)
	ctx := w.As(iss.Token(operator, idAudience, time.Hour))
	_, err := w.Admin.PutWorkloadIdentity(ctx, &resolverv1.PutWorkloadIdentityRequest{Subject: "system:serviceaccount:ops:spare", Scopes: []string{"chat:read"}})
	testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "cannot outlive") {
		t.Errorf("message %q, want it to say why", msg)
	}
	if _, err := w.Admin.DeleteWorkloadIdentity(ctx, &resolverv1.DeleteWorkloadIdentityRequest{Subject: "cn:reader"}); err != nil {
		t.Fatal(err)
	}
	ev, err := w.Admin.ListAuditEvents(w.AsAdmin(), &resolverv1.ListAuditEventsRequest{Action: "DeleteWorkloadIdentity"})
	if err != nil || len(ev.GetEvents()) == 0 {
		t.Fatalf("%v %v", ev, err)
	}
	if last := ev.GetEvents()[0]; last.GetSubject() != operator || last.GetTokenId() != "" || last.GetDetails()["subject"] != "cn:reader" {
		t.Errorf("the identity's change was recorded as %v", last)
	}
	// It cannot mint a bearer token that outlives its JWT.
	_, err = w.Admin.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: "forever", Scopes: []string{"chat:read"}})
	testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
}

// TestJWTIdentityRefusals: the wrong audience, a token expired beyond the leeway, a signature by a
// key outside the JWK Set and an HMAC "signature" are UNAUTHENTICATED; an unbound subject is
// UNKNOWN_IDENTITY naming it; a key rotated in at the issuer is picked up by the first token it
// signs.
func TestJWTIdentityRefusals(t *testing.T) {
	iss := idIssuer(t)
	w := testenv.NewWorld(t, testenv.Options{Configure: idJWT(iss)})
	chat := idFixture(w)
	idBind(t, w.Env, idWorker, rbac.WorkerScopes...)
	key := iss.Keys()[0]
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := iss.Claims(idWorker, idAudience, time.Hour)
		edit(c)
		return c
	}
	forged, err := identitytest.NewKey("RS256", key.KID) // the kid of a real key, another private key
	if err != nil {
		t.Fatal(err)
	}
	hmac := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(func(jwt.MapClaims) {}))
	hmac.Header["kid"] = key.KID
	hs256, err := hmac.SignedString([]byte("anything"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token, message string
	}{
		{"wrong audience", key.Sign(claims(func(c jwt.MapClaims) { c["aud"] = "another-service" })), `the JWT's aud does not name "resolverd"`},
		{"expired beyond the leeway", key.Sign(claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), "the JWT has expired"},
		{"bad signature", forged.Sign(claims(func(jwt.MapClaims) {})), "signature is invalid"},
		{"HS256", hs256, "signature is invalid, or its alg is not one of RS256, ES256, EdDSA"},
		{"wrong issuer", key.Sign(claims(func(c jwt.MapClaims) { c["iss"] = "https://issuer.invalid" })), "the JWT's iss is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := idResolve(w.Env, tc.token, chat)
			testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.message) {
				t.Errorf("message %q, want it to say %q", msg, tc.message)
			}
		})
	}
	t.Run("unbound subject", func(t *testing.T) {
		_, err := idResolve(w.Env, key.Sign(claims(func(c jwt.MapClaims) { c["sub"] = "system:serviceaccount:chat:stranger" })), chat)
		info := testenv.WantReason(t, err, codes.Unauthenticated, "UNKNOWN_IDENTITY")
		if info.GetMetadata()["subject"] != "system:serviceaccount:chat:stranger" {
			t.Errorf("metadata %v, want the subject", info.GetMetadata())
		}
	})
	t.Run("key rotated in", func(t *testing.T) {
		next, err := identitytest.NewKey("ES256", "key-rotated-in")
		if err != nil {
			t.Fatal(err)
		}
		iss.SetKeys(next) // the old keys are gone from the set; the new one is not loaded yet
		if _, err := idResolve(w.Env, next.Sign(claims(func(jwt.MapClaims) {})), chat); err != nil {
			t.Fatalf("a token of the rotated-in key: %v", err)
		}
	})
}

// TestJWTIdentityDeletedOnAnotherReplica: two replicas on one database; a binding deleted through
// one is refused by the other within a second, though that one verified (and remembers) the token.
func TestJWTIdentityDeletedOnAnotherReplica(t *testing.T) {
	iss := idIssuer(t)
	url := pgtest.NewDatabase(t)
	a := testenv.NewWorld(t, testenv.Options{DatabaseURL: url, Configure: idJWT(iss)})
	b := testenv.New(t, testenv.Options{DatabaseURL: url, Configure: idJWT(iss)})
	chat := idFixture(a)
	idBind(t, a.Env, idWorker, rbac.WorkerScopes...)
	token := iss.Token(idWorker, idAudience, time.Hour)
	for range 3 { // warm: the token verified, the binding cached
		if _, err := idResolve(b, token, chat); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Admin.DeleteWorkloadIdentity(a.AsAdmin(), &resolverv1.DeleteWorkloadIdentityRequest{Subject: idWorker}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	for {
		_, err := idResolve(b, token, chat)
		if err != nil {
			testenv.WantReason(t, err, codes.Unauthenticated, "UNKNOWN_IDENTITY")
			break
		}
		if time.Since(deleted) > time.Second {
			t.Fatal("the other replica still served the deleted binding after 1s (docs/CONTRACT.md §5.1)")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Bound again (with fewer scopes), it is honoured again, as the binding now says.
	idBind(t, a.Env, idWorker, rbac.ChatRead)
	testenv.Within(t, time.Second, "the awaited state", func() error {
		_, err := idResolve(b, token, chat)
		if status.Code(err) != codes.PermissionDenied {
			return fmt.Errorf("after binding again without model_config:read: %v", err)
		}
		return nil
	})
}

// TestJWTIdentityKeysUnavailableAtStart: with the issuer down, the server starts; JWT calls are
// UNAVAILABLE (a status without a resolverd reason) while rsv_ tokens work; once the issuer is up,
// the keys load in the background and JWT calls resolve.
func TestJWTIdentityKeysUnavailableAtStart(t *testing.T) {
	iss := idIssuer(t)
	iss.SetDown(true)
	w := testenv.NewWorld(t, testenv.Options{Configure: idJWT(iss)})
	chat := idFixture(w)
	idBind(t, w.Env, idWorker, rbac.WorkerScopes...)
	token := iss.Token(idWorker, idAudience, time.Hour)
	_, err := idResolve(w.Env, token, chat)
	if st := status.Convert(err); st.Code() != codes.Unavailable || testenv.ErrorInfo(st) != nil {
		t.Fatalf("a JWT while the issuer is down: %v, want UNAVAILABLE without a reason", err)
	}
	if _, err := idResolve(w.Env, w.WorkerToken, chat); err != nil {
		t.Fatalf("an rsv_ token while the issuer is down: %v", err)
	}
	iss.SetDown(false)
	testenv.Within(t, 5*time.Second, "the awaited state", func() error {
		_, err := idResolve(w.Env, token, chat)
		return err
	})
}
