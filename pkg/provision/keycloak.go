package provision

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kcguard/kcguard/pkg/keycloak"
)

// CheckKeycloak verifies, per package, that the realm and client exist, the
// client secret works (client-credentials grant of its service account) and
// the service account may list users — everything the sync worker and the
// migration need. Keycloak being unreachable is reported once. realms maps
// each package to its realm and client (keycloak.Options.Packages).
func CheckKeycloak(ctx context.Context, baseURL string, timeout time.Duration, realms map[string]keycloak.Realm) []Check {
	kc := gocloak.NewClient(baseURL)
	kc.RestyClient().SetTimeout(timeout)
	reach := Check{Name: "keycloak reachable at " + baseURL}
	if _, err := kc.GetServerInfo(ctx, ""); err != nil && isTransport(err) {
		reach.Detail = "unreachable: " + err.Error()
		return []Check{reach}
	}
	reach.OK, reach.Detail = true, "answers"
	checks := []Check{reach}
	for _, name := range slices.Sorted(maps.Keys(realms)) {
		p := realms[name]
		c := Check{Name: fmt.Sprintf("package %s: realm %s, client %s", name, p.Realm, p.ClientID)}
		tok, err := kc.LoginClient(ctx, p.ClientID, p.ClientSecret, p.Realm)
		if err != nil {
			c.Detail = "service-account login failed (realm, client or secret wrong): " + apiReason(err)
			checks = append(checks, c)
			continue
		}
		if _, err := kc.GetUsers(ctx, tok.AccessToken, p.Realm, gocloak.GetUsersParams{Max: gocloak.IntP(1)}); err != nil {
			c.Detail = "service account cannot list users (needs realm-management view-users/query-users/manage-users): " + apiReason(err)
			checks = append(checks, c)
			continue
		}
		c.OK, c.Detail = true, "service account can list users"
		checks = append(checks, c)
	}
	return checks
}

func isTransport(err error) bool {
	apiErr, ok := err.(*gocloak.APIError)
	return !ok || apiErr.Code == 0
}

// apiReason keeps Keycloak's status and error text but never a token.
func apiReason(err error) string {
	if apiErr, ok := err.(*gocloak.APIError); ok {
		return fmt.Sprintf("%d %s", apiErr.Code, strings.TrimSpace(apiErr.Message))
	}
	return err.Error()
}

// KMS is the part of the KMS client provisioning uses.
type KMS interface {
	DescribeKey(context.Context, *kms.DescribeKeyInput, ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
	CreateKey(context.Context, *kms.CreateKeyInput, ...func(*kms.Options)) (*kms.CreateKeyOutput, error)
	CreateAlias(context.Context, *kms.CreateAliasInput, ...func(*kms.Options)) (*kms.CreateAliasOutput, error)
}

// EnsureKMSKey creates a symmetric key under keyID when keyID is an alias
// that does not exist yet. Key ids and ARNs are never created: in AWS the key
// belongs to the deployment (CDK), not to this command.
func EnsureKMSKey(ctx context.Context, k KMS, keyID string) (string, error) {
	if c := CheckKMSKey(ctx, k, keyID); c.OK {
		return "exists", nil
	}
	if !strings.HasPrefix(keyID, "alias/") {
		return "", fmt.Errorf("kms key %s not found; only aliases are created", keyID)
	}
	key, err := k.CreateKey(ctx, &kms.CreateKeyInput{
		Description: aws.String("kcguard token cache encryption"),
		KeySpec:     kmstypes.KeySpecSymmetricDefault,
		KeyUsage:    kmstypes.KeyUsageTypeEncryptDecrypt,
	})
	if err != nil {
		return "", fmt.Errorf("create kms key: %w", err)
	}
	if _, err := k.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: &keyID, TargetKeyId: key.KeyMetadata.KeyId}); err != nil {
		return "", fmt.Errorf("create kms alias %s: %w", keyID, err)
	}
	return "created", nil
}

// CheckKMSKey verifies the key exists and is enabled.
func CheckKMSKey(ctx context.Context, k KMS, keyID string) Check {
	c := Check{Name: "kms key " + keyID}
	out, err := k.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &keyID})
	switch {
	case err != nil:
		c.Detail = "missing or not accessible"
	case !out.KeyMetadata.Enabled:
		c.Detail = "disabled"
	default:
		c.OK, c.Detail = true, "enabled"
	}
	return c
}
