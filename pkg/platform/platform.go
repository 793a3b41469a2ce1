// Package platform is the composition root shared by the Lambda functions and
// the kcguard CLI: it loads the configuration, the AWS SDK configuration and
// the description of every resource kcguard needs.
package platform

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
)

// LoadConfig loads and validates the configuration (path may be empty).
func LoadConfig(path string) (config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// AWS loads the SDK configuration the standard way, so AWS_REGION and
// AWS_ENDPOINT_URL* decide where calls go (moto locally, AWS in Lambda).
func AWS(ctx context.Context) (aws.Config, error) {
	c, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return c, fmt.Errorf("aws config: %w", err)
	}
	if c.Region == "" {
		return c, fmt.Errorf("aws config: no region (set AWS_REGION)")
	}
	return c, nil
}

// Logger builds the process logger from the log settings.
func Logger(w io.Writer, l config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(l.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// BreakerSettings maps keycloak.resilience onto the breaker. Only Keycloak
// outages (transport, timeout, 5xx) count as failures: the Keycloak adapter
// has classified every error once, and a wrong password means Keycloak is up.
func BreakerSettings(cfg config.Config, log *slog.Logger) breaker.Settings {
	r := cfg.Keycloak.Resilience
	return breaker.Settings{
		Name:             cfg.Keycloak.URL,
		Disabled:         !r.Enabled,
		FailureThreshold: r.FailureThreshold,
		Cooldown:         r.Cooldown(),
		MaxCooldown:      MaxProbeBackoff(r.Cooldown()),
		StateCacheTTL:    r.StateCacheTTL(),
		// A probe must outlive the Keycloak call it guards.
		ProbeLease:   max(breaker.DefaultProbeLease, 3*cfg.Keycloak.Timeout),
		IsSuccessful: func(err error) bool { return !keycloak.IsOutage(err) },
		Logger:       log,
	}
}

// MaxProbeBackoff caps the breaker's back-off after failed probes (and
// for a flapping Keycloak) at 16 cooldowns but never more than five
// minutes: Keycloak back → breaker closed is at most this (plus one
// Keycloak call), and the replay starts at the close, so after an outage
// of any length Keycloak equals local within it plus the drain (finding 8
// of RELIABILITY.md). With the default 60 s cooldown, 16 × would be 16
// minutes.
func MaxProbeBackoff(cooldown time.Duration) time.Duration {
	return max(cooldown, min(16*cooldown, 5*time.Minute))
}

// Hasher builds the password hasher from password.algorithm; costs are
// Keycloak 26's defaults so an imported hash is never re-hashed by Keycloak.
func Hasher(cfg config.Config) (*credential.Hasher, error) {
	return credential.NewHasher(credential.Params{Algorithm: credential.Algorithm(cfg.Password.Algorithm)})
}
