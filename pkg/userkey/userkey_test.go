package userkey

import (
	"errors"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	long := strings.Repeat("x", MaxNameLength+1)
	for _, c := range []struct {
		name, pkg, username string
		want                string // the storage key; "" when invalid
	}{
		{"normalised like Keycloak", "hc", "  Alice.HC ", "hc#alice.hc"},
		{"package kept as is", "HC", "bob", "HC#bob"},
		{"longest username", "hc", long[1:], "hc#" + long[1:]},
		{"blank username", "hc", "   ", ""},
		{"oversize username", "hc", long, ""},
		{"empty package", "", "alice", ""},
		{"package with the separator", "h#c", "alice", ""},
		{"oversize package", long, "alice", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, err := New(c.pkg, c.username)
			if c.want == "" {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("New(%q, %q) = %v, %v; want ErrInvalid", c.pkg, c.username, k, err)
				}
				return
			}
			if err != nil || k.String() != c.want {
				t.Fatalf("New(%q, %q) = %q, %v; want %q", c.pkg, c.username, k.String(), err, c.want)
			}
		})
	}
}
