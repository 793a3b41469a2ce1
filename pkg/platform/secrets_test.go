package platform

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/config"
)

func TestSecretsCarryClientSecretsAndTheAuditKey(t *testing.T) {
	sm := secretsmanager.NewFromConfig(testenv.AWS(t))
	ctx := context.Background()
	name := testenv.Unique("kcguard-secrets")
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name),
		SecretString: aws.String(`{"homechoice": "client-secret-1", "_audit_username_hmac_key": "audit-key-1"}`)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = sm.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: aws.String(name),
			ForceDeleteWithoutRecovery: aws.Bool(true)})
	})
	cfg := config.Default()
	cfg.Keycloak.SecretsID = name
	cfg.Keycloak.Packages = map[string]config.Package{"homechoice": {Realm: "homechoice", ClientID: "kcguard"}}
	if err := resolveSecrets(ctx, sm, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Keycloak.Packages["homechoice"].ClientSecret != "client-secret-1" || cfg.Audit.UsernameHMACKey != "audit-key-1" {
		t.Fatalf("resolved %+v, audit key %q", cfg.Keycloak.Packages, cfg.Audit.UsernameHMACKey)
	}
	if _, ok := cfg.Keycloak.Packages[auditKeySecret]; ok {
		t.Fatal("the audit key entry must not become a package")
	}
}
