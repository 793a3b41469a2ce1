package platform

import (
	"context"
	"encoding/json"
	"io"

	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/httpapi"
	"github.com/kcguard/kcguard/pkg/metrics"
)

// LoginOutcome is the metric a login's answer counts under (one of
// metrics.LoginMetrics), read from the answer itself: the API's documented
// shape ({"auth_mode": ...} or {"error": {"code": ...}}) is the one thing
// every login path ends in, whichever branch of the service decided it.
func LoginOutcome(resp httpapi.Response) string {
	var body struct {
		AuthMode string `json:"auth_mode"`
		Error    *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal([]byte(resp.Body), &body)
	switch {
	case resp.StatusCode == 200 && body.AuthMode == string(auth.ModeKeycloak):
		return metrics.LoginsKeycloak
	case resp.StatusCode == 200 && body.AuthMode == string(auth.ModeCached):
		return metrics.LoginsCached
	case resp.StatusCode == 200 && body.AuthMode == string(auth.ModeLocal):
		return metrics.LoginsLocal
	case body.Error != nil && (body.Error.Code == httpapi.CodeLocked || body.Error.Code == httpapi.CodeTooManyRequests):
		return metrics.LoginsLockedOut
	case body.Error != nil && body.Error.Code == httpapi.CodeInvalidCredentials:
		return metrics.LoginFailures
	case resp.StatusCode >= 500:
		return metrics.LoginErrors
	}
	return metrics.LoginsRefused
}

// CountLogins wraps the login handler: each answer adds one to its
// outcome's metric, as an EMF line on w (stdout in Lambda), so the
// dashboards show the auth-mode mix and lockouts without an API call.
func CountLogins(h httpapi.Handler, w io.Writer) httpapi.Handler {
	pub := &metrics.EMF{W: w}
	return func(ctx context.Context, req httpapi.Request) (httpapi.Response, error) {
		resp, err := h(ctx, req)
		if err == nil {
			_ = pub.Publish(ctx, metrics.Namespace, metrics.LoginDimensions,
				[]metrics.Value{{Name: LoginOutcome(resp), Value: 1, Unit: metrics.Count}})
		}
		return resp, err
	}
}
