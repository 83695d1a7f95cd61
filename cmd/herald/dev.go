package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/heraldhq/herald/api/auth"
)

// devCredentials are the secret and API key that --dev makes when none are configured.
// They are kept in the data directory, so tokens stay valid across restarts.
type devCredentials struct {
	JWTSecret string `json:"jwtSecret"`
	APIKey    string `json:"apiKey"`
}

const devFile = "dev-credentials.json"

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// loadDevCredentials reads the credentials --dev keeps in dir, if any.
func loadDevCredentials(dir string) (*devCredentials, error) {
	b, err := os.ReadFile(filepath.Join(dir, devFile))
	if err != nil {
		return nil, err
	}
	var c devCredentials
	if err := json.Unmarshal(b, &c); err != nil || c.JWTSecret == "" || c.APIKey == "" {
		return nil, fmt.Errorf("%s is damaged; delete it to make new credentials", filepath.Join(dir, devFile))
	}
	return &c, nil
}

// devSetup fills the secret and an API key for --dev from the environment, or from the
// data directory, or makes new ones there.
func devSetup(cfg *config) (*devCredentials, error) {
	c, err := loadDevCredentials(cfg.DataDir)
	if errors.Is(err, fs.ErrNotExist) {
		c = &devCredentials{JWTSecret: randomHex(32), APIKey: "dev-" + randomHex(16)}
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, err
		}
		b, _ := json.MarshalIndent(c, "", "  ")
		if err := os.WriteFile(filepath.Join(cfg.DataDir, devFile), b, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if cfg.JWTSecret == "" && cfg.JWKS == "" {
		cfg.JWTSecret = c.JWTSecret
	} else {
		c.JWTSecret = cfg.JWTSecret
	}
	if len(cfg.APIKeys) == 0 {
		cfg.APIKeys = []string{c.APIKey}
	} else {
		c.APIKey = cfg.APIKeys[0]
	}
	if cfg.Rules == "" {
		if _, err := os.Stat(devRules); err == nil {
			cfg.Rules = devRules
		}
	}
	return c, nil
}

// devRules is the example rules file, loaded by --dev from the working directory (the
// repository root with make run) when HERALD_RULES is not set.
const devRules = "rules.example"

func printDev(w io.Writer, base string, c *devCredentials) {
	tok := "<set HERALD_JWT_SECRET to print a sample token>"
	if c.JWTSecret != "" {
		if t, err := auth.SignUserToken([]byte(c.JWTSecret), "alice", "", 24*time.Hour); err == nil {
			tok = t
		}
	}
	fmt.Fprintf(w, `
development mode (credentials in the data directory, not for production)
  API key:           %[2]s
  token for "alice": %[3]s   (24h; more with: herald token --user ID)

try it:
  curl -s -X POST %[1]s/notifications -H 'Authorization: Bearer %[2]s' -H 'Content-Type: application/json' \
    -d '{"receiverId":"alice","type":"project.created","payload":{"message":"Atlas was created"}}'
  curl -s %[1]s/notifications/unread -H 'Authorization: Bearer %[3]s'
  curl -s -X POST %[1]s/events -H 'Authorization: Bearer %[2]s' -H 'Content-Type: application/json' \
    -d '{"name":"project.role.application.created","data":{"projectOwnerId":"alice","applicantId":"ada","applicantName":"Ada","projectTitle":"Atlas","roleName":"Backend","applicationId":"a1"}}'

`, base, c.APIKey, tok)
}
