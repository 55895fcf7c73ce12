package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Where sottod finds its data directory, the same from any working
// directory: -data on the command line, else the `data` line of its config
// file (-config FILE, else the first of defaultConfigFiles that exists),
// else a clear error. It never makes a new database in whatever folder it
// was started from.

// configFileName is the config file's name in the default folders.
const configFileName = "sottod.conf"

// systemConfigFile is the system-wide config file.
const systemConfigFile = "/etc/sotto/" + configFileName

// defaultConfigFiles are the config files sottod reads when -config is not
// given, first found wins: the user's (os.UserConfigDir()/sotto/sottod.conf,
// e.g. ~/.config/sotto/sottod.conf), then the system's.
func defaultConfigFiles() []string {
	var files []string
	if dir, err := os.UserConfigDir(); err == nil {
		files = append(files, filepath.Join(dir, "sotto", configFileName))
	}
	return append(files, systemConfigFile)
}

// errNoDataDir is the error when neither -data nor a config file names the
// data directory.
func errNoDataDir() error {
	return errors.New("no data directory: give -data DIR, or a `data DIR` line in a config file (-config FILE, or " +
		strings.Join(defaultConfigFiles(), " or ") + "); sottod does not create a database in the current directory unasked")
}

// setting is one line of a config file: a flag's name and its value.
type setting struct {
	line        int
	name, value string
}

// configFile is a parsed config file: one flag per line, `name value` or
// `name = value` (`name =` for an empty value), with the names of the
// command's flags (without the dash), blank lines and lines starting with #
// ignored.
type configFile struct {
	path     string // absolute
	settings []setting
}

// readConfigFile parses the config file at path, reporting every malformed
// line at once.
func readConfigFile(path string) (*configFile, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	c := &configFile{path: abs}
	var errs []error
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, equals := line, "", false
		if i := strings.IndexAny(line, " \t="); i >= 0 {
			name, value = line[:i], strings.TrimSpace(line[i:])
			value, equals = strings.CutPrefix(value, "=")
			value = strings.TrimSpace(value)
		}
		name = strings.TrimLeft(name, "-")
		if name == "" || (value == "" && !equals) {
			errs = append(errs, fmt.Errorf("%s:%d: want `name value`, got %q", abs, n, line))
			continue
		}
		c.settings = append(c.settings, setting{line: n, name: name, value: value})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("config file %s: %w", abs, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// apply sets on fs, after the command line was parsed, every setting whose
// flag the command line did not give: the command line wins. A relative
// `data` is taken from the config file's folder. With only set, the
// settings named there are applied and the rest ignored (the admin commands
// read the data directory and store settings of serve's file); otherwise a
// name fs does not define is an error.
func (c *configFile) apply(fs *flag.FlagSet, only ...string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	for _, s := range c.settings {
		if len(only) > 0 && !slices.Contains(only, s.name) {
			continue
		}
		if fs.Lookup(s.name) == nil || s.name == "config" {
			errs = append(errs, fmt.Errorf("%s:%d: unknown setting %q (the names are those of the flags, see sottod serve -h)", c.path, s.line, s.name))
			continue
		}
		if given[s.name] {
			continue
		}
		value := s.value
		if s.name == "data" && !filepath.IsAbs(value) {
			value = filepath.Join(filepath.Dir(c.path), value)
		}
		if err := fs.Set(s.name, value); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %v", c.path, s.line, s.name, err))
		}
	}
	return errors.Join(errs...)
}

// loadConfig reads the config file named by -config (explicit, so it must
// exist), else the first default one that exists; nil when there is none.
func loadConfig(explicit string) (*configFile, error) {
	if explicit != "" {
		return readConfigFile(explicit)
	}
	for _, p := range defaultConfigFiles() {
		if _, err := os.Stat(p); err == nil {
			return readConfigFile(p)
		}
	}
	return nil, nil
}

// dataSource says where the data directory comes from, for the log: call
// it before apply.
func dataSource(fs *flag.FlagSet, cf *configFile) string {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "data" })
	if given || cf == nil {
		return "-data"
	}
	return cf.path
}

// absData makes a -data given on the command line absolute (relative to the
// working directory, as a shell user means it), so that what sottod prints
// works from anywhere. "" stays "" (Validate reports it).
func absData(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	return filepath.Abs(dir)
}
