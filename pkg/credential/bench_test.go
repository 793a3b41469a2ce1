package credential

import "testing"

// Login latency: one Verify per login (VerifyDummy for unknown users costs
// the same). Run: go test -run '^$' -bench . -benchmem ./pkg/credential/
//
// 2026-11, 2-core AMD EPYC, Go 1.26 (one core per hash, p=1):
//
//	argon2id m=7168 t=5 p=1 (default)  Verify ≈16 ms, 7.0 MiB/op
//	VerifyDummy (default)              ≈16 ms
//	argon2id m=19456 t=2 p=1 (OWASP)   Verify ≈20 ms, 19 MiB/op
//	pbkdf2-sha512 210000 (FIPS)        Verify ≈97 ms
//
// Lambda CPU scales with memory (one full vCPU at 1769 MB): expect ≈30 ms at
// 1024 MB and ≈55 ms at 512 MB for the argon2id default.
func BenchmarkHash(b *testing.B) {
	for _, p := range benchParams {
		b.Run(p.name, func(b *testing.B) {
			h, err := NewHasher(p.params)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := h.Hash("correct horse battery staple"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, p := range benchParams {
		b.Run(p.name, func(b *testing.B) {
			h, err := NewHasher(p.params)
			if err != nil {
				b.Fatal(err)
			}
			stored, _ := h.Hash("correct horse battery staple")
			for b.Loop() {
				if ok, _ := h.Verify(stored, "correct horse battery staple"); !ok {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkVerifyDummy must match BenchmarkVerify at the default cost: it is
// what an unknown username costs.
func BenchmarkVerifyDummy(b *testing.B) {
	h, err := NewHasher(Params{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		h.VerifyDummy("correct horse battery staple")
	}
}

var benchParams = []struct {
	name   string
	params Params
}{
	{"argon2id-default-m7168-t5-p1", Params{}},
	{"pbkdf2-sha512-default-210000", Params{Algorithm: PBKDF2SHA512}},
	// OWASP's other argon2id minimum (m=19 MiB, t=2, p=1), for comparison.
	{"argon2id-m19456-t2-p1", Params{Iterations: 2, Argon2MemoryKiB: 19456}},
}
