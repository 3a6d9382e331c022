// Build arguments (a Dockerfile's ARG): [args] in the spec gives names and
// defaults, --arg NAME=VALUE overrides them, and ${NAME} in step run, step
// env, image.env and image.labels values is replaced by the value. "$${"
// stands for a literal "${". Anything else ($NAME, ${x:-y}, ${a[@]}) is left
// for the shell, so scripts keep their own variables.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dockless {

/// A valid argument name: a letter or "_", then letters, digits or "_".
bool is_arg_name(std::string_view name);

/// The NAMEs of the ${NAME}s in `text`, in order of first use, without repeats.
std::vector<std::string> referenced_args(std::string_view text);

/// `text` with every ${NAME} replaced by values[NAME] and "$${" by "${".
/// Throws Error "${NAME} has no value (...)" when NAME has none; the caller
/// puts the file and key in front.
std::string substitute_args(std::string_view text, const std::map<std::string, std::string>& values);

/// --arg NAME=VALUE (VALUE may be empty). Throws UsageError on another form.
std::pair<std::string, std::string> parse_arg_option(const std::string& text);

}  // namespace dockless
