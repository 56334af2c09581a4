# shellcheck shell=bash
# A tiny test-assert library for the VM suites (runs in the guest; works on
# any host too). Sourced by a suite, never executed.
#
#   t_begin NAME                  start suite NAME
#   t_section TITLE               print a heading
#   t_eq DESC EXPECTED ACTUAL     pass if the two strings are equal
#   t_match DESC REGEX ACTUAL     pass if ACTUAL matches the extended REGEX
#   t_status DESC RC CMD [ARG...] run CMD; pass if it exits with status RC
#   t_pass DESC / t_fail DESC [DETAIL...]   record a result directly
#   t_end                         print "NAME: N passed, N failed", write the
#                                 result file, exit 0 (all passed) or 1
#
# There is no "skip": a check whose mechanism is missing fails.
# With T_RESULT_DIR set, t_end writes T_RESULT_DIR/NAME ("PASSED FAILED") and
# every failure appends its description to T_RESULT_DIR/NAME.failures.

T_NAME=unnamed
T_PASSED=0
T_FAILED=0

t_begin() {
  T_NAME=$1
  T_T0=${EPOCHREALTIME/[.,]*/}
  printf '\n=== suite %s ===\n' "$T_NAME"
  [[ -z ${T_RESULT_DIR:-} ]] || rm -f "$T_RESULT_DIR/$T_NAME" "$T_RESULT_DIR/$T_NAME.failures"
}

T_T0=${EPOCHREALTIME/[.,]*/}

t_section() { printf -- '--- %s (at %ds)\n' "$*" $((${EPOCHREALTIME/[.,]*/} - T_T0)); }

t_pass() {
  T_PASSED=$((T_PASSED + 1))
  printf '  ok    %s\n' "$1"
}

# t_fail DESC [DETAIL...]: each DETAIL is printed on its own indented line.
t_fail() {
  local desc=$1 line
  shift
  T_FAILED=$((T_FAILED + 1))
  printf '  FAIL  %s\n' "$desc"
  for line in "$@"; do printf '%s\n' "$line" | sed 's/^/        /'; done
  [[ -z ${T_RESULT_DIR:-} ]] || printf '%s\n' "$desc" >> "$T_RESULT_DIR/$T_NAME.failures"
}

# Indent a command's output under a failure, at most 20 lines.
t_quote() {
  if [[ -z $1 ]]; then echo '(no output)'; return; fi
  printf '%s\n' "$1" | head -n 20 | sed 's/^/| /'
}

t_eq() {
  local desc=$1 expected=$2 actual=$3
  if [[ $actual == "$expected" ]]; then
    t_pass "$desc"
  else
    t_fail "$desc" "expected: $expected" "got:      $actual"
  fi
}

t_match() {
  local desc=$1 regex=$2 actual=$3
  if grep -Eq -- "$regex" <<< "$actual"; then
    t_pass "$desc"
  else
    t_fail "$desc" "expected to match: $regex" "got:" "$(t_quote "$actual")"
  fi
}

t_status() {
  local desc=$1 want=$2 out rc=0
  shift 2
  out=$("$@" 2>&1) || rc=$?
  if [[ $rc == "$want" ]]; then
    t_pass "$desc"
  else
    t_fail "$desc" "command:  $*" "expected: exit $want" "got:      exit $rc" "output:" "$(t_quote "$out")"
  fi
}

t_end() {
  printf -- '--- %s took %ds\n' "$T_NAME" $((${EPOCHREALTIME/[.,]*/} - T_T0))
  printf '%s: %d passed, %d failed\n' "$T_NAME" "$T_PASSED" "$T_FAILED"
  [[ -z ${T_RESULT_DIR:-} ]] || echo "$T_PASSED $T_FAILED" > "$T_RESULT_DIR/$T_NAME"
  if [[ $T_FAILED == 0 ]]; then exit 0; fi
  exit 1
}
