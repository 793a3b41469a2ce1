package credential

import (
	"errors"
	"strings"
	"testing"
)

func TestPolicy(t *testing.T) {
	cases := []struct {
		name     string
		policy   Policy
		username string
		password string
		want     PolicyReason // "" = accepted
	}{
		{"ok", Policy{}, "alice", "correct horse battery", ""},
		{"exactly 12", Policy{}, "alice", "123456789012", ""},
		{"11 chars", Policy{}, "alice", "12345678901", ReasonTooShort},
		{"empty", Policy{}, "alice", "", ReasonTooShort},
		{"12 runes counted, not bytes", Policy{}, "alice", "ääääääääääää", ""},
		{"11 multibyte runes", Policy{}, "alice", "äääääääääää", ReasonTooShort},
		{"1024 bytes", Policy{}, "alice", strings.Repeat("a", 1024), ""},
		{"1025 bytes", Policy{}, "alice", strings.Repeat("a", 1025), ReasonTooLong},
		{"equals username", Policy{}, "alice.homechoice", "alice.homechoice", ReasonEqualsUsername},
		{"equals username any case", Policy{}, "Alice.HomeChoice", "aLICE.homechoice", ReasonEqualsUsername},
		{"contains username is fine", Policy{}, "alice", "alice-is-my-long-pass", ""},
		{"invalid utf-8", Policy{}, "alice", "abcdefghijkl\xff", ReasonInvalidEncoding},
		{"custom min", Policy{MinLength: 20}, "alice", "correct horse batt", ReasonTooShort},
		{"custom max", Policy{MaxBytes: 16}, "alice", "correct horse battery", ReasonTooLong},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Check(tc.username, tc.password)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			var pe *PolicyError
			if !errors.As(err, &pe) || pe.Reason != tc.want {
				t.Fatalf("Check = %v, want reason %s", err, tc.want)
			}
			if !errors.Is(err, ErrPolicy) {
				t.Fatal("not errors.Is ErrPolicy")
			}
			if tc.password != "" && strings.Contains(err.Error(), tc.password) {
				t.Fatal("error message contains the password")
			}
		})
	}
}
