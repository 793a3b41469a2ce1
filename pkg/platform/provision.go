package platform

import (
	"context"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/provision"
)

// CheckKeycloak checks what kcguard needs of Keycloak (`config validate`):
// reachable, each package's realm, client and service account, and, when
// it answers, the events `sync pull` reads.
func CheckKeycloak(ctx context.Context, cfg config.Config, log *slog.Logger) []provision.Check {
	kco := KeycloakOptions(cfg, log)
	checks := provision.CheckKeycloak(ctx, kco.BaseURL, kco.AdminTimeout, kco.Packages)
	if len(checks) > 0 && checks[0].OK { // reachable
		if kc, err := KeycloakClient(cfg, log); err == nil {
			checks = append(checks, provision.CheckEvents(ctx, kc, kco.Packages, cfg.Pull.MaxGap)...)
		}
	}
	return checks
}

// CheckResources checks every AWS resource ResourcesOf(cfg) lists.
func CheckResources(ctx context.Context, cfg config.Config, awsCfg aws.Config) []provision.Check {
	res := ResourcesOf(cfg)
	db := dynamodb.NewFromConfig(awsCfg)
	var checks []provision.Check
	for _, t := range res.Tables {
		checks = append(checks, provision.CheckTable(ctx, db, t))
	}
	checks = append(checks, provision.CheckQueue(ctx, sqs.NewFromConfig(awsCfg), res.Queue))
	return append(checks, provision.CheckKMSKey(ctx, kms.NewFromConfig(awsCfg), res.KMSKeyID))
}

// EnsureResources creates the AWS resources of ResourcesOf(cfg) that are
// missing (`config fix`), telling done what each one needed ("exists",
// "created", ...). It stops at the first that fails.
func EnsureResources(ctx context.Context, cfg config.Config, awsCfg aws.Config, done func(what, did string)) error {
	res := ResourcesOf(cfg)
	db := dynamodb.NewFromConfig(awsCfg)
	for _, t := range res.Tables {
		did, err := provision.EnsureTable(ctx, db, t)
		if err != nil {
			return err
		}
		done("table "+t.Name, did)
	}
	did, err := provision.EnsureQueue(ctx, sqs.NewFromConfig(awsCfg), res.Queue)
	if err != nil {
		return err
	}
	done("queue "+res.Queue.Name, did)
	did, err = provision.EnsureKMSKey(ctx, kms.NewFromConfig(awsCfg), res.KMSKeyID)
	if err != nil {
		return err
	}
	done("kms key "+res.KMSKeyID, did)
	return nil
}
