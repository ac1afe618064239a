package secret_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/resolverd/resolverd/pkg/secret"
)

const plaintext = "sk-very-secret-0123456789"

// holder embeds a secret the ways code might carry one.
type holder struct {
	Name string
	Key  secret.String
	Ptr  *secret.String
}

func TestSecretNeverPrints(t *testing.T) {
	s := secret.New(plaintext)
	h := holder{Name: "x", Key: s, Ptr: &s}
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%T"} {
		outputs["Sprintf "+verb+" secret"] = fmt.Sprintf(verb, s)
		outputs["Sprintf "+verb+" struct"] = fmt.Sprintf(verb, h)
		outputs["Sprintf "+verb+" pointer"] = fmt.Sprintf(verb, &s)
	}
	outputs["Sprint"] = fmt.Sprint(s, h)
	outputs["Sprintln"] = fmt.Sprintln(s, h)
	outputs["error wrap"] = fmt.Errorf("key %v: %w", s, errors.New("x")).Error()
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(js)
	xs, err := xml.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outputs["xml"] = string(xs)
	for name, handler := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		l := slog.New(handler(&b))
		l.Info("msg", "key", s, "holder", h, "ptr", &s, slog.Any("any", s))
		outputs[name] = b.String()
	}
	for name, out := range outputs {
		if strings.Contains(out, plaintext) || strings.Contains(out, fmt.Sprintf("%x", plaintext)) {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
	}
	if !strings.Contains(outputs["Sprintf %v secret"], secret.Redacted) || !strings.Contains(outputs["json"], secret.Redacted) {
		t.Errorf("redaction missing: %q %q", outputs["Sprintf %v secret"], outputs["json"])
	}
	if s.Reveal() != plaintext || s.Len() != len(plaintext) || s.IsZero() || !(secret.String{}).IsZero() {
		t.Fatal("Reveal/Len/IsZero")
	}
}

func TestFingerprint(t *testing.T) {
	k1, k2 := []byte("key-one-key-one-key-one-key-one!"), []byte("key-two-key-two-key-two-key-two!")
	a, b := secret.New("sk-a"), secret.New("sk-b")
	fa := secret.Fingerprint(k1, a)
	if len(fa) != 16 || strings.Trim(fa, "0123456789abcdef") != "" {
		t.Fatalf("fingerprint %q is not 16 lowercase hex characters", fa)
	}
	if fa != secret.Fingerprint(k1, secret.New("sk-a")) {
		t.Fatal("the same secret and key gave different fingerprints")
	}
	if fa == secret.Fingerprint(k1, b) {
		t.Fatal("different secrets gave the same fingerprint")
	}
	if fa == secret.Fingerprint(k2, a) {
		t.Fatal("the fingerprint does not depend on the key")
	}
	if secret.Fingerprint(k1, secret.String{}) != "" {
		t.Fatal("an empty secret has a fingerprint")
	}
}

// dump prints a value the way go-spew with DisableMethods does (testify's diffs): field by field
// through reflection, following pointers, never calling String or Format.
func dump(v reflect.Value, depth int) string {
	if depth > 10 {
		return "…"
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "nil"
		}
		return "&" + dump(v.Elem(), depth+1)
	case reflect.Struct:
		var b strings.Builder
		b.WriteString(v.Type().String() + "{")
		for i := range v.NumField() {
			fmt.Fprintf(&b, "%s: %s, ", v.Type().Field(i).Name, dump(v.Field(i), depth+1))
		}
		return b.String() + "}"
	case reflect.String:
		return strconv.Quote(v.String())
	case reflect.Slice, reflect.Array:
		var b strings.Builder
		for i := range v.Len() {
			b.WriteString(dump(v.Index(i), depth+1) + " ")
		}
		return "[" + b.String() + "]"
	case reflect.Func:
		return fmt.Sprintf("func@%#x", v.Pointer())
	default:
		return fmt.Sprint(v.Kind())
	}
}

// TestSecretSurvivesReflectiveDumps: printers that walk fields by reflection and skip the String
// methods (go-spew with DisableMethods, as testify uses for assertion diffs) must not reach the
// plaintext either: a failing assert.Equal on a resolution must not write the key into CI logs.
func TestSecretSurvivesReflectiveDumps(t *testing.T) {
	s := secret.New(plaintext)
	h := holder{Name: "x", Key: s, Ptr: &s}
	for name, v := range map[string]any{"secret": s, "struct": h, "pointer": &s} {
		if out := dump(reflect.ValueOf(v), 0); strings.Contains(out, plaintext) {
			t.Errorf("a reflective dump of the %s shows the secret: %s", name, out)
		}
	}
	if s.Reveal() != plaintext {
		t.Fatal("Reveal")
	}
}
