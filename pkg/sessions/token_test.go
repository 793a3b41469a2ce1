package sessions

import (
	"strings"
	"testing"
)

// TestIDsNeverLookLikeFlags: 1 in 64 derived IDs starts with '-', which a
// CLI reads as a flag; newToken draws again. Without the redraw, 2000
// tokens hold such an ID with probability 1-(63/64)^2000 > 99.99%.
func TestIDsNeverLookLikeFlags(t *testing.T) {
	for range 2000 {
		tok, id, _, err := newToken("homechoice", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(id, "-") {
			t.Fatalf("token %q has the id %q", tok, id)
		}
		if got, _, _, ok := derive(tok); !ok || got != id {
			t.Fatalf("derive(%q) = %q, %v; want %q", tok, got, ok, id)
		}
	}
}
