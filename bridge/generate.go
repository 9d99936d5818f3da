package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/openmeet-team/openmeet-bridge/appservice"
)

// GenerateRegistration writes a registration for Synapse to regPath with
// fresh tokens and puts the same tokens into the config at configPath, which
// is created from example if it does not exist. It is the one place that
// writes the user's config, and only because the operator asked with -g; the
// rest of the file, comments included, is kept. It returns warnings worth
// showing the operator.
func GenerateRegistration(example []byte, configPath, regPath string) (warnings []string, err error) {
	data, err := os.ReadFile(configPath)
	if errors.Is(err, fs.ErrNotExist) {
		data = example
		warnings = append(warnings, fmt.Sprintf("created %s from the example config; review it", configPath))
	} else if err != nil {
		return nil, fmt.Errorf("failed to read config: %w", err)
	}
	cfg, err := ParseConfig(example, data)
	if err != nil {
		return nil, fmt.Errorf("failed to parse config %s: %w", configPath, err)
	}
	if err := cfg.Homeserver.Validate(); err != nil {
		warnings = append(warnings, fmt.Sprintf("%v — the registration's namespaces use this domain: fix it and run -g again", err))
	}
	domain := cfg.Homeserver.Domain
	reg, err := appservice.NewRegistration(&cfg.Appservice, domain)
	if err != nil {
		return nil, fmt.Errorf("invalid appservice section: %w", err)
	}
	regYAML, err := reg.YAML()
	if err != nil {
		return nil, fmt.Errorf("failed to encode registration: %w", err)
	}
	updates := map[string]string{
		"appservice.as_token": cfg.Appservice.ASToken,
		"appservice.hs_token": cfg.Appservice.HSToken,
	}
	if s := cfg.Provisioning.SharedSecret; s == "" || s == appservice.Placeholder {
		updates["provisioning.shared_secret"] = appservice.NewToken()
	}
	newConfig, err := setYAMLValues(data, updates)
	if err != nil {
		return nil, fmt.Errorf("failed to update config %s: %w", configPath, err)
	}
	for _, p := range []string{configPath, regPath} {
		if trackedByGit(p) {
			warnings = append(warnings, fmt.Sprintf("%s is tracked by git, so the tokens written into it would be committed: "+
				"keep the real config and registration where git ignores them, such as data/", p))
		}
	}
	// Registration first: a config with tokens Synapse was never given is
	// worse than a registration the config does not use yet.
	if err := writeFileAtomic(regPath, []byte(regYAML), 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(configPath, newConfig, 0o600); err != nil {
		return nil, err
	}
	return warnings, nil
}

// setYAMLValues sets dotted keys to string values in a YAML document,
// keeping everything else, comments included.
func setYAMLValues(data []byte, values map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	for key, value := range values {
		if err := setYAMLValue(doc.Content[0], strings.Split(key, "."), value); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(4)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

func setYAMLValue(node *yaml.Node, path []string, value string) error {
	if node.Kind != yaml.MappingNode {
		return errors.New("not a mapping")
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value != path[0] {
			continue
		}
		child := node.Content[i+1]
		if len(path) > 1 {
			return setYAMLValue(child, path[1:], value)
		}
		*child = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Style: yaml.DoubleQuotedStyle,
			LineComment: child.LineComment}
		return nil
	}
	key := &yaml.Node{Kind: yaml.ScalarNode, Value: path[0]}
	if len(path) == 1 {
		node.Content = append(node.Content, key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Style: yaml.DoubleQuotedStyle})
		return nil
	}
	child := &yaml.Node{Kind: yaml.MappingNode}
	node.Content = append(node.Content, key, child)
	return setYAMLValue(child, path[1:], value)
}

// trackedByGit reports whether git tracks the file at path (asking git in
// the file's directory), so that -g can warn before secrets end up in a
// commit. Without git, or outside a work tree, nothing is tracked.
func trackedByGit(path string) bool {
	git, err := exec.LookPath("git")
	if err != nil {
		return false
	}
	cmd := exec.Command(git, "--literal-pathspecs", "ls-files", "--error-unmatch", "--", filepath.Base(path))
	cmd.Dir = filepath.Dir(path)
	return cmd.Run() == nil
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new file, never half of one. Missing parent directories are
// created, readable only by the owner: they hold secrets.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err = tmp.Write(data); err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}
