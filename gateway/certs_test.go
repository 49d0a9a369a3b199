package gateway

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mholt/acmez/v3/acme"
)

func TestPlainCertError(t *testing.T) {
	prob := func(typ, detail string) error {
		return fmt.Errorf("[x] Obtain: %w", acme.Problem{Type: acme.ProblemTypeNamespace + typ, Detail: detail})
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"dns", prob("dns", "NXDOMAIN looking up A"), "DNS for wekan.example.com does not point here"},
		{"http-01 connection", prob("connection", "Get \"http://wekan.example.com/.well-known/...\": connection refused"), "port 80 is not reachable from the CA"},
		{"tls-alpn-01 connection", prob("connection", "Failed to connect to 1.2.3.4:443 for the tls-alpn-01 challenge"), "port 443 is not reachable"},
		{"tls-alpn-01 dial worded as unauthorized", prob("unauthorized", "Failed to connect to 127.0.0.2:5001 for the tls-alpn-01 challenge"), "port 443 is not reachable"},
		{"rate limit", prob("rateLimited", "too many certificates already issued"), "the CA's rate limit"},
		{"unauthorized", prob("unauthorized", "wrong key authorization"), "check that its DNS points here"},
		{"other problem", prob("badCSR", "the CSR is bad"), "the CA says: the CSR is bad"},
		{"pointer problem", fmt.Errorf("x: %w", &acme.Problem{Type: acme.ProblemTypeDNS}), "DNS for wekan.example.com"},
		{"not a problem", errors.New("dial tcp: connection refused"), "dial tcp: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := plainCertError("wekan.example.com", tt.err); !strings.Contains(got, tt.want) {
				t.Errorf("%q does not contain %q", got, tt.want)
			}
		})
	}
}
