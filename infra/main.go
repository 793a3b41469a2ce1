// Command infra is the kcguard CDK app: `cdk synth` / `cdk deploy` run it
// (cdk.json). The stage comes from `-c stage=dev|prod`; the Lambda code is
// the output of `make build-functions` (dist/lambda/arm64).
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	stageName := contextString(app, "stage", "dev")
	stage, err := StageNamed(stageName)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	NewStack(app, "Kcguard-"+stage.Name, &StackProps{
		StackProps: awscdk.StackProps{
			Description: jsii.String("kcguard (" + stage.Name + "): keeps people logging in when Keycloak is down"),
			Env:         environment(),
		},
		Stage:      stage,
		LambdaDist: contextString(app, "lambdaDist", "../dist/lambda/arm64"),
		AlertEmail: contextString(app, "alertEmail", ""),
	})
	// Every synth runs the AwsSolutions checks; an unjustified finding fails it.
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	app.Synth(nil)
}

func contextString(app awscdk.App, key, def string) string {
	if v, ok := app.Node().TryGetContext(jsii.String(key)).(string); ok && v != "" {
		return v
	}
	return def
}

// environment is the account and region the CDK CLI resolved (nil when
// synthesizing without credentials: an environment-agnostic template).
func environment() *awscdk.Environment {
	account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION")
	if account == "" || region == "" {
		return nil
	}
	return &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
}
