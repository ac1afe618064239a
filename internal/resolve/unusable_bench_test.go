package resolve

import (
	"testing"

	"github.com/google/uuid"
)

// BenchmarkUnusable: judging a usable config on the warm path, with every provider host allowed.
func BenchmarkUnusable(b *testing.B) {
	p := &Provider{ID: uuid.New(), Type: "openai", Name: "openai", BaseURL: "https://api.openai.com/v1", Enabled: true}
	cfg := &ModelConfig{ID: uuid.New(), ProviderID: p.ID, Enabled: true, Provider: p}
	b.ReportAllocs()
	for b.Loop() {
		if why := Unusable(cfg, nil); why != nil {
			b.Fatal(why)
		}
	}
}
