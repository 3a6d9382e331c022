#!/usr/bin/env bash
# `dockless completion bash|zsh` and `dockless man-page`, as a shell user sees
# them: the bash script registers a completion for dockless and, fed the words
# typed so far (COMP_WORDS/COMP_CWORD as readline sets them), offers the
# subcommands, nested subcommands and the options of the command typed; zsh
# parses its script; man renders the page with every subcommand in it.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# complete_words WORD...: what the bash completion offers for the last WORD
# (the word under the cursor), one per line, sorted.
complete_words() {
  bash -c 'source <("$DOCKLESS" completion bash) || exit 1
    COMP_WORDS=(dockless "$@"); COMP_CWORD=$#; COMP_LINE="dockless $*"; COMP_POINT=${#COMP_LINE}
    _dockless dockless "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}" | sort' bash "$@"
}

section "bash"
check_eq "complete -p dockless after sourcing the script" "complete -o bashdefault -o default -F _dockless dockless" \
  "$(bash -c 'source <("$DOCKLESS" completion bash); complete -p dockless' 2>&1)"
check_eq "dockless bu<TAB> offers build and bundle" "build bundle" "$(complete_words bu | paste -sd' ')"
check_eq "dockless buil<TAB> offers build alone" "build" "$(complete_words buil)"
check_eq "dockless <TAB> offers every subcommand, completion too, the hidden man-page not" \
  "build bundle cache completion copy help import inspect pull push sbom unbundle" \
  "$(complete_words '' | paste -sd' ')"
check_eq "dockless cache <TAB> offers its subcommands" "ls prune" "$(complete_words cache '' | paste -sd' ')"
check_eq "dockless cache prune --d<TAB> offers --dry-run" "--dry-run" "$(complete_words cache prune --d)"
check_eq "dockless build --sb<TAB> offers --sbom" "--sbom" "$(complete_words build --sb)"
check_eq "dockless push --no-<TAB> offers nothing (push has no such option)" "" "$(complete_words push --no-)"
check_eq "dockless build -f <TAB>: a value, so no option or subcommand words (file names)" "" \
  "$(complete_words build -f '')"

section "zsh"
if command -v zsh >/dev/null; then
  "$DOCKLESS" completion zsh >"$T/_dockless"
  check "zsh -n parses the zsh script" zsh -n "$T/_dockless"
  check_contains "the zsh script is a #compdef for dockless" "$(head -n 1 "$T/_dockless")" "#compdef dockless"
  # Loaded as compinit loads it, from $fpath: _dockless is defined, no error.
  check "compinit autoloads _dockless from fpath" zsh -fc \
    "fpath=($T \$fpath); autoload -Uz compinit; compinit -u -d $T/zcompdump; [[ \${_comps[dockless]} == _dockless ]]"
else
  failed "zsh is installed (scripts/setup.sh installs it)"
fi

section "man page"
"$DOCKLESS" man-page >"$T/dockless.1"
check_contains "the page's header" "$(head -n 3 "$T/dockless.1")" ".TH DOCKLESS 1"
if command -v man >/dev/null; then
  MANWIDTH=200 man -l "$T/dockless.1" >"$T/man.txt" 2>"$T/man.err" || true
  check_eq "man renders it without a warning" "" "$(cat "$T/man.err")"
  page=$(cat "$T/man.txt")
else
  page=$(cat "$T/dockless.1")
fi
for cmd in "dockless build" "dockless cache prune" "dockless completion" "dockless sbom"; do
  check_contains "the page has a section for $cmd" "$page" "$cmd"
done
check_contains "the page lists build's --sbom with its help text" "$page" "Attach a CycloneDX SBOM"
rc=0
"$DOCKLESS" completion fish >/dev/null 2>&1 || rc=$?
check_eq "dockless completion fish: a usage error (exit 2)" 2 "$rc"
