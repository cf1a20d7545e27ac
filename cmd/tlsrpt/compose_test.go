package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml the test checks.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Secrets     []string          `yaml:"secrets"`
		Volumes     []string          `yaml:"volumes"`
		Profiles    []string          `yaml:"profiles"`
		Ports       []string          `yaml:"ports"`
		Tmpfs       []string          `yaml:"tmpfs"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

// TestComposeFile checks docker-compose.yml: with `docker compose config`
// where the Compose plugin is installed, and always by parsing it against
// the services the README documents.
func TestComposeFile(t *testing.T) {
	path := filepath.Join("..", "..", "docker-compose.yml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "docker-compose.yml"), raw, 0o644)
		os.Mkdir(filepath.Join(dir, "secrets"), 0o755)
		for _, s := range []string{"db_password", "imap_password", "admin_password"} {
			os.WriteFile(filepath.Join(dir, "secrets", s), []byte("x"), 0o600)
		}
		cmd := exec.Command("docker", "compose", "--profile", "demo", "config", "--quiet")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("docker compose config: %v\n%s", err, out)
		}
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml is not valid YAML: %v", err)
	}
	pg, ok := cf.Services["postgres"]
	if !ok || !strings.HasPrefix(pg.Image, "postgres:") || pg.Healthcheck == nil || len(pg.Volumes) == 0 {
		t.Errorf("postgres service = %+v, want the official image with a volume and a health check", pg)
	}
	for name, database := range map[string]string{"tlsrpt": "postgres", "demo": "demo-postgres"} {
		s, ok := cf.Services[name]
		if !ok || s.Build == nil {
			t.Errorf("service %s missing or not built from the Dockerfile", name)
			continue
		}
		if s.DependsOn[database].Condition != "service_healthy" {
			t.Errorf("service %s does not wait for a healthy %s", name, database)
		}
		if name == "tlsrpt" && s.Environment["DATABASE_URL"] == "" {
			t.Errorf("service %s has no DATABASE_URL", name)
		}
		for k, v := range s.Environment {
			if strings.Contains(strings.ToLower(k), "password") && !strings.HasSuffix(k, "_FILE") {
				t.Errorf("service %s sets secret %s=%q directly, want a _FILE variable", name, k, v)
			}
			if strings.HasSuffix(k, "_FILE") && !strings.HasPrefix(v, "/run/secrets/") {
				t.Errorf("service %s: %s=%q does not point into /run/secrets", name, k, v)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := cf.Secrets[sec]; !ok {
				t.Errorf("service %s uses undeclared secret %s", name, sec)
			}
		}
	}
	if s := cf.Services["tlsrpt"]; s.Healthcheck == nil || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), "healthcheck") {
		t.Errorf("tlsrpt service has no health check running \"tlsrpt healthcheck\"")
	}
	if s := cf.Services["demo"]; len(s.Profiles) != 1 || s.Profiles[0] != "demo" || len(s.Command) == 0 || s.Command[0] != "demo" {
		t.Errorf("demo service = profiles %v command %v, want profile demo running \"tlsrpt demo\"", s.Profiles, s.Command)
	}
	// The demo fills its database with demo data: never the production
	// one, and not on the production port.
	demo, demoPG := cf.Services["demo"], cf.Services["demo-postgres"]
	if _, ok := demo.DependsOn["postgres"]; ok || demo.Environment["DATABASE_URL"] != "" || strings.Contains(strings.Join(demo.Command, " "), "@postgres:") {
		t.Errorf("demo service reaches the production database: depends_on %v, DATABASE_URL %q, command %v", demo.DependsOn, demo.Environment["DATABASE_URL"], demo.Command)
	}
	if !strings.Contains(strings.Join(demo.Command, " "), "--db postgres://tlsrpt@demo-postgres:5432/") {
		t.Errorf("demo service command %v does not name the demo-postgres database with --db", demo.Command)
	}
	if !strings.HasPrefix(demoPG.Image, "postgres:") || len(demoPG.Volumes) != 0 || len(demoPG.Tmpfs) == 0 || len(demoPG.Profiles) != 1 || demoPG.Profiles[0] != "demo" {
		t.Errorf("demo-postgres service = %+v, want the official image in the demo profile, in a tmpfs, with no volume", demoPG)
	}
	hostPorts := map[string]string{}
	for _, name := range []string{"tlsrpt", "demo"} {
		for _, p := range cf.Services[name].Ports {
			host, _, _ := strings.Cut(p, ":")
			if other, ok := hostPorts[host]; ok {
				t.Errorf("services %s and %s both bind host port %s", other, name, host)
			}
			hostPorts[host] = name
		}
	}
	if _, ok := cf.Volumes["pgdata"]; !ok {
		t.Errorf("volume pgdata not declared")
	}
	// Every command the compose file runs exists in the binary.
	for name, s := range cf.Services {
		if len(s.Command) > 0 && !strings.HasSuffix(name, "postgres") {
			if _, ok := commands[s.Command[0]]; !ok {
				t.Errorf("service %s runs unknown command %q", name, s.Command[0])
			}
		}
	}
}
