package admin_test

import (
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

var adFingerprintRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// TestAdminE2ESecrets: secrets are write-only (no AdminService response carries one), fingerprints
// are 16 lowercase hex characters and a function of the secret alone, and what is stored is sealed
// (docs/CONTRACT.md §3 and §7).
func TestAdminE2ESecrets(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()

	// Every secret seeded through the API, by what it is.
	const (
		shared   = "sk-SEEDED-shared-0123456789abcdef"
		central1 = "sk-SEEDED-central-one-aaaaaaaaaaaa"
		rotated  = "sk-SEEDED-rotated-bbbbbbbbbbbbbbbb"
		user1    = "sk-SEEDED-user-one-cccccccccccccc"
		padded   = "sk-SEEDED-padded-dddddddddddddddd"
	)
	secrets := []string{shared, central1, rotated, user1, padded}

	// Every response of every AdminService method, by method name.
	responses := map[string][]proto.Message{}
	record := func(method string, m proto.Message, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", method, err)
			adNoLeak(t, err, secrets...)
			return
		}
		responses[method] = append(responses[method], m)
	}
	var fingerprints []struct{ what, secret, fp string }
	fp := func(what, secret, got string) {
		fingerprints = append(fingerprints, struct{ what, secret, fp string }{what, secret, got})
	}

	p1, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: "sec-one", ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL})
	record("CreateProvider", p1, err)
	p2, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "anthropic", Name: "sec-two", ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL})
	record("CreateProvider", p2, err)
	if t.Failed() {
		t.FailNow()
	}
	u1, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: uuid.NewString(), Username: "sec-alice"})
	record("PutUser", u1, err)
	u2, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: uuid.NewString(), Username: "sec-bob"})
	record("PutUser", u2, err)

	k1, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p1.Id, ApiKey: shared})
	record("AddProviderKey", k1, err)
	fp("central shared @p1", shared, k1.GetFingerprint())
	k2, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p2.Id, ApiKey: shared})
	record("AddProviderKey", k2, err)
	fp("central shared @p2", shared, k2.GetFingerprint())
	k3, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p1.Id, ApiKey: central1, Enabled: proto.Bool(false)})
	record("AddProviderKey", k3, err)
	fp("central one @p1", central1, k3.GetFingerprint())
	k4, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p2.Id, ApiKey: "  " + padded + "\t"})
	record("AddProviderKey", k4, err)
	fp("central padded @p2", padded, k4.GetFingerprint())
	k5, err := a.RotateProviderKey(ctx, &resolverv1.RotateProviderKeyRequest{ProviderId: p2.Id, ApiKey: rotated})
	record("RotateProviderKey", k5, err)
	fp("central rotated @p2", rotated, k5.GetFingerprint())
	sk, err := a.SetProviderKeyEnabled(ctx, &resolverv1.SetProviderKeyEnabledRequest{Id: k3.Id, Enabled: proto.Bool(true)})
	record("SetProviderKeyEnabled", sk, err)
	fp("central one @p1 (toggled)", central1, sk.GetFingerprint())

	uk1, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: u1.Id, AiProviderId: p1.Id, ApiKey: shared})
	record("PutUserProviderKey", uk1, err)
	fp("user shared alice@p1", shared, uk1.GetFingerprint())
	uk2, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: u2.Id, AiProviderId: p2.Id, ApiKey: shared})
	record("PutUserProviderKey", uk2, err)
	fp("user shared bob@p2", shared, uk2.GetFingerprint())
	uk3, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: u1.Id, AiProviderId: p2.Id, ApiKey: user1})
	record("PutUserProviderKey", uk3, err)
	fp("user one alice@p2", user1, uk3.GetFingerprint())
	uk4, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: u2.Id, AiProviderId: p1.Id, ApiKey: " " + padded + " "})
	record("PutUserProviderKey", uk4, err)
	fp("user padded bob@p1", padded, uk4.GetFingerprint())
	if t.Failed() {
		t.FailNow()
	}

	cfg, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p1.Id, Model: "sec-model", IsDefault: true, ContextLimit: 1000, CompressionThreshold: 50})
	record("CreateModelConfig", cfg, err)
	cfg2, err := a.UpdateModelConfig(ctx, &resolverv1.UpdateModelConfigRequest{Id: cfg.GetId(), DisplayName: proto.String("Secret-free")})
	record("UpdateModelConfig", cfg2, err)
	up, err := a.UpdateProvider(ctx, &resolverv1.UpdateProviderRequest{Id: p1.Id, DisplayName: proto.String("One")})
	record("UpdateProvider", up, err)
	chat, err := a.PutChat(ctx, &resolverv1.PutChatRequest{Id: uuid.NewString(), OwnerId: u1.Id, ModelConfigId: cfg.GetId()})
	record("PutChat", chat, err)
	tok, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: "sec-token", Scopes: []string{"chat:read"}, TtlSeconds: 3600})
	record("CreateToken", tok, err)

	// A resolution, so that the audit trail (if any) has a credential event to show.
	if _, err := w.Resolve(chat.GetId(), "", resolverv1.Purpose_PURPOSE_CHAT); err != nil {
		t.Errorf("resolve: %v", err)
	}

	lp, err := a.ListProviders(ctx, &resolverv1.ListProvidersRequest{})
	record("ListProviders", lp, err)
	lk, err := a.ListProviderKeys(ctx, &resolverv1.ListProviderKeysRequest{})
	record("ListProviderKeys", lk, err)
	lk1, err := a.ListProviderKeys(ctx, &resolverv1.ListProviderKeysRequest{ProviderId: p1.Id})
	record("ListProviderKeys", lk1, err)
	luk, err := a.ListUserProviderKeys(ctx, &resolverv1.ListUserProviderKeysRequest{UserId: u1.Id})
	record("ListUserProviderKeys", luk, err)
	if len(luk.GetKeys()) != 2 {
		t.Errorf("ListUserProviderKeys lists %d keys of alice, want 2", len(luk.GetKeys()))
	}
	for _, k := range luk.GetKeys() {
		fp("listed user key "+k.GetAiProviderId(), map[string]string{p1.Id: shared, p2.Id: user1}[k.GetAiProviderId()], k.GetFingerprint())
	}
	lc, err := a.ListModelConfigs(ctx, &resolverv1.ListModelConfigsRequest{})
	record("ListModelConfigs", lc, err)
	lt, err := a.ListTokens(ctx, &resolverv1.ListTokensRequest{})
	record("ListTokens", lt, err)
	gp, err := a.GetProvider(ctx, &resolverv1.GetProviderRequest{Id: p1.Id})
	record("GetProvider", gp, err)
	gc, err := a.GetModelConfig(ctx, &resolverv1.GetModelConfigRequest{Id: cfg.GetId()})
	record("GetModelConfig", gc, err)
	gu, err := a.GetUser(ctx, &resolverv1.GetUserRequest{Id: u1.Id})
	record("GetUser", gu, err)
	gch, err := a.GetChat(ctx, &resolverv1.GetChatRequest{Id: chat.GetId()})
	record("GetChat", gch, err)
	gt, err := a.GetToken(ctx, &resolverv1.GetTokenRequest{Id: tok.GetId()})
	record("GetToken", gt, err)

	// The deletes last (their responses are empty, but they must answer too).
	spare, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p1.Id, ApiKey: central1 + "-spare"})
	record("AddProviderKey", spare, err)
	fp("central spare @p1", central1+"-spare", spare.GetFingerprint())
	secrets = append(secrets, central1+"-spare")
	dk, err := a.DeleteProviderKey(ctx, &resolverv1.DeleteProviderKeyRequest{Id: spare.GetId()})
	record("DeleteProviderKey", dk, err)
	duk, err := a.DeleteUserProviderKey(ctx, &resolverv1.DeleteUserProviderKeyRequest{Id: uk4.Id})
	record("DeleteUserProviderKey", duk, err)
	dc, err := a.DeleteModelConfig(ctx, &resolverv1.DeleteModelConfigRequest{Id: cfg.GetId()})
	record("DeleteModelConfig", dc, err)
	rt, err := a.RevokeToken(ctx, &resolverv1.RevokeTokenRequest{Id: tok.GetId()})
	record("RevokeToken", rt, err)
	tmp, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: uuid.NewString(), Username: "sec-tmp"})
	record("PutUser", tmp, err)
	du, err := a.DeleteUser(ctx, &resolverv1.DeleteUserRequest{Id: tmp.GetId()})
	record("DeleteUser", du, err)
	tmpP, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "google", Name: "sec-tmp"})
	record("CreateProvider", tmpP, err)
	dp, err := a.DeleteProvider(ctx, &resolverv1.DeleteProviderRequest{Id: tmpP.GetId()})
	record("DeleteProvider", dp, err)
	wi, err := a.PutWorkloadIdentity(ctx, &resolverv1.PutWorkloadIdentityRequest{Subject: "cn:sec-worker", Scopes: []string{"chat:read"}})
	record("PutWorkloadIdentity", wi, err)
	lw, err := a.ListWorkloadIdentities(ctx, &resolverv1.ListWorkloadIdentitiesRequest{})
	record("ListWorkloadIdentities", lw, err)
	dw, err := a.DeleteWorkloadIdentity(ctx, &resolverv1.DeleteWorkloadIdentityRequest{Subject: wi.GetSubject()})
	record("DeleteWorkloadIdentity", dw, err)
	la, err := a.ListAuditEvents(ctx, &resolverv1.ListAuditEventsRequest{Limit: 500})
	record("ListAuditEvents", la, err)

	t.Run("every-method-answered-without-a-secret", func(t *testing.T) {
		methods := resolverv1.File_resolver_v1_admin_proto.Services().ByName("AdminService").Methods()
		for i := range methods.Len() {
			name := string(methods.Get(i).Name())
			if len(responses[name]) == 0 {
				t.Errorf("%s was not exercised successfully", name)
			}
		}
		for method, ms := range responses {
			for _, m := range ms {
				text := adText(m)
				for _, s := range secrets {
					if strings.Contains(text, s) {
						t.Errorf("%s response contains the secret %q: %s", method, s, text)
					}
				}
			}
		}
	})

	t.Run("audit-trail-records-admin-changes-without-secrets", func(t *testing.T) {
		if la == nil {
			t.Fatal("ListAuditEvents did not answer")
		}
		if len(la.GetEvents()) == 0 {
			t.Fatal("ListAuditEvents returned no events after many admin changes (docs/CONTRACT.md §7: every admin change is recorded)")
		}
	})

	t.Run("fingerprints", func(t *testing.T) {
		bySecret := map[string]string{}
		for _, f := range fingerprints {
			if !adFingerprintRE.MatchString(f.fp) {
				t.Errorf("%s: fingerprint %q is not 16 lowercase hex characters", f.what, f.fp)
				continue
			}
			if prev, ok := bySecret[f.secret]; ok && prev != f.fp {
				t.Errorf("%s: fingerprint %s differs from %s of the same secret", f.what, f.fp, prev)
			}
			bySecret[f.secret] = f.fp
		}
		seen := map[string]string{}
		for s, fp := range bySecret {
			if other, ok := seen[fp]; ok {
				t.Errorf("secrets %q and %q share the fingerprint %s", s, other, fp)
			}
			seen[fp] = s
		}
		if len(bySecret) != 6 {
			t.Errorf("fingerprints for %d distinct secrets, want 6", len(bySecret))
		}
		// Lists show the same fingerprints as the writes.
		for _, k := range lk.GetKeys() {
			if !adFingerprintRE.MatchString(k.GetFingerprint()) {
				t.Errorf("listed key %s fingerprint %q", k.GetId(), k.GetFingerprint())
			}
		}
		for _, k := range lk1.GetKeys() {
			switch k.GetId() {
			case k1.Id:
				if k.GetFingerprint() != k1.GetFingerprint() {
					t.Errorf("listed fingerprint %s, added %s", k.GetFingerprint(), k1.GetFingerprint())
				}
			case k3.Id:
				if k.GetFingerprint() != k3.GetFingerprint() {
					t.Errorf("listed fingerprint %s, added %s", k.GetFingerprint(), k3.GetFingerprint())
				}
			}
		}
		// ResolveModel reports the same fingerprint for the same stored key.
		res, err := w.Resolve(chat.GetId(), "", resolverv1.Purpose_PURPOSE_CHAT)
		if err == nil && res.GetCredential().GetFingerprint() != bySecret[res.GetCredential().GetApiKey()] {
			t.Errorf("ResolveModel fingerprint %s for a secret whose admin fingerprint is %s", res.GetCredential().GetFingerprint(), bySecret[res.GetCredential().GetApiKey()])
		}
	})

	t.Run("stored-sealed", func(t *testing.T) {
		plain := map[string]string{k1.Id: shared, k2.Id: shared, k3.Id: central1, k4.Id: padded, k5.Id: rotated,
			uk1.Id: shared, uk2.Id: shared, uk3.Id: user1}
		stored := adStoredKeys(t, e, "ai_provider_keys")
		for id, k := range adStoredKeys(t, e, "user_ai_provider_keys") {
			stored[id] = k
		}
		var sharedCiphertexts []string
		for id, p := range plain {
			s, ok := stored[id]
			if !ok {
				t.Errorf("key %s is not stored", id)
				continue
			}
			if s.APIKey == p || strings.Contains(s.APIKey, p) || strings.Contains(s.APIKey, base64.StdEncoding.EncodeToString([]byte(p))) ||
				strings.Contains(s.APIKey, hex.EncodeToString([]byte(p))) {
				t.Errorf("key %s: api_key column holds the plaintext (or a plain encoding of it): %q", id, s.APIKey)
			}
			if s.KeyID == nil || *s.KeyID == "" {
				t.Errorf("key %s: api_key_key_id is NULL/empty: the value is marked as plain text", id)
			}
			if p == shared {
				sharedCiphertexts = append(sharedCiphertexts, s.APIKey)
			}
		}
		// AES-GCM with a fresh nonce per value: the same secret never seals to the same text.
		slices.Sort(sharedCiphertexts)
		if len(slices.Compact(sharedCiphertexts)) != 4 {
			t.Errorf("the four rows of one secret have only %d distinct ciphertexts", len(slices.Compact(sharedCiphertexts)))
		}
		snap := e.TablesSnapshot(t)
		for _, s := range secrets {
			if strings.Contains(snap, s) {
				t.Errorf("the database holds the plaintext %q somewhere", s)
			}
		}
	})

	t.Run("server-log-has-no-secret", func(t *testing.T) {
		logs := e.Logs.String()
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Errorf("the server log contains the secret %q", s)
			}
		}
	})
}
