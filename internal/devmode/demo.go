package devmode

import (
	"context"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// The demo's ids are fixed so that the printed commands (and the README's) work on every machine.
var (
	DemoOpenAI       = uuid.MustParse("10000000-0000-4000-8000-000000000001")
	DemoAnthropic    = uuid.MustParse("10000000-0000-4000-8000-000000000002")
	DemoBedrock      = uuid.MustParse("10000000-0000-4000-8000-000000000003")
	DemoGPT          = uuid.MustParse("20000000-0000-4000-8000-000000000001")
	DemoClaude       = uuid.MustParse("20000000-0000-4000-8000-000000000002")
	DemoBedrockModel = uuid.MustParse("20000000-0000-4000-8000-000000000003")
	DemoRetired      = uuid.MustParse("20000000-0000-4000-8000-000000000004")
	DemoAlice        = uuid.MustParse("30000000-0000-4000-8000-000000000001")
	DemoChat         = uuid.MustParse("40000000-0000-4000-8000-000000000001")
)

// Demo secrets are fake: they only show which credential a resolution chose (tests of the demo
// check that they never reach an output they should not).
const (
	DemoCentralKey = "sk-demo-openai-central-0001"
	DemoAliceKey   = "sk-ant-demo-alice-0001"
)

// SeedDemo writes the demo once: three providers (a central key, BYOK required, ambient), four
// model configs (one disabled), a user with their own key and a chat. An already-seeded database is
// left as it is, so restarts keep the operator's changes. It writes as dbauthz.SystemDevSeed.
func SeedDemo(ctx context.Context, s *dbauthz.Store) (seeded bool, err error) {
	ctx = dbauthz.AsSystemRestricted(ctx, dbauthz.SystemDevSeed)
	existing, err := s.ListProviders(ctx, db.Page[db.ProviderPos]{})
	if err != nil {
		return false, err
	}
	for _, p := range existing {
		if p.ID == DemoOpenAI {
			return false, nil
		}
	}
	providers := []resolve.Provider{
		{ID: DemoOpenAI, Type: "openai", Name: "openai", DisplayName: "OpenAI", Enabled: true, BYOKPolicy: resolve.BYOKOptional},
		{ID: DemoAnthropic, Type: "anthropic", Name: "anthropic", DisplayName: "Anthropic (bring your own key)", Enabled: true, BYOKPolicy: resolve.BYOKRequired},
		{ID: DemoBedrock, Type: "bedrock", Name: "bedrock-us-east-1", DisplayName: "AWS Bedrock", Enabled: true, BYOKPolicy: resolve.BYOKDisabled},
	}
	for _, p := range providers {
		if _, err := s.CreateProvider(ctx, p); err != nil {
			return false, err
		}
	}
	if _, err := s.AddProviderKey(ctx, uuid.Must(uuid.NewV7()), DemoOpenAI, secret.New(DemoCentralKey), true); err != nil {
		return false, err
	}
	configs := []resolve.ModelConfig{
		{ID: DemoGPT, ProviderID: DemoOpenAI, Model: "gpt-4o", DisplayName: "GPT-4o", Enabled: true, IsDefault: true, ContextLimit: 128000, CompressionThreshold: 70},
		{ID: DemoClaude, ProviderID: DemoAnthropic, Model: "claude-sonnet-4-5", DisplayName: "Claude Sonnet 4.5", Enabled: true, ContextLimit: 200000, CompressionThreshold: 80},
		{ID: DemoBedrockModel, ProviderID: DemoBedrock, Model: "anthropic.claude-3-5-haiku-20241022-v1:0", DisplayName: "Claude 3.5 Haiku (Bedrock)", Enabled: true, ContextLimit: 200000, CompressionThreshold: 80},
		{ID: DemoRetired, ProviderID: DemoOpenAI, Model: "gpt-4-turbo", DisplayName: "GPT-4 Turbo (retired)", Enabled: false, ContextLimit: 128000, CompressionThreshold: 70},
	}
	for _, c := range configs {
		c.Options = []byte(`{"temperature": 0.7}`)
		if _, err := s.CreateModelConfig(ctx, c); err != nil {
			return false, err
		}
	}
	if _, err := s.PutUser(ctx, DemoAlice, "alice"); err != nil {
		return false, err
	}
	if _, err := s.PutUserProviderKey(ctx, uuid.Must(uuid.NewV7()), DemoAlice, DemoAnthropic, secret.New(DemoAliceKey)); err != nil {
		return false, err
	}
	if _, err := s.PutChat(ctx, DemoChat, DemoAlice, DemoGPT); err != nil {
		return false, err
	}
	return true, nil
}
