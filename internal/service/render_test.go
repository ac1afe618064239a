package service

import (
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

var renderFPKey = []byte("0123456789abcdef0123456789abcdef")

// renderCase is a resolution's result over a fresh provider and config.
func renderCase() *resolve.Result {
	p := &resolve.Provider{ID: uuid.New(), Type: "openai", Name: "openai", BaseURL: "https://api.openai.com/v1", Enabled: true, BYOKPolicy: resolve.BYOKOptional}
	c := &resolve.ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: "gpt-4o", DisplayName: "GPT-4o", Enabled: true,
		ContextLimit: 128000, CompressionThreshold: 100000, Options: []byte(`{"temperature":0.2}`), Provider: p}
	return &resolve.Result{Config: c, Provider: p, RequestedConfigID: c.ID,
		Credential: resolve.Credential{Source: resolve.SourceCentral, KeyID: uuid.New(), Secret: secret.New("sk-render")}}
}

// renderAnswer answers res as ResolveModel does, and decodes the answer as a client would.
func renderAnswer(t *testing.T, r *renders, res *resolve.Result) *resolverv1.ResolveModelResponse {
	t.Helper()
	out := new(answerMessages)
	fillCredential(&out.credential, res.Credential, renderFPKey)
	b, err := proto.Marshal(r.answer(out, res.Config, res.Provider, res))
	if err != nil {
		t.Fatal(err)
	}
	got := &resolverv1.ResolveModelResponse{}
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatal(err)
	}
	return got
}

// wantAnswer is the answer to res built field by field, without anything kept.
func wantAnswer(res *resolve.Result) *resolverv1.ResolveModelResponse {
	return &resolverv1.ResolveModelResponse{
		ModelConfig: configProto(res.Config, timeZero, timeZero), Provider: providerProto(res.Provider, timeZero, timeZero),
		Credential: credentialProto(res.Credential, renderFPKey),
		Decision: &resolverv1.Decision{RequestedModelConfigId: idString(res.RequestedConfigID), Fallback: res.Fallback,
			FallbackReason: string(res.FallbackReason)},
	}
}

// TestAnswerIsTheMessage: what a client decodes from an answer is the message built field by field,
// for a direct answer and a fallback, and stays so when the config or its provider change.
func TestAnswerIsTheMessage(t *testing.T) {
	r := newRenders()
	res := renderCase()
	check := func(what string) {
		t.Helper()
		if got := renderAnswer(t, r, res); !proto.Equal(got, wantAnswer(res)) {
			t.Fatalf("%s: the client decodes\n%v\nwant\n%v", what, got, wantAnswer(res))
		}
	}
	check("first answer")
	check("kept answer")
	fallback := *res
	fallback.RequestedConfigID, fallback.Fallback, fallback.FallbackReason = uuid.New(), true, errs.ModelConfigDisabled
	res = &fallback
	check("fallback")
	p := *res.Provider
	p.BaseURL = "https://eu.api.openai.com/v1"
	c := *res.Config
	c.Provider = &p
	res.Config, res.Provider = &c, &p
	check("provider changed")
	c2 := *res.Config
	c2.Options = []byte(`{"temperature":0.7}`)
	res.Config = &c2
	check("config options changed")
	res.Credential = resolve.Credential{Source: resolve.SourceAmbient}
	res.RequestedConfigID, res.Fallback, res.FallbackReason = res.Config.ID, false, ""
	check("ambient credential")
}

// BenchmarkAnswer: rendering a warm answer (config and provider kept) and marshalling it.
func BenchmarkAnswer(b *testing.B) {
	r := newRenders()
	res := renderCase()
	res.Credential.Fingerprint = secret.Fingerprint(renderFPKey, res.Credential.Secret) // kept with the key, as in the cache
	b.ReportAllocs()
	for b.Loop() {
		out := new(answerMessages)
		fillCredential(&out.credential, res.Credential, renderFPKey)
		if _, err := proto.Marshal(r.answer(out, res.Config, res.Provider, res)); err != nil {
			b.Fatal(err)
		}
	}
}
