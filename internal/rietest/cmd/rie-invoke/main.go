// Command rie-invoke runs one built function under the Lambda RIE against
// the local stack and invokes it with an event file: the local equivalent
// of `sam local invoke -e EVENT --env-vars local/env.json` (`make invoke`).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/kcguard/kcguard/internal/rietest"
	"github.com/kcguard/kcguard/pkg/config"
)

func main() {
	fn := flag.String("fn", "", "function (folder under functions/)")
	event := flag.String("event", "", "event file (events/*.json)")
	arch := flag.String("arch", "amd64", "bootstrap architecture to run")
	flag.Parse()
	if err := run(*fn, *event, *arch); err != nil {
		fmt.Fprintln(os.Stderr, "rie-invoke:", err)
		os.Exit(1)
	}
}

func run(fn, eventPath, arch string) error {
	if fn == "" || eventPath == "" {
		return errors.New("usage: rie-invoke -fn login -event events/login.json")
	}
	event, err := os.ReadFile(eventPath)
	if err != nil {
		return err
	}
	env, err := rietest.LocalEnv("local/env.json", "")
	if err != nil {
		return err
	}
	aws, err := rietest.StackEnv("local/stack.env")
	if err != nil {
		return err
	}
	for _, k := range []string{"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		env[k] = aws[k]
	}
	if err := ensureLocalSecret(env); err != nil {
		return err
	}
	f, err := rietest.Start(fn, rietest.Options{
		RIE:       filepath.Join(".cache", "bin", "aws-lambda-rie"),
		Bootstrap: filepath.Join("dist", "lambda", arch, fn, "bootstrap"),
		Env:       env,
		Log:       os.Stderr,
	})
	if err != nil {
		return err
	}
	defer f.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	payload, rep, err := f.Invoke(ctx, event)
	if err != nil {
		return err
	}
	fmt.Println(string(payload))
	fmt.Fprintf(os.Stderr, "cold start %v, invoke %v, round trip %v\n", rep.Init, rep.Duration, rep.Wall)
	return nil
}

// ensureLocalSecret puts the local client secrets (config.example.yaml) into
// the Secrets Manager secret local/env.json names, so the function reads
// them the way it does in AWS.
func ensureLocalSecret(env map[string]string) error {
	cfg, err := config.Load("config.example.yaml")
	if err != nil {
		return err
	}
	secrets := map[string]string{}
	for name, p := range cfg.Keycloak.Packages {
		secrets[name] = p.ClientSecret
	}
	value, _ := json.Marshal(secrets)
	ctx := context.Background()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(env["AWS_REGION"]),
		awsconfig.WithBaseEndpoint(env["AWS_ENDPOINT_URL"]),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], "")))
	if err != nil {
		return err
	}
	return PutSecret(ctx, secretsmanager.NewFromConfig(awsCfg), env["KCGUARD_KEYCLOAK_SECRETS_ID"], string(value))
}

// PutSecret creates the secret or sets its value.
func PutSecret(ctx context.Context, sm *secretsmanager.Client, id, value string) error {
	_, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretString: aws.String(value)})
	var exists *smtypes.ResourceExistsException
	if errors.As(err, &exists) {
		_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(id), SecretString: aws.String(value)})
	}
	if err != nil {
		return fmt.Errorf("local secret %s: %w", id, err)
	}
	return nil
}
