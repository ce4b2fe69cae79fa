// Options from outside the command line, for `dspark serve`: a YAML config file (--config FILE)
// and DSPARK_* environment variables (containers). Precedence: command line, then environment,
// then the file, then the built-in defaults.
#pragma once

#include <string>

#include "args.h"
#include "dspark/status.h"

namespace dspark::cli {

// Whether an option can be set in a config file (help, check-config and config cannot).
bool file_option(const std::string& name);

// Reads the YAML file at `path`: a mapping of option names (the long flag names, without the
// dashes) to values, each applied unless the option was already given. A value is a scalar, a
// list of scalars (joined with commas, for the comma-separated options) or, for a flag, a
// boolean (false leaves it off). Errors name the file and the key: unknown options (and
// `config`/`help`), nested mappings, empty values, a flag with a non-boolean value, a file that
// cannot be read or is not YAML (with its line).
Status apply_config_file(const std::string& path, Args& args);

// For each declared option not yet given, the environment variable `prefix` + its name in upper
// case with '-' as '_' (DSPARK_MAX_NUM_SEQS for --max-num-seqs; DSPARK_CONFIG names a config
// file), if set. A flag's variable is 1/true/yes/on or 0/false/no/off (or empty: off); anything
// else is an error naming it. An empty variable of an option with a value counts as unset.
// help and check-config are never read from the environment.
Status apply_environment(const std::string& prefix, Args& args);

}  // namespace dspark::cli
