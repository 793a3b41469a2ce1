package main

import (
	"fmt"
	"sort"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/kcguard/kcguard/pkg/schema"
)

// Every cdk-nag AwsSolutions finding kcguard accepts is suppressed here, on
// the one resource it concerns, with the reason. Anything else fails
// `cdk synth` and the nag test.

// openRouteReason says why a route has no API Gateway authorizer.
var openRouteReason = map[string]string{
	"POST /login": "The login route is the authentication itself: it takes a username and password " +
		"and is protected by the offline lockout, API throttling and constant-time hashing.",
	"POST /password": "The password change authenticates the caller by the old password in the body " +
		"(same checks and lockout as login), like Keycloak's own account console.",
	"GET /sessions":         sessionRouteReason,
	"DELETE /sessions/{id}": sessionRouteReason,
	"POST /logout":          sessionRouteReason,
	"POST /logout-all":      sessionRouteReason,
}

const sessionRouteReason = "The handler authenticates the kcguard session bearer token itself " +
	"(SHA-256 lookup, idle and absolute expiry); an API Gateway authorizer would only repeat that lookup."

func suppressNag(s *Stack, secret awssecretsmanager.Secret, openRoutes map[string]awsapigatewayv2.HttpRoute) {
	cdknag.NagSuppressions_AddResourceSuppressions(secret, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-SMG4"),
		Reason: jsii.String("The secret holds Keycloak client secrets that are issued by Keycloak; they are " +
			"rotated in Keycloak and copied here (README, Deployment), so a rotation Lambda cannot create them."),
	}}, jsii.Bool(false))

	for _, key := range sortedKeys(openRoutes) {
		reason, ok := openRouteReason[key]
		if !ok {
			// A new unauthenticated route must say why here, or synth fails.
			panic(fmt.Sprintf("route %q has no authorizer and no reason in openRouteReason", key))
		}
		cdknag.NagSuppressions_AddResourceSuppressions(openRoutes[key], &[]*cdknag.NagPackSuppression{{
			Id: jsii.String("AwsSolutions-APIG4"), Reason: jsii.String(reason),
		}}, jsii.Bool(true))
	}

	for _, f := range Functions {
		fn := s.Functions[f.Name]
		sup := []*cdknag.NagPackSuppression{{
			Id: jsii.String("AwsSolutions-IAM4"),
			Reason: jsii.String("AWSLambdaBasicExecutionRole only lets the function write its own CloudWatch " +
				"logs; it is the policy AWS maintains for exactly that."),
			AppliesTo: &[]interface{}{"Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"},
		}}
		var indexes []interface{}
		for _, t := range sortedKeys(f.Tables) {
			if len(schema.Tables[t].Indexes) > 0 {
				indexes = append(indexes, fmt.Sprintf("Resource::<%s.Arn>/index/*", TableLogicalID(t)))
			}
		}
		sort.Slice(indexes, func(i, j int) bool { return indexes[i].(string) < indexes[j].(string) })
		if f.Breaker {
			sup = append(sup, &cdknag.NagPackSuppression{
				Id: jsii.String("AwsSolutions-IAM5"),
				Reason: jsii.String("Event source mapping ARNs end in a UUID CloudFormation assigns, and the worker's " +
					"own cannot be named in its role without a cycle; the statement is limited by the condition " +
					"lambda:FunctionArn to the sync worker's mapping, which the breaker pauses and resumes."),
				AppliesTo: &[]interface{}{"Resource::arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:event-source-mapping:*"},
			})
		}
		if f.Breaker && f.ConsumesSyncQueue {
			sup = append(sup, &cdknag.NagPackSuppression{
				Id: jsii.String("AwsSolutions-IAM5"),
				Reason: jsii.String("lambda:ListEventSourceMappings has no resource-level permission in IAM; the " +
					"worker lists only to find its own mapping's id, and may change no mapping but its own."),
				AppliesTo: &[]interface{}{"Resource::*"},
			})
		}
		if len(indexes) > 0 {
			sup = append(sup, &cdknag.NagPackSuppression{
				Id: jsii.String("AwsSolutions-IAM5"),
				Reason: jsii.String("Only the indexes of the function's own tables: queries go to the tables' " +
					"global secondary indexes (by user, by expiry, unsynced users), which share the table's grant."),
				AppliesTo: &indexes,
			})
		}
		cdknag.NagSuppressions_AddResourceSuppressions(fn.Role(), &sup, jsii.Bool(true))
	}
}
